"""Behavioural cloning: maximum likelihood of the dataset's actions (Pomerleau 1991).

    L(θ) = −Ê_(s, a)~D [log π_θ(a|s)]

A categorical policy for discrete actions, a tanh-squashed Gaussian for continuous ones
(actions in [-1, 1]); evaluated at its mode.

Composed of:
- :func:`fnrl.losses.bc_nll_loss`;
- :func:`fnrl.networks.make_policy`; the dataset loop of :mod:`fnrl.loops.offline`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import optax

from fnrl import losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput, distribution_action
from fnrl.config import positive
from fnrl.loops import core, offline

SUPPORTS = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
    learning_rate: float = positive(1e-3)


class Learner(NamedTuple):
    policy: Any
    opt: Any


def make_agent(config: Config, spec) -> Agent:
    policy = networks.make_policy(spec, networks.Torso(config.hidden_sizes),
                                  distribution="categorical" if spec.discrete else "tanh_gaussian")
    optimizer = optax.adam(config.learning_rate)

    def init(key, obs):
        params = policy.init(key, obs)
        return Learner(params, optimizer.init(params))

    def act(learner, obs, key, explore):
        return distribution_action(policy.apply(learner.policy, obs), key, explore)

    def loss(params, batch):
        return losses.bc_nll_loss(policy.apply(params, batch.obs).log_prob(batch.action))

    def update(learner, batch, key):
        value, grads = jax.value_and_grad(loss)(learner.policy, batch)
        params, opt = transforms.optimizer_step(optimizer, grads, learner.opt, learner.policy)
        return UpdateOutput(Learner(params, opt), {"bc_loss": value})

    def log_prob(learner, obs, action):
        return policy.apply(learner.policy, obs).log_prob(action)

    return Agent(init, act, update, log_prob=log_prob)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for BC on ``config.dataset``; see :mod:`fnrl.loops.offline`."""
    env = core.make_env(config)
    dataset = offline.load_dataset(config, env)
    return offline.make_train(config, env, make_agent(config, env.spec), dataset, on_eval)
