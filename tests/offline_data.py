"""Small offline datasets for the tests, from scripted policies (no training needed).

- cartpole: push towards where the pole is falling (a + 0.5 ω > 0): 500 every episode;
- pendulum: pump energy E = ½ω² + 15(cos θ − 1) towards the upright's E = 0 (dE/dt = 3uω),
  then a PD controller near the top: about −150 per episode;
- goal/point: the velocity straight to the goal, (g − p) / step_size clipped to [-1, 1];
- random: uniform actions (continuous ones in [-1, 1]).

``policy(obs, key) -> (action, extras)`` as :func:`fnrl.datasets.collect` takes them; ``noisy``
experts take a uniformly random action with probability ``eps`` (a "medium" policy).
"""
import jax
import jax.numpy as jnp

from fnrl import datasets, envs


def expert(env_name: str, eps: float = 0.0):
    def act(obs):
        if env_name == "cartpole":
            return (obs[..., 2] + 0.5 * obs[..., 3] > 0).astype(jnp.int32)
        if env_name == "goal/point":
            return jnp.clip((obs[..., 2:] - obs[..., :2]) / envs.make(env_name).step_size, -1.0, 1.0)
        c, s, w = obs[..., 0], obs[..., 1], obs[..., 2]
        energy = 0.5 * w ** 2 + 15.0 * (c - 1.0)
        pump = jnp.where(energy < 0, jnp.sign(w + 1e-6), -jnp.sign(w))
        return jnp.where(c > 0.85, jnp.clip(-(12.0 * jnp.arctan2(s, c) + 2.5 * w) / 2.0, -1, 1), pump)[..., None]

    rand = random_policy(env_name)

    def policy(obs, key):
        explore_key, random_key = jax.random.split(key)
        action = act(obs)
        if eps > 0:
            flip = jax.random.uniform(explore_key, obs.shape[:1]) < eps
            other = rand(obs, random_key)[0]
            action = jnp.where(flip.reshape(flip.shape + (1,) * (action.ndim - 1)), other, action)
        return action, {}

    return policy


def random_policy(env_name: str):
    spec = envs.make(env_name).spec

    def policy(obs, key):
        if spec.discrete:
            return jax.random.randint(key, obs.shape[:1], 0, spec.num_actions), {}
        return jax.random.uniform(key, obs.shape[:1] + spec.action_shape, minval=-1.0, maxval=1.0), {}

    return policy


def make(path, env_name: str, policy, steps: int, seed: int = 0, num_envs: int = 4, **meta) -> datasets.Dataset:
    """``steps`` steps of ``policy`` on ``env_name``, written as a Minari dataset at ``path``."""
    episodes = datasets.collect(envs.make(env_name), policy, jax.random.PRNGKey(seed), steps, num_envs)
    return datasets.save(str(path), episodes, env_name, **meta)
