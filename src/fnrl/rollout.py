"""Rollouts: a policy steps a batched, auto-resetting environment for T steps in one lax.scan.

    env = fnrl.envs.wrap(fnrl.envs.make("brax/ant"), num_envs=256)
    state = env.reset(key)
    state, traj, episodes = rollout(env, policy, params, state, key, num_steps=128)
    # traj.obs: [128, 256, 27]; traj.extras["log_prob"]: [128, 256]; state continues the run.

``traj`` is a time-major :class:`fnrl.types.Trajectory`. Its ``next_obs`` is the observation
each step actually reached (the final observation where an episode ended, kept by
:class:`fnrl.envs.wrappers.AutoReset`), so truncated steps bootstrap from ``V(next_obs)``
and the first observation of the next episode never leaks into a target.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp

from fnrl.envs.core import Env, EnvState
from fnrl.types import Params, Trajectory, Transition

# policy(params, obs, key) -> (action, extras); obs and action carry the batch axis [B, ...].
Policy = Callable[[Params, chex.Array, chex.PRNGKey], tuple[chex.Array, dict]]


class Episodes(NamedTuple):
    """Episodes that ended during a rollout, time-major ``[T, B]`` like the trajectory.

    done: 1.0 where an episode ended at that step (``max(termination, truncation)``).
    episode_return: its undiscounted return ``sum_t r_t`` where ``done``, else 0.
    episode_length: its number of steps where ``done``, else 0.
    """

    done: chex.Array
    episode_return: chex.Array
    episode_length: chex.Array


def rollout(env: Env, policy: Policy, params: Params, env_state: EnvState, key: chex.PRNGKey,
            num_steps: int) -> tuple[EnvState, Trajectory, Episodes]:
    """Runs ``policy`` in ``env`` for ``num_steps`` steps with ``lax.scan``.

    At each step ``t``: ``a_t, extras_t = policy(params, s_t, k_t)`` with
    ``k_t = split(key, num_steps)[t]``, then ``env.step`` gives ``r_t``, the flags and
    ``s_{t+1}`` = ``info["final_obs"]`` (the Monte-Carlo sampling of ``tau ~ p_theta(tau)``
    in the policy-gradient estimator, Williams 1992; final observations for truncation per
    Pardo et al., "Time Limits in Reinforcement Learning", ICML 2018).

    Args:
      env: an auto-resetting environment (``fnrl.envs.wrap(..., auto_reset=True)``),
        usually batched.
      policy: ``policy(params, obs, key) -> (action, extras)``; ``extras`` a dict of arrays
        (e.g. ``log_prob``, ``value``) recorded per step.
      params: the policy's parameters.
      env_state: the state to start from (``env.reset(key)`` or a previous rollout's).
      key: randomness for the policy.
      num_steps: T, a positive Python int.

    Returns:
      ``(env_state, trajectory, episodes)``: the state to continue from, a
      :class:`fnrl.types.Trajectory` with leaves ``[T, B, ...]`` and :class:`Episodes`.
    """
    if not isinstance(num_steps, int) or num_steps <= 0:
        raise ValueError(f"rollout: num_steps must be a positive int, got {num_steps!r}")
    if "final_obs" not in env_state.info:
        raise ValueError("rollout: env_state has no info['final_obs']; build the env with "
                         "fnrl.envs.wrap(env, auto_reset=True) (or wrap it in AutoReset)")
    chex.assert_equal_shape([env_state.reward, env_state.termination, env_state.truncation],
                            custom_message="rollout: env_state.reward/termination/truncation")

    def step(state: EnvState, step_key) -> tuple[EnvState, tuple[Transition, Episodes]]:
        action, extras = policy(params, state.obs, step_key)
        next_state = env.step(state, action)
        transition = Transition(obs=state.obs, action=action, reward=next_state.reward,
                                termination=next_state.termination, truncation=next_state.truncation,
                                next_obs=next_state.info["final_obs"], extras=extras)
        done = jnp.maximum(next_state.termination, next_state.truncation)
        episodes = Episodes(done, next_state.info["ended_return"], next_state.info["ended_length"])
        return next_state, (transition, episodes)

    env_state, (trajectory, episodes) = jax.lax.scan(step, env_state, jax.random.split(key, num_steps))
    return env_state, trajectory, episodes


def episode_metrics(episodes: Episodes) -> dict[str, Any]:
    """Means over the episodes that ended: ``episode_return``, ``episode_length`` (NaN when
    none ended) and their count ``num_episodes``."""
    chex.assert_equal_shape([episodes.done, episodes.episode_return, episodes.episode_length],
                            custom_message="episode_metrics: Episodes fields")
    count = jnp.sum(episodes.done)
    mean = lambda x: jnp.where(count > 0, jnp.sum(x * episodes.done) / jnp.maximum(count, 1.0), jnp.nan)  # noqa: E731
    return {"episode_return": mean(episodes.episode_return),
            "episode_length": mean(episodes.episode_length.astype(jnp.float32)),
            "num_episodes": count}


__all__ = ["Episodes", "rollout", "episode_metrics"]
