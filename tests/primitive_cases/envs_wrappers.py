"""jit/vmap/grad cases for :mod:`fnrl.envs.wrappers`: the running-statistics functions on random
data, and the full wrapper stack around a small differentiable environment for a few steps,
differentiated with respect to the actions (auto-reset and normalisation included)."""
import jax
import jax.numpy as jnp

import fnrl.envs.wrappers as W
from fnrl.envs.core import Env, EnvState, Spec
from primitive_cases import Case

MODULE = W
_CLASS = "a wrapper class; the `wrap` case runs it under jit/vmap/grad (TimeLimit inside the full stack)"
EXEMPT = {
    "RunningStats": "a NamedTuple of statistics (its `var` is exercised by the `normalize` case)",
    "init_stats": "builds zeros from a static shape; no array input",
    **{name: _CLASS for name in ("TimeLimit", "RescaleAction", "Batch", "AutoReset", "NormalizeObservation")},
}
T, B, D = 4, 2, 3


class Drift(Env):
    """obs' = obs + action; reward = -|obs'|^2; terminates once obs'[0] > 1; start ~ U(-1, 1)^D."""

    spec = Spec(observation_shape=(D,), action_shape=(D,), action_low=-0.5, action_high=0.5)

    def reset(self, key):
        zero = jnp.zeros((), jnp.float32)
        return EnvState(obs=jax.random.uniform(key, (D,), minval=-1.0, maxval=1.0), reward=zero,
                        termination=zero, truncation=zero, internal=())

    def step(self, state, action):
        obs = state.obs + action
        return state.replace(obs=obs, reward=-jnp.sum(obs**2), termination=(obs[0] > 1.0).astype(jnp.float32),
                             truncation=jnp.zeros((), jnp.float32))


_STACK = W.wrap(W.TimeLimit(Drift(), 3), num_envs=B, normalize_obs=True)


def _run_stack(actions):
    """Reset the full stack with a fixed key, then step it through ``actions`` [T, B, D]."""

    def body(state, action):
        state = _STACK.step(state, action)
        return state, (state.obs, state.reward, state.termination, state.truncation,
                       {k: state.info[k] for k in ("final_obs", "ended_return", "obs_stats")})

    return jax.lax.scan(body, _STACK.reset(jax.random.PRNGKey(0)), actions)[1]


def _stats(key, n=5):
    k1, k2 = jax.random.split(key)
    return W.update_stats(W.init_stats((D,)), jax.random.normal(k1, (n, D)) * 2.0 + 1.0), k2


def _update_args(key):
    stats, k = _stats(key)
    return stats.count, stats.mean, stats.m2, jax.random.normal(k, (4, D))


def _merge(count, mean, m2):
    """Statistics of 3 devices [3, ...] merged over a named axis."""
    return jax.vmap(lambda *s: W.merge_stats(W.RunningStats(*s), "devices"), axis_name="devices")(count, mean, m2)


def _merge_args(key):
    stats = [_stats(k, n)[0] for k, n in zip(jax.random.split(key, 3), (2, 3, 5))]
    return tuple(jnp.stack(x) for x in zip(*stats))


CASES = [
    Case("rescale_action", lambda a, low, high: W.rescale_action(a, low, high),
         lambda key: (jax.random.uniform(key, (4, D), minval=-2.0, maxval=2.0), -jnp.arange(1.0, D + 1), jnp.ones(D)),
         argnums=(0, 1, 2)),
    Case("update_stats", lambda n, mean, m2, x: W.update_stats(W.RunningStats(n, mean, m2), x), _update_args,
         argnums=(1, 2, 3)),
    Case("merge_stats", _merge, _merge_args, argnums=(1, 2)),
    Case("normalize", lambda n, mean, m2, x: W.normalize(W.RunningStats(n, mean, m2), x, clip=3.0), _update_args,
         argnums=(1, 2, 3)),
    Case("wrap", _run_stack, lambda key: (jax.random.uniform(key, (T, B, D), minval=-1.5, maxval=1.5),)),
]
