"""Goal-conditioned behavioural cloning with hindsight relabelling (GCSL, Ghosh et al. 2019;
play-GCBC, Lynch et al. 2019; the "future" goals of HER, Andrychowicz et al. 2017).

A policy π_θ(a | s, g) over the observation (s, g) of a goal-conditioned environment is fitted
by maximum likelihood to the dataset's actions, with each transition's goal g relabelled (with
probability ``relabel_probability``) as the goal the same episode achieved at a uniformly drawn
later step t' ∈ {t, ..., T}:

    L(θ) = −Ê_(s_t, a_t)~D, t'~U{t..T} [log π_θ(a_t | s_t, φ(s_{t'+1}))]

so any data, a random policy's too, demonstrates how to reach where it went. With
``relabel_probability = 0`` this is plain BC on the recorded goals (:mod:`fnrl.algorithms.bc`).
Needs a goal environment (:func:`fnrl.envs.goal.goal_slices`: ``goal/point``) with continuous
actions; evaluated at the policy's mode on the environment's own goals.

Composed of:
- :func:`fnrl.loops.offline.hindsight_relabel` (the sampler);
- BC's agent (:func:`fnrl.algorithms.bc.make_agent`: :func:`fnrl.losses.bc_nll_loss`, a
  tanh-Gaussian :func:`fnrl.networks.make_policy`); the dataset loop of :mod:`fnrl.loops.offline`.
"""
from __future__ import annotations

import dataclasses

from fnrl.algorithms import bc
from fnrl.config import unit_interval
from fnrl.envs.goal import goal_slices
from fnrl.loops import core, offline

SUPPORTS = ("continuous",)
ENV = "goal/point"  # the goal environment it runs on by default (and in the tests' command-line matrix)


@dataclasses.dataclass(frozen=True)
class Config(bc.Config):
    env: str = ENV
    relabel_probability: float = unit_interval(1.0)


make_agent = bc.make_agent


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for GCBC on ``config.dataset``; see :mod:`fnrl.loops.offline`."""
    env = core.make_env(config)
    core.check_env("gcbc", SUPPORTS, env, config.env)
    goals = goal_slices(env)
    if goals is None:
        raise ValueError(f"gcbc needs a goal-conditioned environment (observations holding an achieved and a "
                         f"desired goal: goal/point); {config.env} is not")
    dataset = offline.load_dataset(config, env)
    sample = offline.hindsight_relabel(dataset, *goals, probability=config.relabel_probability)
    return offline.make_train(config, env, make_agent(config, env.spec), dataset, on_eval, sample=sample)
