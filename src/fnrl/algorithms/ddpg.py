"""Deep deterministic policy gradient (Lillicrap et al. 2016), and the deterministic actor-critic
that TD3 (:mod:`fnrl.algorithms.td3`) modifies.

    critic:  L(φ) = Ê[(Q_φ(s, a) − y)²],   y = G + γ^m (1 − term) Q_φ'(s', μ_θ'(s'))
    actor:   ∇_θ J = Ê[∇_a Q_φ(s, a)|_{a=μ_θ(s)} ∇_θ μ_θ(s)]      (Silver et al. 2014)
    targets: φ' ← τ φ + (1 − τ) φ',  θ' ← τ θ + (1 − τ) θ'

Exploration adds Gaussian noise ``N(0, σ²)`` to ``μ_θ(s)`` and clips to the action box (as TD3
does; the paper's Ornstein-Uhlenbeck noise brings no benefit on these tasks, Fujimoto et al.
2018). Actions live in ``[-1, 1]``; the environment wrapper rescales them to the bounds.

Composed of:
- :func:`fnrl.losses.td_target` and :func:`fnrl.losses.ensemble_td_loss` -- the critic's
  target and regression (importance-weighted under prioritised replay);
- :func:`fnrl.losses.deterministic_actor_loss` -- the deterministic policy gradient;
- :func:`fnrl.transforms.polyak_update` -- both target networks;
- :func:`fnrl.networks.make_deterministic_policy`, :func:`fnrl.networks.make_q_network`;
- the replay loop of :mod:`fnrl.loops.offpolicy`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fnrl import losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput
from fnrl.config import constrained, non_negative, positive
from fnrl.loops import core, offpolicy

SUPPORTS = ("continuous",)


@dataclasses.dataclass(frozen=True)
class Config(offpolicy.OffPolicyConfig):
    env: str = "pendulum"
    hidden_sizes: tuple[int, ...] = (64, 64)
    actor_learning_rate: float = positive(1e-3)
    critic_learning_rate: float = positive(1e-3)
    tau: float = constrained(0.005, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
    exploration_noise: float = non_negative(0.1)


class Learner(NamedTuple):
    actor: Any
    critic: Any
    target_actor: Any
    target_critic: Any
    actor_opt: Any
    critic_opt: Any
    updates: jax.Array  # critic updates made so far


def make_agent(config: Config, spec, *, num_critics: int = 1, target_noise: float = 0.0, noise_clip: float = 0.0,
               policy_delay: int = 1, bc_alpha: float | None = None) -> Agent:
    """DDPG's :class:`~fnrl.agent.Agent`, generalised by TD3's three switches (Fujimoto et al. 2018)
    and TD3+BC's one (Fujimoto & Gu 2021):

    - ``num_critics``: the target takes the minimum over that many critics (clipped double Q);
    - ``target_noise``, ``noise_clip``: the target action is ``clip(μ_θ'(s') + clip(σ̃ ε, −c, c),
      −1, 1)``, ``ε ~ N(0, I)`` (target policy smoothing);
    - ``policy_delay``: the actor and the target networks move once every that many critic updates;
    - ``bc_alpha``: when not None, the actor's loss is :func:`fnrl.losses.td3_bc_actor_loss` with
      α = ``bc_alpha``, which adds behavioural cloning of the batch's actions.

    ``config`` needs ``hidden_sizes``, ``gamma``, ``actor_learning_rate``, ``critic_learning_rate``,
    ``tau`` and ``exploration_noise`` (the fields of :class:`Config`).
    """
    torso = networks.Torso(config.hidden_sizes)
    actor = networks.make_deterministic_policy(spec, torso)
    critic = networks.make_q_network(spec, torso, num_critics=num_critics)
    actor_opt, critic_opt = optax.adam(config.actor_learning_rate), optax.adam(config.critic_learning_rate)

    def init(key, obs):
        actor_key, critic_key = jax.random.split(key)
        actor_params = actor.init(actor_key, obs)
        critic_params = critic.init(critic_key, obs, actor.apply(actor_params, obs))
        return Learner(actor_params, critic_params, actor_params, critic_params, actor_opt.init(actor_params),
                       critic_opt.init(critic_params), jnp.zeros((), jnp.int32))

    def act(learner, obs, key, explore):
        action = actor.apply(learner.actor, obs)
        if explore:
            action = jnp.clip(action + config.exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)
        return action, {}

    def critic_loss(params, learner, batch, key):
        next_action = actor.apply(learner.target_actor, batch.next_obs)
        noise = jnp.clip(target_noise * jax.random.normal(key, next_action.shape), -noise_clip, noise_clip)
        next_action = jnp.clip(next_action + noise, -1.0, 1.0)
        next_q = jnp.min(critic.apply(learner.target_critic, batch.next_obs, next_action), axis=0)
        target = losses.td_target(batch.reward, batch.termination, next_q, config.gamma ** batch.extras["n_steps"])
        q = critic.apply(params, batch.obs, batch.action)  # [num_critics, B]
        loss, td_error = losses.ensemble_td_loss(q, target, batch.extras["weight"])
        return loss, (td_error, {"critic_loss": loss, "q": jnp.mean(q)})

    def actor_loss(params, critic_params, batch):
        first_critic = lambda p, o, a: critic.apply(p, o, a)[0]  # noqa: E731
        action = actor.apply(params, batch.obs)
        if bc_alpha is None:
            return losses.deterministic_actor_loss(first_critic, critic_params, batch.obs, action)
        return losses.td3_bc_actor_loss(first_critic, critic_params, batch.obs, action, batch.action, bc_alpha)

    def actor_step(learner, batch):
        loss, grads = jax.value_and_grad(actor_loss)(learner.actor, learner.critic, batch)
        params, opt_state = transforms.optimizer_step(actor_opt, grads, learner.actor_opt, learner.actor)
        return learner._replace(actor=params, actor_opt=opt_state,
                                target_actor=transforms.polyak_update(params, learner.target_actor, config.tau),
                                target_critic=transforms.polyak_update(learner.critic, learner.target_critic,
                                                                       config.tau)), loss

    def update(learner, batch, key):
        grads, (td_error, metrics) = jax.grad(critic_loss, has_aux=True)(learner.critic, learner, batch, key)
        params, opt_state = transforms.optimizer_step(critic_opt, grads, learner.critic_opt, learner.critic)
        learner = learner._replace(critic=params, critic_opt=opt_state, updates=learner.updates + 1)
        if policy_delay == 1:
            learner, loss = actor_step(learner, batch)
        else:
            skip = lambda learner, batch: (learner, actor_loss(learner.actor, learner.critic, batch))  # noqa: E731
            learner, loss = jax.lax.cond(learner.updates % policy_delay == 0, actor_step, skip, learner, batch)
        return UpdateOutput(learner, {**metrics, "actor_loss": loss}, jnp.abs(td_error))

    return Agent(init, act, update)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for DDPG; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return offpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
