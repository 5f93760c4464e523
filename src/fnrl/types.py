"""Pytrees shared by every part of fnrl.

All sequence data is time-major: a :class:`Trajectory` holds arrays of shape ``[T, B, ...]``
(or ``[T, ...]`` without a batch), a :class:`Transition` the same fields without the time axis.

Episode boundaries (README, "Design"): ``termination`` marks a true terminal state (no
bootstrap), ``truncation`` a time limit (bootstrap from the value of ``next_obs``, which for
an ended episode is the *final* observation kept by auto-reset, not the first observation of
the next episode).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import chex

Array = chex.Array
PRNGKey = chex.PRNGKey
Params = Any


class Transition(NamedTuple):
    """One environment step ``(s, a, r, s')`` with its episode-boundary flags.

    Attributes:
      obs: observation the action was taken in.
      action: the action taken.
      reward: reward received for the step.
      termination: 1.0 where ``next_obs`` is a true terminal state (no bootstrap).
      truncation: 1.0 where the episode was cut by a time limit (bootstrap from ``next_obs``).
      next_obs: observation after the step; the final observation of an ended episode.
      extras: per-step extras of the acting policy (e.g. ``log_prob``, ``value``).
    """

    obs: Array
    action: Array
    reward: Array
    termination: Array
    truncation: Array
    next_obs: Array
    extras: dict = {}


# A trajectory is a Transition whose leaves carry a leading time axis: [T, B, ...].
Trajectory = Transition
