"""jit/vmap/grad cases for :mod:`fnrl.successor`: a random MDP (S=4, A=3), a random policy,
features φ(s, a, s') with D=2, and single transitions for the TD updates."""
import jax
import jax.numpy as jnp

import fnrl.successor as SF
from fnrl.envs import tabular as T
from primitive_cases import Case

MODULE = SF
EXEMPT = {
    "GPI": "a NamedTuple of results, not a function (gpi has a case)",
    "arrival_features": "an indicator table of integer state indices (nothing to differentiate); "
                        "tested in tests/test_successor.py",
}
S, A, D, K = 4, 3, 2, 2


def _mdp():
    transitions = jax.nn.softmax(2.0 * jax.random.normal(jax.random.PRNGKey(7), (S, A, S)), axis=-1)
    return T.MDP(transitions, jnp.zeros((S, A)), jnp.full(S, 1.0 / S), jnp.float32(0.9), jnp.zeros(S, bool))


def _args(key):
    k = jax.random.split(key, 5)
    policy = jax.nn.softmax(jax.random.normal(k[0], (S, A)), axis=-1)
    features = jax.random.normal(k[1], (S, A, S, D))
    s, a, s_next = (jax.random.randint(ki, (), 0, n) for ki, n in zip(k[2:], (S, A, S)))
    return policy, features, s, a, s_next


def _sr_update(key):
    policy, _, s, _, s_next = _args(key)
    return SF.successor_representation(_mdp(), policy), s, s_next, jnp.float32(0.0), jnp.float32(0.5)


def _sf_update(key):
    policy, features, s, a, s_next = _args(key)
    psi = jax.random.normal(jax.random.fold_in(key, 1), (S, A, D))
    return psi, policy, s, a, features[s, a, s_next], s_next, jnp.float32(1.0), jnp.float32(0.5)


def _regression(key):
    k1, k2 = jax.random.split(key)
    return jax.random.normal(k1, (20, D)), jax.random.normal(k2, (20,))


def _gpi(key):
    k1, k2 = jax.random.split(key)
    return jax.random.normal(k1, (K, S, A, D)), jax.random.normal(k2, (D,))


CASES = [
    Case("successor_representation", lambda pi: SF.successor_representation(_mdp(), pi), lambda key: _args(key)[:1]),
    Case("successor_features", lambda pi, phi: SF.successor_features(_mdp(), pi, phi), lambda key: _args(key)[:2],
         argnums=(0, 1)),
    Case("sr_td_update", lambda m, s, s2, term, lr: SF.sr_td_update(m, s, s2, term, 0.9, lr), _sr_update,
         argnums=(0, 4)),
    Case("sf_td_update", lambda psi, pi, s, a, phi, s2, term, lr: SF.sf_td_update(psi, pi, s, a, phi, s2, term, 0.9, lr),
         _sf_update, argnums=(0, 1, 4, 7)),
    Case("reward_weights", SF.reward_weights, _regression, argnums=(0, 1)),
    Case("reward_weights", lambda phi, r: SF.reward_weights(phi, r, l2=0.5), _regression, argnums=(0, 1)),
    Case("gpi", SF.gpi, _gpi, argnums=(0, 1)),
]
