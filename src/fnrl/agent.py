"""The one contract between an algorithm and a training loop.

An algorithm is an :class:`Agent`: three (or four) pure functions over its ``learner`` (a NamedTuple of
parameters, optimiser states, counters, ...). The loop owns the environment, the data and
the schedule; the agent only says how to start, how to act and how to learn:

- ``init(key, obs) -> learner`` -- ``obs`` is a batch of observations, to shape the networks;
- ``act(learner, obs, key, explore) -> (action, extras)`` -- ``explore`` is a Python bool:
  True while collecting data (sampling, ε-greedy, action noise), False for the greedy policy
  that evaluations use by default (``eval_policy="greedy"`` of every config; ``"stochastic"``
  evaluates with ``explore=True``). ``extras`` (e.g. the behaviour ``log_prob``) are stored
  with each step, in the trajectory or the replay buffer;
- ``update(learner, batch, key) -> UpdateOutput`` -- one learning step on a batch: an
  on-policy loop passes a time-major :class:`~fnrl.types.Trajectory` ``[T, B, ...]``, an
  off-policy loop a replayed :class:`~fnrl.types.Transition` ``[B, ...]`` whose
  ``extras["weight"]`` are the importance weights of prioritised replay (ones otherwise) and
  ``extras["n_steps"]`` the bootstrap horizon ``m`` of each n-step transition; a model-based
  loop the whole :class:`~fnrl.replay.ReplayState` of real transitions (a model to fit, states
  to branch from);
- ``observe(learner, trajectory, key) -> (learner, trajectory)`` (optional; by default the
  identity) -- sees every freshly collected trajectory ``[T, B, ...]`` before the loop uses it
  (the on-policy update, the off-policy replay buffer, the off-policy warm-up too): it may
  update the learner from it (visit counts, a head drawn per episode) and rewrite it
  (:func:`fnrl.exploration.with_bonus` adds reward bonuses);
- ``log_prob(learner, obs, action) -> [B]`` (optional; None by default) -- log π(a|s) of the
  policy that ``act(..., explore=True)`` samples from, at a batch of actions: what off-policy
  evaluation (:mod:`fnrl.ope`) weighs a dataset's actions by. Agents whose policy is a
  distribution (bc, reinforce, a2c, ppo, npg, trpo, sac, mbpo) give it; a deterministic or
  greedy policy (dqn, ddpg, td3, planners) has no density and leaves it None.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex

__all__ = ["Agent", "UpdateOutput", "distribution_action", "unchanged"]


class UpdateOutput(NamedTuple):
    """What ``update`` returns: the new ``learner``, scalar ``metrics`` to log, and, for
    prioritised replay, per-sample ``priorities`` ``[B]`` (e.g. ``|δ|``; the loop adds
    ``priority_eps`` and raises them to ``priority_alpha``)."""

    learner: Any
    metrics: dict
    priorities: chex.Array | None = None


def unchanged(learner, trajectory, key):
    """The default ``observe``: the learner and the trajectory as they are."""
    return learner, trajectory


class Agent(NamedTuple):
    """``init``, ``act``, ``update``, ``observe`` and ``log_prob`` of an algorithm (module docstring)."""

    init: Callable
    act: Callable
    update: Callable
    observe: Callable = unchanged
    log_prob: Callable | None = None


def distribution_action(dist, key, explore: bool, with_log_prob: bool = False) -> tuple[chex.Array, dict]:
    """``act``'s result for a policy distribution (distrax): a sample while exploring (with its
    ``log_prob`` in the extras if ``with_log_prob``), the distribution's mode otherwise."""
    if not explore:
        return dist.mode(), {}
    if not with_log_prob:
        return dist.sample(seed=key), {}
    action, log_prob = dist.sample_and_log_prob(seed=key)
    return action, {"log_prob": log_prob}
