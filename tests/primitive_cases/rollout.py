"""jit/vmap/grad cases for :mod:`fnrl.rollout`: a short rollout of a linear-Gaussian policy in a
small differentiable auto-resetting environment, differentiated with respect to the policy's
parameters; and the episode metrics of random episode ends."""
import jax
import jax.numpy as jnp

import fnrl.rollout as R
from fnrl.envs.wrappers import TimeLimit, wrap
from primitive_cases import Case
from primitive_cases.envs_wrappers import D, Drift

MODULE = R
EXEMPT = {"Episodes": "a NamedTuple of per-step episode statistics, not a function"}
T, B = 5, 2

ENV = wrap(TimeLimit(Drift(), 3), num_envs=B)


def _policy(params, obs, key):
    noise = jax.random.normal(key, obs.shape)
    return jnp.tanh(obs @ params["w"] + params["b"] + 0.3 * noise), {"value": obs.sum(-1), "log_prob": -jnp.sum(noise**2, -1)}


def _rollout(w, b):
    _, traj, episodes = R.rollout(ENV, _policy, {"w": w, "b": b}, ENV.reset(jax.random.PRNGKey(0)),
                                  jax.random.PRNGKey(1), T)
    return traj, episodes.episode_return


def _episodes(done, ret, length):
    return R.episode_metrics(R.Episodes(done, ret * done, jnp.round(length * done).astype(jnp.int32)))


def _episode_args(key):
    k1, k2, k3 = jax.random.split(key, 3)
    done = jax.random.bernoulli(k1, 0.4, (T, B)).at[0, 0].set(True).astype(jnp.float32)
    return done, jax.random.normal(k2, (T, B)), jax.random.uniform(k3, (T, B), minval=1.0, maxval=9.0)


CASES = [
    Case("rollout", _rollout, lambda key: (0.5 * jax.random.normal(key, (D, D)), jnp.full(D, 0.2)), argnums=(0, 1)),
    Case("episode_metrics", _episodes, _episode_args, argnums=(1,)),
]
