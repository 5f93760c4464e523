"""Advantage-weighted actor-critic (Nair, Gupta, Dalal & Levine 2020): an off-policy critic of the
current policy, and a policy fitted to the dataset's actions weighted by their advantage.

    critics: L(φ_i) = Ê_D[(Q_φi(s, a) − y)²],   y = r + γ (1 − term) min_j Q_φ'j(s', a'),   a' ~ π_θ(·|s')
    policy:  L(θ) = −Ê_(s,a)~D[min(exp(A(s, a) / λ), w_max) log π_θ(a|s)],   λ = 1, w_max = 100
             A(s, a) = min_j Q_φj(s, a) − (1/K) Σ_k min_j Q_φj(s, a_k),   a_k ~ π_θ(·|s)
    targets: φ' ← τ φ + (1 − τ) φ'

The policy step solves the KL-constrained improvement max_π E_π[A] s.t. KL(π‖π_β) ≤ ε in closed
form, π* ∝ π_β exp(A/λ), and projects it on the policy class by weighted maximum likelihood, so
it never evaluates the critic at actions the data lack; the critic is SAC's without the entropy
term (:mod:`fnrl.algorithms.sac`). ``value_samples`` = K estimates V^π(s) = E_{a~π}Q(s, a)
(K = 1 as in the paper's code). The policy is a diagonal Gaussian (or a tanh-squashed one,
``policy_distribution``), evaluated at its mode; its samples are clipped to the action box
``[-1, 1]`` (where the environment clips them) before the critic sees them. (A Gaussian's
weighted likelihood fits its mean by weighted least squares; a tanh-Gaussian's puts a large
density on actions at the bounds, which bang-bang data -- pendulum's experts -- are full of, and
cloning them with it is far less reliable.)

Composed of:
- :func:`fnrl.losses.td_target`, :func:`fnrl.losses.ensemble_td_loss` -- the critics;
- :func:`fnrl.losses.awr_actor_loss` (weights :func:`fnrl.losses.awr_weights`);
- :func:`fnrl.transforms.polyak_update` -- the target critics;
- :func:`fnrl.networks.make_policy` (``gaussian``), :func:`fnrl.networks.make_q_network`
  with two critics; the dataset loop of :mod:`fnrl.loops.offline`.
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

SUPPORTS = ("continuous",)


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
    env: str = "pendulum"
    temperature: float = positive(1.0)  # λ of the weights exp(A / λ)
    max_weight: float = positive(100.0)
    value_samples: int = positive_int(1)  # K: policy actions per state estimating V^π(s)
    actor_learning_rate: float = positive(3e-4)
    critic_learning_rate: float = positive(3e-4)
    tau: float = constrained(0.005, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    num_critics: int = positive_int(2)
    policy_distribution: str = one_of("gaussian", ("gaussian", "tanh_gaussian"))


class Learner(NamedTuple):
    actor: Any
    critic: Any
    target_critic: Any
    actor_opt: Any
    critic_opt: Any


def make_agent(config: Config, spec) -> Agent:
    torso = networks.Torso(config.hidden_sizes)
    policy = networks.make_policy(spec, torso, distribution=config.policy_distribution)
    critic = networks.make_q_network(spec, torso, num_critics=config.num_critics)
    actor_opt, critic_opt = optax.adam(config.actor_learning_rate), optax.adam(config.critic_learning_rate)

    def min_critic(params, obs, action):
        return jnp.min(critic.apply(params, obs, action), axis=0)

    def init(key, obs):
        actor_key, critic_key = jax.random.split(key)
        actor_params = policy.init(actor_key, obs)
        critic_params = critic.init(critic_key, obs, policy.apply(actor_params, obs).mode())
        return Learner(actor_params, critic_params, critic_params, actor_opt.init(actor_params),
                       critic_opt.init(critic_params))

    def act(learner, obs, key, explore):
        return distribution_action(policy.apply(learner.actor, obs), key, explore)

    def critic_loss(params, learner, batch, key):
        next_action = jnp.clip(policy.apply(learner.actor, batch.next_obs).sample(seed=key), -1.0, 1.0)
        next_q = min_critic(learner.target_critic, batch.next_obs, next_action)
        target = losses.td_target(batch.reward, batch.termination, next_q, config.gamma ** batch.extras["n_steps"])
        q = critic.apply(params, batch.obs, batch.action)  # [num_critics, B]
        loss, td_error = losses.ensemble_td_loss(q, target, batch.extras["weight"])
        return loss, (td_error, {"critic_loss": loss, "q": jnp.mean(q)})

    def advantage(learner, batch, key):
        dist = policy.apply(learner.actor, batch.obs)
        actions = jnp.clip(dist.sample(seed=key, sample_shape=config.value_samples), -1.0, 1.0)  # [K, B, d]
        v = jnp.mean(jax.vmap(lambda a: min_critic(learner.critic, batch.obs, a))(actions), axis=0)
        return min_critic(learner.critic, batch.obs, batch.action) - v

    def actor_loss(params, obs, action, adv):
        log_prob = policy.apply(params, obs).log_prob(action)
        return losses.awr_actor_loss(log_prob, adv, config.temperature, config.max_weight)

    def update(learner, batch, key):
        critic_key, actor_key = jax.random.split(key)
        grads, (td_error, metrics) = jax.grad(critic_loss, has_aux=True)(learner.critic, learner, batch, critic_key)
        critic_params, critic_state = transforms.optimizer_step(critic_opt, grads, learner.critic_opt, learner.critic)
        learner = learner._replace(critic=critic_params, critic_opt=critic_state,
                                   target_critic=transforms.polyak_update(critic_params, learner.target_critic,
                                                                          config.tau))
        adv = advantage(learner, batch, actor_key)
        loss, grads = jax.value_and_grad(actor_loss)(learner.actor, batch.obs, batch.action, adv)
        actor_params, actor_state = transforms.optimizer_step(actor_opt, grads, learner.actor_opt, learner.actor)
        learner = learner._replace(actor=actor_params, actor_opt=actor_state)
        weights = losses.awr_weights(adv, config.temperature, config.max_weight)
        metrics = {**metrics, "actor_loss": loss, "advantage": jnp.mean(adv), "weight": jnp.mean(weights)}
        return UpdateOutput(learner, metrics, jnp.abs(td_error))

    return Agent(init, act, update)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for AWAC on ``config.dataset``; see :mod:`fnrl.loops.offline`."""
    env = core.make_env(config)
    dataset = offline.load_dataset(config, env)
    return offline.make_train(config, env, make_agent(config, env.spec), dataset, on_eval)
