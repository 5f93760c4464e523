"""Goal-reaching environments: the observation holds where the agent is and where it should go.

A goal-conditioned environment (:class:`GoalEnv`) says which parts of its (flat) observation are
the *achieved goal* -- the part of the state a goal speaks about -- and the *desired goal* of the
episode, as the class attributes ``achieved_goal`` and ``desired_goal``: ``(start, stop)`` index
pairs into the last observation axis. :func:`goal_slices` reads them through any wrappers, so an
algorithm can relabel goals (hindsight relabelling, :func:`fnrl.loops.offline.hindsight_relabel`)
without knowing the environment: the observation ``obs`` has the achieved goal
``obs[..., achieved]`` and the desired goal ``obs[..., desired]``, and putting an achieved goal
into the desired slot is a valid observation of the same state under another goal.

``goal/point``: :class:`PointGoal`, a point in the square [−1, 1]² moved by velocity actions to a
goal drawn at reset; time limit 50 steps (:func:`fnrl.envs.make`).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from fnrl.envs import register
from fnrl.envs.core import Env, EnvState, Spec, as_float

__all__ = ["GoalEnv", "PointGoal", "goal_slices"]


class GoalEnv(Env):
    """An environment whose observation ends in goals: ``obs[..., slice(*achieved_goal)]`` is the
    achieved goal and ``obs[..., slice(*desired_goal)]`` the desired goal (same length)."""

    achieved_goal: ClassVar[tuple[int, int]]
    desired_goal: ClassVar[tuple[int, int]]


def goal_slices(env: Env) -> tuple[slice, slice] | None:
    """``(achieved, desired)``: the slices of the last observation axis of ``env`` (wrapped or
    not) that hold the achieved and the desired goal; None when ``env`` is not a :class:`GoalEnv`."""
    inner = env.unwrapped
    if not isinstance(inner, GoalEnv):
        return None
    return slice(*inner.achieved_goal), slice(*inner.desired_goal)


@dataclasses.dataclass(frozen=True)
class PointGoal(GoalEnv):
    """A point reaching a goal in the square [−1, 1]² (the simplest of the goal-reaching tasks of
    hindsight relabelling: Andrychowicz et al. 2017, Ghosh et al. 2019).

    At reset the position p and the goal g are drawn uniformly from the square. An action
    a ∈ [−1, 1]² (clipped to it) is a velocity::

        p' = clip(p + step_size · a, −1, 1)
        r  = 0 and termination if ‖p' − g‖ ≤ radius, else r = −1

    so the return of an episode that reaches the goal on step k is −(k − 1), and −50 for one that
    does not within the time limit of 50 steps: the success rate is the fraction of returns above
    −50. Observation (p, g) ∈ R⁴, float32: achieved goal = p = ``obs[0:2]``, desired goal =
    g = ``obs[2:4]``. A goal drawn within ``radius`` of the start is reached by any first step that
    stays there. ``state.internal`` is the observation.
    """

    step_size: float = 0.1
    radius: float = 0.1
    name = "goal/point"
    achieved_goal = (0, 2)
    desired_goal = (2, 4)

    @property
    def spec(self) -> Spec:
        return Spec(observation_shape=(4,), action_shape=(2,), action_low=(-1.0, -1.0), action_high=(1.0, 1.0))

    def reset(self, key: chex.PRNGKey) -> EnvState:
        obs = jax.random.uniform(key, (4,), jnp.float32, -1.0, 1.0)
        zero = jnp.zeros((), jnp.float32)
        return EnvState(obs=obs, reward=zero, termination=zero, truncation=zero, internal=obs)

    def step(self, state: EnvState, action: chex.Array) -> EnvState:
        action = self.spec.check_action(action, self.name)
        position, goal = state.internal[:2], state.internal[2:]
        position = jnp.clip(position + self.step_size * jnp.clip(action, -1.0, 1.0), -1.0, 1.0)
        reached = jnp.linalg.norm(position - goal) <= self.radius
        obs = jnp.concatenate([position, goal])
        return state.replace(obs=obs, reward=as_float(jnp.where(reached, 0.0, -1.0)), termination=as_float(reached),
                             truncation=jnp.zeros((), jnp.float32), internal=obs)


register("goal/point", PointGoal, max_episode_steps=50)
