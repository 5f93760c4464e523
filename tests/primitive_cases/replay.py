"""jit/vmap/grad cases for :mod:`fnrl.replay`: a capacity-6 buffer, batches of 4 transitions
(obs of dimension 2), a [T=5, B=2] rollout for n-step assembly. Gradients flow from the stored
values through the scatter (insert) and the gather (sampling)."""
import jax
import jax.numpy as jnp

import fnrl.replay as R
from fnrl.types import Transition
from primitive_cases import Case

MODULE = R
EXEMPT = {"ReplayState": "a NamedTuple holding the buffer, not a function"}
CAPACITY, N, T, B = 6, 4, 5, 2


def _transitions(obs, reward, shape=(N,)):
    flag = jnp.zeros(shape)
    return Transition(obs=obs, action=jnp.zeros(shape, jnp.int32), reward=reward, termination=flag,
                      truncation=flag, next_obs=obs + 1.0)


def _filled(obs, reward, prioritized=False):
    """A buffer holding the 4 transitions, then 4 more (wrapping around) made from the same values."""
    state = R.init(jax.tree_util.tree_map(lambda x: x[0], _transitions(obs, reward)), CAPACITY, prioritized)
    state = R.insert(state, _transitions(obs, reward))
    return R.insert(state, _transitions(2.0 * obs, reward - 1.0))


def _data(key):
    k1, k2 = jax.random.split(key)
    return jax.random.normal(k1, (N, 2)), jax.random.normal(k2, (N,))


def _with_key(key):
    return (*_data(key), jax.random.fold_in(key, 7))


def _floats(t):
    return (t.obs, t.reward, t.next_obs)


def _rollout(key):
    k = jax.random.split(key, 3)
    ends = jax.random.bernoulli(k[2], 0.3, (T, B))
    term = (ends & jax.random.bernoulli(k[1], 0.5, (T, B))).astype(jnp.float32)
    return jax.random.normal(k[0], (T, B, 2)), jax.random.normal(k[1], (T, B)), term, ends.astype(jnp.float32) - term


def _n_step(obs, reward, term, trunc):
    traj = Transition(obs=obs, action=jnp.zeros((T, B), jnp.int32), reward=reward, termination=term,
                      truncation=trunc, next_obs=obs + 1.0)
    return _floats(R.n_step_transitions(traj, 3, 0.9))


def _prioritized(obs, reward, key):
    state = R.update_priorities(_filled(obs, reward, True), jnp.arange(4), jnp.array([0.5, 1.0, 2.0, 4.0]), 0.6)
    batch, _, weights = R.sample_prioritized(state, key, 5, 0.4)
    return (*_floats(batch), weights)


def _update_priorities(obs, reward, priorities):
    return R.update_priorities(_filled(obs, reward, True), jnp.arange(4), priorities, 0.6).priority_tree


CASES = [
    Case("init", lambda obs, reward: _floats(R.init(_transitions(obs, reward), CAPACITY).data), _data, (0, 1)),
    Case("insert", lambda obs, reward: _floats(_filled(obs, reward).data), _data, (0, 1)),
    Case("sample", lambda obs, reward, key: _floats(R.sample(_filled(obs, reward), key, 5)[0]), _with_key, (0, 1)),
    Case("sample_prioritized", _prioritized, _with_key, (0, 1)),
    Case("update_priorities", _update_priorities,
         lambda key: (*_data(key), jnp.abs(jax.random.normal(key, (N,))) + 0.1), (2,)),
    Case("n_step_transitions", _n_step, _rollout, (0, 1)),
]
