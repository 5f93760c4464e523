"""Implicit Q-learning (Kostrikov, Nair & Levine 2022): in-sample value learning, never querying
an action outside the dataset, then advantage-weighted policy extraction.

    value:   L(ψ) = Ê_(s,a)~D[L₂^τ(min_i Q_φ'i(s, a) − V_ψ(s))],   L₂^τ(u) = |τ − 1(u < 0)| u²,  τ = 0.7
    critics: L(φ_i) = Ê_(s,a,r,s')~D[(Q_φi(s, a) − r − γ (1 − term) V_ψ(s'))²]
    policy:  L(θ) = −Ê_(s,a)~D[min(exp(β (min_i Q_φ'i(s, a) − V_ψ(s))), w_max) log π_θ(a|s)],  β = 3, w_max = 100
    targets: φ' ← τ_p φ + (1 − τ_p) φ'

With τ → 1 the expectile V tends to the maximum of Q over the dataset's actions, so the critic
approaches in-sample Q-learning; τ = ½ gives SARSA-style evaluation of the behaviour policy. Each
update moves V on the target critics, then the policy on V's new values, then the critics, then
the targets (the order of the paper's code). The policy is a categorical distribution for
discrete actions and, for continuous ones, a diagonal Gaussian with a state-independent standard
deviation as in the paper's code (or a tanh-squashed Gaussian, ``policy_distribution``; see
:mod:`fnrl.algorithms.awac` on why not by default), evaluated at its mode.

Composed of:
- :func:`fnrl.losses.expectile_loss` -- V;
- :func:`fnrl.losses.td_target`, :func:`fnrl.losses.ensemble_td_loss` -- the critics' regression on V(s');
- :func:`fnrl.losses.awr_actor_loss` (weights :func:`fnrl.losses.awr_weights`, temperature 1/β);
- :func:`fnrl.transforms.polyak_update` -- the target critics;
- :func:`fnrl.networks.make_policy`, :func:`fnrl.networks.make_q_network` (two critics),
  :func:`fnrl.networks.make_value`; the dataset loop of :mod:`fnrl.loops.offline`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fnrl import losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput, distribution_action
from fnrl.config import constrained, one_of, positive, positive_int
from fnrl.loops import core, offline

SUPPORTS = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
    env: str = "pendulum"
    expectile: float = constrained(0.7, lambda v: 0.0 < v < 1.0, "in (0, 1)")  # τ
    beta: float = positive(3.0)  # inverse temperature of the advantage weights exp(β A)
    max_weight: float = positive(100.0)
    actor_learning_rate: float = positive(3e-4)
    critic_learning_rate: float = positive(3e-4)
    value_learning_rate: float = positive(3e-4)
    tau: float = constrained(0.005, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    num_critics: int = positive_int(2)
    policy_distribution: str = one_of("gaussian", ("gaussian", "tanh_gaussian"))  # continuous actions


class Learner(NamedTuple):
    actor: Any
    critic: Any
    target_critic: Any
    value: Any
    actor_opt: Any
    critic_opt: Any
    value_opt: Any


def make_agent(config: Config, spec) -> Agent:
    torso = networks.Torso(config.hidden_sizes)
    policy = networks.make_policy(spec, torso, distribution="categorical" if spec.discrete
                                  else config.policy_distribution)
    critic = networks.make_q_network(spec, torso, num_critics=config.num_critics)
    value = networks.make_value(spec, torso)
    actor_opt, critic_opt, value_opt = (optax.adam(lr) for lr in (
        config.actor_learning_rate, config.critic_learning_rate, config.value_learning_rate))

    def q_of(params, obs, action):  # [num_critics, B]: Q_i(s, a) of the dataset's actions
        if spec.discrete:
            q = critic.apply(params, obs)
            return losses.action_value(q, jnp.broadcast_to(action, q.shape[:-1]))
        return critic.apply(params, obs, action)

    def init(key, obs):
        actor_key, critic_key, value_key = jax.random.split(key, 3)
        actor_params = policy.init(actor_key, obs)
        action = policy.apply(actor_params, obs).mode()
        critic_params = critic.init(critic_key, obs) if spec.discrete else critic.init(critic_key, obs, action)
        value_params = value.init(value_key, obs)
        return Learner(actor_params, critic_params, critic_params, value_params, actor_opt.init(actor_params),
                       critic_opt.init(critic_params), value_opt.init(value_params))

    def act(learner, obs, key, explore):
        return distribution_action(policy.apply(learner.actor, obs), key, explore)

    def value_loss(params, target_q, obs):
        v = value.apply(params, obs)
        return losses.expectile_loss(v, target_q, config.expectile), v

    def actor_loss(params, obs, action, advantage):
        log_prob = policy.apply(params, obs).log_prob(action)
        return losses.awr_actor_loss(log_prob, advantage, 1.0 / config.beta, config.max_weight)

    def critic_loss(params, next_v, batch):
        target = losses.td_target(batch.reward, batch.termination, next_v, config.gamma ** batch.extras["n_steps"])
        loss, td_error = losses.ensemble_td_loss(q_of(params, batch.obs, batch.action), target,
                                                 batch.extras["weight"])
        return loss, td_error

    def update(learner, batch, key):
        target_q = jnp.min(q_of(learner.target_critic, batch.obs, batch.action), axis=0)
        (v_loss, v), grads = jax.value_and_grad(value_loss, has_aux=True)(learner.value, target_q, batch.obs)
        value_params, value_state = transforms.optimizer_step(value_opt, grads, learner.value_opt, learner.value)

        advantage = target_q - value.apply(value_params, batch.obs)
        a_loss, grads = jax.value_and_grad(actor_loss)(learner.actor, batch.obs, batch.action, advantage)
        actor_params, actor_state = transforms.optimizer_step(actor_opt, grads, learner.actor_opt, learner.actor)

        next_v = value.apply(value_params, batch.next_obs)
        (q_loss, td_error), grads = jax.value_and_grad(critic_loss, has_aux=True)(learner.critic, next_v, batch)
        critic_params, critic_state = transforms.optimizer_step(critic_opt, grads, learner.critic_opt, learner.critic)

        learner = Learner(actor_params, critic_params,
                          transforms.polyak_update(critic_params, learner.target_critic, config.tau),
                          value_params, actor_state, critic_state, value_state)
        weights = losses.awr_weights(advantage, 1.0 / config.beta, config.max_weight)
        metrics = {"value_loss": v_loss, "critic_loss": q_loss, "actor_loss": a_loss, "v": jnp.mean(v),
                   "q": jnp.mean(target_q), "advantage": jnp.mean(advantage), "weight": jnp.mean(weights)}
        return UpdateOutput(learner, metrics, jnp.abs(td_error))

    return Agent(init, act, update)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for IQL on ``config.dataset``; see :mod:`fnrl.loops.offline`."""
    env = core.make_env(config)
    dataset = offline.load_dataset(config, env)
    return offline.make_train(config, env, make_agent(config, env.spec), dataset, on_eval)
