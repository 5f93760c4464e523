"""Soft actor-critic with twin critics and a learned temperature (Haarnoja et al. 2018a, 2018b).

    critics:     L(φ_i) = Ê[(Q_φi(s, a) − y)²],
                 y = G + γ^m (1 − term) (min_j Q_φ'j(s', a') − α log π_θ(a'|s')),   a' ~ π_θ(·|s')
                 (without the −α log π term if not ``backup_entropy``)
    actor:       L(θ) = Ê_s[α log π_θ(a|s) − min_j Q_φj(s, a)],   a = tanh(μ_θ(s) + σ_θ(s) ε)
    temperature: L(log α) = −Ê[log α · (log π_θ(a|s) + H̄)],       H̄ = −dim(A) by default
    targets:     φ' ← τ φ + (1 − τ) φ'

The policy is a tanh-squashed Gaussian (:class:`fnrl.networks.TanhNormal`); it explores by
sampling and is evaluated at its mode ``tanh(μ_θ(s))``.

Composed of:
- :func:`fnrl.losses.td_target`, :func:`fnrl.losses.ensemble_td_loss` -- the soft Bellman
  regression (importance-weighted under prioritised replay);
- :func:`fnrl.losses.sac_actor_loss`, :func:`fnrl.losses.sac_temperature_loss`;
- :func:`fnrl.transforms.polyak_update` -- the target critics;
- :func:`fnrl.networks.make_policy` (``tanh_gaussian``), :func:`fnrl.networks.make_q_network`
  with two critics; the replay loop of :mod:`fnrl.loops.offpolicy`.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fnrl import losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput, distribution_action
from fnrl.config import constrained, positive, positive_int
from fnrl.loops import core, offpolicy

SUPPORTS = ("continuous",)


@dataclasses.dataclass(frozen=True)
class Config(offpolicy.OffPolicyConfig):
    env: str = "pendulum"
    hidden_sizes: tuple[int, ...] = (64, 64)
    actor_learning_rate: float = positive(1e-3)
    critic_learning_rate: float = positive(1e-3)
    temperature_learning_rate: float = positive(1e-3)
    tau: float = constrained(0.005, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    num_critics: int = positive_int(2)
    init_temperature: float = positive(1.0)
    target_entropy: float | None = None
    backup_entropy: bool = True  # the −α log π term of the target y (CQL's implementations drop it offline)


class Learner(NamedTuple):
    actor: Any
    critic: Any
    target_critic: Any
    log_alpha: jax.Array  # log temperature
    actor_opt: Any
    critic_opt: Any
    alpha_opt: Any


def make_agent(config: Config, spec, critic_penalty=None) -> Agent:
    """SAC's agent. ``critic_penalty(q, policy, batch, key) -> (penalty, metrics)``, if given, is a
    term added to the critics' loss with weight ``w``: ``Σ_i L(φ_i) + w · penalty``, where
    ``q(obs, action) -> [num_critics, ...]`` are the critics being differentiated and
    ``policy(obs)`` the current policy's distribution (CQL, :mod:`fnrl.algorithms.cql`). The
    agent's ``update`` takes ``w`` as an optional fourth argument, ``penalty_weight`` (1 unless a
    caller that owns it passes it)."""
    torso = networks.Torso(config.hidden_sizes)
    policy = networks.make_policy(spec, torso, distribution="tanh_gaussian", state_dependent_std=True)
    critic = networks.make_q_network(spec, torso, num_critics=config.num_critics)
    target_entropy = -math.prod(spec.action_shape) if config.target_entropy is None else config.target_entropy
    actor_opt, critic_opt, alpha_opt = (optax.adam(lr) for lr in (
        config.actor_learning_rate, config.critic_learning_rate, config.temperature_learning_rate))

    def min_critic(params, obs, action):
        return jnp.min(critic.apply(params, obs, action), axis=0)

    def init(key, obs):
        actor_key, critic_key, sample_key = jax.random.split(key, 3)
        actor_params = policy.init(actor_key, obs)
        critic_params = critic.init(critic_key, obs, policy.apply(actor_params, obs).sample(seed=sample_key))
        log_alpha = jnp.asarray(math.log(config.init_temperature), jnp.float32)
        return Learner(actor_params, critic_params, critic_params, log_alpha, actor_opt.init(actor_params),
                       critic_opt.init(critic_params), alpha_opt.init(log_alpha))

    def act(learner, obs, key, explore):
        dist = policy.apply(learner.actor, obs)
        return distribution_action(dist, key, explore)

    def critic_loss(params, learner, batch, key, penalty_weight=1.0):
        next_action, next_log_prob = policy.apply(learner.actor, batch.next_obs).sample_and_log_prob(seed=key)
        alpha = jnp.exp(learner.log_alpha)
        next_value = min_critic(learner.target_critic, batch.next_obs, next_action)
        if config.backup_entropy:
            next_value = next_value - alpha * next_log_prob
        target = losses.td_target(batch.reward, batch.termination, next_value, config.gamma ** batch.extras["n_steps"])
        q = critic.apply(params, batch.obs, batch.action)  # [num_critics, B]
        loss, td_error = losses.ensemble_td_loss(q, target, batch.extras["weight"])
        metrics = {"critic_loss": loss, "q": jnp.mean(q)}
        if critic_penalty is not None:
            penalty, penalty_metrics = critic_penalty(functools.partial(critic.apply, params),
                                                      functools.partial(policy.apply, learner.actor), batch,
                                                      jax.random.fold_in(key, 1))
            loss = loss + penalty_weight * penalty
            metrics = {**metrics, **penalty_metrics}
        return loss, (td_error, metrics)

    def actor_loss(params, learner, obs, key):
        action, log_prob = policy.apply(params, obs).sample_and_log_prob(seed=key)
        loss = losses.sac_actor_loss(min_critic, learner.critic, obs, action, log_prob, jnp.exp(learner.log_alpha))
        return loss, log_prob

    def update(learner, batch, key, penalty_weight=1.0):
        critic_key, actor_key = jax.random.split(key)
        grads, (td_error, metrics) = jax.grad(critic_loss, has_aux=True)(learner.critic, learner, batch, critic_key,
                                                                         penalty_weight)
        critic_params, critic_state = transforms.optimizer_step(critic_opt, grads, learner.critic_opt, learner.critic)
        learner = learner._replace(critic=critic_params, critic_opt=critic_state,
                                   target_critic=transforms.polyak_update(critic_params, learner.target_critic,
                                                                          config.tau))
        (loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(learner.actor, learner, batch.obs,
                                                                               actor_key)
        actor_params, actor_state = transforms.optimizer_step(actor_opt, grads, learner.actor_opt, learner.actor)
        grad = jax.grad(losses.sac_temperature_loss)(learner.log_alpha, log_prob, target_entropy)
        log_alpha, alpha_state = transforms.optimizer_step(alpha_opt, grad, learner.alpha_opt, learner.log_alpha)
        learner = learner._replace(actor=actor_params, actor_opt=actor_state, log_alpha=log_alpha,
                                   alpha_opt=alpha_state)
        metrics = {**metrics, "actor_loss": loss, "alpha": jnp.exp(log_alpha), "entropy": -jnp.mean(log_prob)}
        return UpdateOutput(learner, metrics, jnp.abs(td_error))

    def log_prob(learner, obs, action):
        return policy.apply(learner.actor, obs).log_prob(action)

    return Agent(init, act, update, log_prob=log_prob)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for SAC; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return offpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
