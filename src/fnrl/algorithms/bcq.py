"""Batch-constrained deep Q-learning (Fujimoto, Meger & Precup 2019), continuous BCQ: Q-learning
whose maximisation runs only over actions a generative model of the dataset proposes.

    behaviour model  G_ω(s): a conditional VAE of β(a|s), loss −ELBO with β_KL = ½   (fnrl.behaviour)
    perturbation     ξ_φ(s, a, Φ) = Φ · tanh(f_φ(s, a)) ∈ [−Φ, Φ]^d,   a ⊕ ξ = clip(a + ξ, −1, 1)
    policy           π(s) = argmax_{a_i} Q_θ1(s, a_i),   a_i = ã_i ⊕ ξ_φ(s, ã_i, Φ),   ã_i ~ G_ω(s),  i = 1..n
    critics          L(θ_j) = Ê[(Q_θj(s, a) − y)²],   j = 1, 2
                     y = r + γ (1 − term) max_i [λ min_j Q_θ'j(s', a'_i) + (1 − λ) max_j Q_θ'j(s', a'_i)],
                     a'_i = ã'_i ⊕ ξ_φ'(s', ã'_i, Φ),   ã'_i ~ G_ω(s')
    actor            L(φ) = −Ê[Q_θ1(s, ã ⊕ ξ_φ(s, ã, Φ))],   ã ~ G_ω(s) (no gradient to ω)
    targets          θ' ← τ θ + (1 − τ) θ',   φ' ← τ φ + (1 − τ) φ'

with n = 10 candidates, Φ = 0.05 (a fraction of the action box's half-width: actions are in
[−1, 1]), λ = 0.75 (the soft clipped double-Q of the paper's eq. 13) and τ = 0.005. Each update
moves the VAE, then the critics (their target sampled from the updated VAE), then the
perturbation network on the updated critic, then the targets (the order of the authors' code).
Φ trades the two ends: Φ = 0 acts only with the VAE's samples (an argmax over imitation); a Φ
as wide as the box lets ξ reach any action (Q-learning over n random starts). The policy is the
same with and without exploration (``eval_policy`` makes no difference): BCQ has no noise of
its own.

Composed of:
- :func:`fnrl.behaviour.make_behaviour_model` (so :func:`fnrl.networks.make_vae` and
  :func:`fnrl.losses.vae_elbo`) -- G_ω;
- :func:`fnrl.losses.td_target`, :func:`fnrl.losses.ensemble_td_loss` -- the twin critics;
- :func:`fnrl.losses.deterministic_actor_loss` -- ξ_φ's deterministic policy gradient;
- :func:`fnrl.transforms.polyak_update` -- both target networks;
- :func:`fnrl.networks.make_q_network` (two critics), :func:`fnrl.networks.deterministic_head`
  (ξ's tanh); the dataset loop of :mod:`fnrl.loops.offline`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from fnrl import behaviour, losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput
from fnrl.config import constrained, non_negative, positive, positive_int, unit_interval
from fnrl.loops import core, offline

SUPPORTS = ("continuous",)


@dataclasses.dataclass(frozen=True)
class Config(offline.OfflineConfig):
    env: str = "pendulum"
    num_samples: int = positive_int(10)  # n: candidate actions from the VAE per state
    phi: float = constrained(0.05, lambda v: 0.0 <= v <= 2.0, "in [0, 2] (a fraction of the action box's half-width)")
    lmbda: float = unit_interval(0.75)  # λ of the soft clipped double-Q target
    kl_weight: float = non_negative(0.5)  # β_KL of the VAE's loss
    latent_clip: float = positive(0.5)  # sampled latents lie in [−c, c]^k
    actor_learning_rate: float = positive(1e-3)
    critic_learning_rate: float = positive(1e-3)
    vae_learning_rate: float = positive(1e-3)
    tau: float = constrained(0.005, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    # the VAE's MLP (the paper's is (750, 750); its actor and critics are (400, 300), here `hidden_sizes`)
    vae_hidden_sizes: tuple[int, ...] = (256, 256)


class Learner(NamedTuple):
    vae: Any
    actor: Any  # ξ_φ
    critic: Any  # Q_θ1, Q_θ2
    target_actor: Any
    target_critic: Any
    vae_opt: Any
    actor_opt: Any
    critic_opt: Any


def make_perturbation(spec, torso: networks.Torso, phi: float) -> hk.Transformed:
    """ξ_φ: ``apply(params, obs, action) -> clip(a + Φ tanh(f_φ(s, a)), −1, 1)``, the perturbed action."""
    size = networks._action_size(spec, "bcq perturbation")

    def forward(obs, action):
        x, _ = networks._flatten_obs(obs, spec)
        h = torso(jnp.concatenate([x, action], axis=-1), name="perturbation_torso")
        return jnp.clip(action + phi * networks.deterministic_head(h, size), -1.0, 1.0)

    return hk.without_apply_rng(hk.transform(forward))


def make_agent(config: Config, spec) -> Agent:
    torso = networks.Torso(config.hidden_sizes)
    model = behaviour.make_behaviour_model(spec, networks.Torso(config.vae_hidden_sizes),
                                           latent_clip=config.latent_clip, kl_weight=config.kl_weight)
    actor = make_perturbation(spec, torso, config.phi)
    critic = networks.make_q_network(spec, torso, num_critics=2)
    vae_opt, actor_opt, critic_opt = (optax.adam(lr) for lr in (
        config.vae_learning_rate, config.actor_learning_rate, config.critic_learning_rate))
    n = config.num_samples

    def candidates(vae_params, actor_params, obs, key):
        """n perturbed VAE samples at each state: (states [B, n, ...], actions [B, n, d])."""
        obs = jnp.repeat(obs[:, None], n, axis=1)
        sampled = jax.lax.stop_gradient(model.sample(vae_params, obs, key))
        return obs, actor.apply(actor_params, obs, sampled)

    def init(key, obs):
        vae_key, actor_key, critic_key = jax.random.split(key, 3)
        action = jnp.zeros(obs.shape[:1] + spec.action_shape)
        vae_params = model.init(vae_key, obs, action)
        actor_params = actor.init(actor_key, obs, action)
        critic_params = critic.init(critic_key, obs, action)
        return Learner(vae_params, actor_params, critic_params, actor_params, critic_params, vae_opt.init(vae_params),
                       actor_opt.init(actor_params), critic_opt.init(critic_params))

    def act(learner, obs, key, explore):
        obs_n, actions = candidates(learner.vae, learner.actor, obs, key)
        best = jnp.argmax(critic.apply(learner.critic, obs_n, actions)[0], axis=-1)  # [B]
        return jnp.take_along_axis(actions, best[:, None, None], axis=1)[:, 0], {}

    def critic_loss(params, learner, batch, key):
        next_obs, next_actions = candidates(learner.vae, learner.target_actor, batch.next_obs, key)
        next_q = critic.apply(learner.target_critic, next_obs, next_actions)  # [2, B, n]
        soft = config.lmbda * jnp.min(next_q, axis=0) + (1.0 - config.lmbda) * jnp.max(next_q, axis=0)
        target = losses.td_target(batch.reward, batch.termination, jnp.max(soft, axis=-1),
                                  config.gamma ** batch.extras["n_steps"])
        q = critic.apply(params, batch.obs, batch.action)
        loss, td_error = losses.ensemble_td_loss(q, target, batch.extras["weight"])
        return loss, (td_error, jnp.mean(q))

    def actor_loss(params, learner, batch, key):
        obs = batch.obs
        sampled = jax.lax.stop_gradient(model.sample(learner.vae, obs, key))
        first_critic = lambda p, o, a: critic.apply(p, o, a)[0]  # noqa: E731
        return losses.deterministic_actor_loss(first_critic, learner.critic, obs, actor.apply(params, obs, sampled))

    def update(learner, batch, key):
        vae_key, critic_key, actor_key = jax.random.split(key, 3)
        (v_loss, terms), grads = jax.value_and_grad(model.loss, has_aux=True)(learner.vae, batch.obs, batch.action,
                                                                              vae_key)
        vae_params, vae_state = transforms.optimizer_step(vae_opt, grads, learner.vae_opt, learner.vae)
        learner = learner._replace(vae=vae_params, vae_opt=vae_state)

        (q_loss, (td_error, q)), grads = jax.value_and_grad(critic_loss, has_aux=True)(learner.critic, learner, batch,
                                                                                      critic_key)
        critic_params, critic_state = transforms.optimizer_step(critic_opt, grads, learner.critic_opt, learner.critic)
        learner = learner._replace(critic=critic_params, critic_opt=critic_state)

        a_loss, grads = jax.value_and_grad(actor_loss)(learner.actor, learner, batch, actor_key)
        actor_params, actor_state = transforms.optimizer_step(actor_opt, grads, learner.actor_opt, learner.actor)
        learner = learner._replace(
            actor=actor_params, actor_opt=actor_state,
            target_actor=transforms.polyak_update(actor_params, learner.target_actor, config.tau),
            target_critic=transforms.polyak_update(critic_params, learner.target_critic, config.tau))
        metrics = {"vae_loss": v_loss, "elbo": jnp.mean(terms.elbo), "kl": jnp.mean(terms.kl),
                   "critic_loss": q_loss, "q": q, "actor_loss": a_loss}
        return UpdateOutput(learner, metrics, jnp.abs(td_error))

    return Agent(init, act, update)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for BCQ on ``config.dataset``; see :mod:`fnrl.loops.offline`."""
    env = core.make_env(config)
    core.check_env("bcq", SUPPORTS, env, config.env)
    dataset = offline.load_dataset(config, env)
    return offline.make_train(config, env, make_agent(config, env.spec), dataset, on_eval)
