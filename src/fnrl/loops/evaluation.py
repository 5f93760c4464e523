"""Evaluation episodes, the same for every loop, ``fnrl eval`` and ``fnrl render``."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from fnrl import envs
from fnrl.envs.wrappers import NormalizeObservation

__all__ = ["episode_limit", "evaluate", "start_episodes"]


def episode_limit(env: envs.Env) -> int:
    """Steps an evaluation episode may take: ``env``'s time limit, else 1000."""
    return getattr(env, "max_episode_steps", None) or 1000


def start_episodes(env: envs.Env, num_episodes: int, key, obs_stats=None) -> tuple[envs.Env, envs.EnvState]:
    """``num_episodes`` fresh episodes of ``env`` as evaluations run them: a batch without
    auto-reset (an ended episode stays ended) and, when ``obs_stats`` (a training run's
    observation statistics) is given, observations normalised by them, frozen. Returns the
    batched environment and its reset state."""
    batched = envs.wrap(env, num_envs=num_episodes, auto_reset=False)
    if obs_stats is not None:
        batched = NormalizeObservation(batched, update=False)
    state = batched.reset(key)
    if obs_stats is not None:
        state = batched.with_stats(state, obs_stats)
    return batched, state


def evaluate(env: envs.Env, act: Callable, learner: Any, key, num_episodes: int,
             max_steps: int, obs_stats=None, discount: float = 1.0, per_episode: bool = False) -> jax.Array:
    """Mean undiscounted return of ``act(learner, obs, key) -> (action, extras)`` over
    ``num_episodes`` episodes (each run to its end or ``max_steps``), all in one ``lax.scan``
    over a batch of environments (:func:`start_episodes`; ``obs_stats`` for a policy trained
    on normalised observations). With ``discount`` γ < 1 the returns are discounted,
    Σ_t γ^t r_t (a Monte Carlo estimate of J(π), :mod:`fnrl.ope`); with ``per_episode`` the
    ``[num_episodes]`` returns themselves instead of their mean."""
    reset_key, key = jax.random.split(key)
    batched, state = start_episodes(env, num_episodes, reset_key, obs_stats)

    def step(carry, step_key):
        state, total, alive, weight = carry
        action, _ = act(learner, state.obs, step_key)
        state = batched.step(state, action)
        # A where, not alive * reward: an ended episode keeps stepping, and Brax physics past a
        # termination can reach NaN (e.g. brax/ant), which 0 * NaN would carry into the total.
        total = total + jnp.where(alive > 0, weight * state.reward, 0.0)
        alive = alive * (1.0 - jnp.maximum(state.termination, state.truncation))
        return (state, total, alive, weight * discount), None

    init = (state, jnp.zeros(num_episodes), jnp.ones(num_episodes), jnp.ones(()))
    (_, total, _, _), _ = jax.lax.scan(step, init, jax.random.split(key, max_steps))
    return total if per_episode else total.mean()
