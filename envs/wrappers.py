"""Composable environment wrappers; all pure, all work under jit, vmap and pmap."""
from __future__ import annotations

import jax.numpy as jnp

from fnrl.envs.core import Env, EnvState, Wrapper


class TimeLimit(Wrapper):
    """Sets ``truncation`` once an episode reaches ``max_episode_steps`` steps.

    A step that both terminates and hits the limit counts as a termination (no bootstrap).
    The step counter lives in ``state.info["steps"]``.
    """

    def __init__(self, env: Env, max_episode_steps: int):
        if int(max_episode_steps) <= 0:
            raise ValueError(f"max_episode_steps must be a positive integer, got {max_episode_steps!r}")
        super().__init__(env)
        self.max_episode_steps = int(max_episode_steps)

    def reset(self, key) -> EnvState:
        state = self.env.reset(key)
        return state.replace(info={**state.info, "steps": jnp.zeros((), jnp.int32)})

    def step(self, state: EnvState, action) -> EnvState:
        next_state = self.env.step(state, action)
        steps = state.info["steps"] + 1
        hit_limit = (steps >= self.max_episode_steps) & (next_state.termination == 0)
        truncation = jnp.maximum(next_state.truncation, hit_limit.astype(jnp.float32))
        return next_state.replace(truncation=truncation, info={**next_state.info, "steps": steps})
