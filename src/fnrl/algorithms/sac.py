"""Soft actor-critic with twin critics and a learned temperature (Haarnoja et al. 2018a, 2018b).

    critics:     L(φ_i) = Ê[(Q_φi(s, a) − y)²],
                 y = G + γ^m (1 − term) (min_j Q_φ'j(s', a') − α log π_θ(a'|s')),   a' ~ π_θ(·|s')
    actor:       L(θ) = Ê_s[α log π_θ(a|s) − min_j Q_φj(s, a)],   a = tanh(μ_θ(s) + σ_θ(s) ε)
    temperature: L(log α) = −Ê[log α · (log π_θ(a|s) + H̄)],       H̄ = −dim(A) by default
    targets:     φ' ← τ φ + (1 − τ) φ'

The policy is a tanh-squashed Gaussian (:class:`fnrl.networks.TanhNormal`); it explores by
sampling and is evaluated at its mode ``tanh(μ_θ(s))``.

Composed of:
- :func:`fnrl.losses.td_target`, :func:`fnrl.losses.mse_loss` -- the soft Bellman regression
  (importance-weighted under prioritised replay);
- :func:`fnrl.losses.sac_actor_loss`, :func:`fnrl.losses.sac_temperature_loss`;
- :func:`fnrl.transforms.polyak_update` -- the target critics;
- :func:`fnrl.networks.make_policy` (``tanh_gaussian``), :func:`fnrl.networks.make_q_network`
  with two critics; the replay loop of :mod:`fnrl.offpolicy`.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from fnrl import losses, networks, transforms
from fnrl.config import check
from fnrl.offpolicy import Agent, OffPolicyConfig, make_off_policy_train
from fnrl.training import make_env

SUPPORTS = ("continuous",)


@dataclasses.dataclass(frozen=True)
class Config(OffPolicyConfig):
    env: str = "pendulum"
    hidden_sizes: tuple[int, ...] = (64, 64)
    learning_starts: int = 1_000
    actor_learning_rate: float = 1e-3
    critic_learning_rate: float = 1e-3
    temperature_learning_rate: float = 1e-3
    tau: float = 0.005
    num_critics: int = 2
    init_temperature: float = 1.0
    target_entropy: float | None = None

    def __post_init__(self):
        super().__post_init__()
        for name in ("actor_learning_rate", "critic_learning_rate", "temperature_learning_rate", "init_temperature"):
            check(getattr(self, name) > 0, name, getattr(self, name), "positive")
        check(0.0 < self.tau <= 1.0, "tau", self.tau, "in (0, 1]")
        check(self.num_critics > 0, "num_critics", self.num_critics, "a positive integer")


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for SAC; see :mod:`fnrl.offpolicy`."""
    return make_off_policy_train(config, make_agent(config), on_eval)


def make_agent(config: Config) -> Agent:
    """SAC's environment, ``init``, ``explore``, ``act`` and ``update`` (see :mod:`fnrl.offpolicy`)."""
    env = make_env(config)
    torso = networks.Torso(config.hidden_sizes)
    policy = networks.make_policy(env.spec, torso, distribution="tanh_gaussian", state_dependent_std=True)
    critic = networks.make_q_network(env.spec, torso, num_critics=config.num_critics)
    target_entropy = -math.prod(env.spec.action_shape) if config.target_entropy is None else config.target_entropy
    actor_opt, critic_opt, alpha_opt = (optax.adam(lr) for lr in (
        config.actor_learning_rate, config.critic_learning_rate, config.temperature_learning_rate))

    def min_critic(params, obs, action):
        return jnp.min(critic.apply(params, obs, action), axis=0)

    def init(key, obs):
        actor_key, critic_key, sample_key = jax.random.split(key, 3)
        actor_params = policy.init(actor_key, obs)
        critic_params = critic.init(critic_key, obs, policy.apply(actor_params, obs).sample(seed=sample_key))
        log_alpha = jnp.asarray(math.log(config.init_temperature), jnp.float32)
        return {"actor": actor_params, "critic": critic_params, "target_critic": critic_params,
                "log_alpha": log_alpha, "actor_opt": actor_opt.init(actor_params),
                "critic_opt": critic_opt.init(critic_params), "alpha_opt": alpha_opt.init(log_alpha)}

    def explore(learner, obs, key, step):
        return policy.apply(learner["actor"], obs).sample(seed=key)

    def act(learner, obs, key):
        return policy.apply(learner["actor"], obs).mode(), {}

    def critic_loss(params, learner, batch, weights, key):
        next_action, next_log_prob = policy.apply(learner["actor"], batch.next_obs).sample_and_log_prob(seed=key)
        alpha = jnp.exp(learner["log_alpha"])
        next_value = min_critic(learner["target_critic"], batch.next_obs, next_action) - alpha * next_log_prob
        target = losses.td_target(batch.reward, batch.termination, next_value, config.gamma ** batch.extras["n_steps"])
        q = critic.apply(params, batch.obs, batch.action)  # [num_critics, B]
        targets, masks = jnp.broadcast_to(target, q.shape), jnp.broadcast_to(weights, q.shape)
        loss = config.num_critics * losses.mse_loss(q, targets, mask=masks)  # the sum of the critics' losses
        return loss, (jnp.mean(q - target, axis=0), {"critic_loss": loss, "q": jnp.mean(q)})

    def actor_loss(params, learner, obs, key):
        action, log_prob = policy.apply(params, obs).sample_and_log_prob(seed=key)
        alpha = jnp.exp(learner["log_alpha"])
        loss = losses.sac_actor_loss(min_critic, learner["critic"], obs, action, log_prob, alpha)
        return loss, log_prob

    def step(optimizer, grads, opt_state, params):
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def update(learner, batch, weights, key):
        critic_key, actor_key = jax.random.split(key)
        grads, (td_error, metrics) = jax.grad(critic_loss, has_aux=True)(
            learner["critic"], learner, batch, weights, critic_key)
        critic_params, critic_state = step(critic_opt, grads, learner["critic_opt"], learner["critic"])
        learner = {**learner, "critic": critic_params, "critic_opt": critic_state,
                   "target_critic": transforms.polyak_update(critic_params, learner["target_critic"], config.tau)}
        (loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(
            learner["actor"], learner, batch.obs, actor_key)
        actor_params, actor_state = step(actor_opt, grads, learner["actor_opt"], learner["actor"])
        grad = jax.grad(losses.sac_temperature_loss)(learner["log_alpha"], log_prob, target_entropy)
        log_alpha, alpha_state = step(alpha_opt, grad, learner["alpha_opt"], learner["log_alpha"])
        learner = {**learner, "actor": actor_params, "actor_opt": actor_state, "log_alpha": log_alpha,
                   "alpha_opt": alpha_state}
        return learner, td_error, {**metrics, "actor_loss": loss, "alpha": jnp.exp(log_alpha),
                                   "entropy": -jnp.mean(log_prob)}

    return Agent(env, init, explore, act, update)
