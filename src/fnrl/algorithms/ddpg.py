"""Deep deterministic policy gradient (Lillicrap et al. 2016), and the deterministic actor-critic
that TD3 (:mod:`fnrl.algorithms.td3`) modifies.

    critic:  L(φ) = Ê[(Q_φ(s, a) − y)²],   y = G + γ^m (1 − term) Q_φ'(s', μ_θ'(s'))
    actor:   ∇_θ J = Ê[∇_a Q_φ(s, a)|_{a=μ_θ(s)} ∇_θ μ_θ(s)]      (Silver et al. 2014)
    targets: φ' ← τ φ + (1 − τ) φ',  θ' ← τ θ + (1 − τ) θ'

Exploration adds Gaussian noise ``N(0, σ²)`` to ``μ_θ(s)`` and clips to the action box (as TD3
does; the paper's Ornstein-Uhlenbeck noise brings no benefit on these tasks, Fujimoto et al.
2018). Actions live in ``[-1, 1]``; the environment wrapper rescales them to the bounds.

Composed of:
- :func:`fnrl.losses.td_target` and :func:`fnrl.losses.mse_loss` -- the critic's target and
  regression (importance-weighted under prioritised replay);
- :func:`fnrl.losses.deterministic_actor_loss` -- the deterministic policy gradient;
- :func:`fnrl.transforms.polyak_update` -- both target networks;
- :func:`fnrl.networks.make_deterministic_policy`, :func:`fnrl.networks.make_q_network`;
- the replay loop of :mod:`fnrl.offpolicy`.
"""
from __future__ import annotations

import dataclasses

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
    tau: float = 0.005
    exploration_noise: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        for name in ("actor_learning_rate", "critic_learning_rate"):
            check(getattr(self, name) > 0, name, getattr(self, name), "positive")
        check(0.0 < self.tau <= 1.0, "tau", self.tau, "in (0, 1]")
        check(self.exploration_noise >= 0, "exploration_noise", self.exploration_noise, ">= 0")


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for DDPG; see :mod:`fnrl.offpolicy`."""
    return make_off_policy_train(config, make_agent(config), on_eval)


def make_agent(config: Config, *, num_critics: int = 1, target_noise: float = 0.0, noise_clip: float = 0.0,
               policy_delay: int = 1) -> Agent:
    """DDPG's :class:`~fnrl.offpolicy.Agent`, generalised by TD3's three switches (Fujimoto et al. 2018):

    - ``num_critics``: the target takes the minimum over that many critics (clipped double Q);
    - ``target_noise``, ``noise_clip``: the target action is ``clip(μ_θ'(s') + clip(σ̃ ε, −c, c),
      −1, 1)``, ``ε ~ N(0, I)`` (target policy smoothing);
    - ``policy_delay``: the actor and the target networks move once every that many critic updates.
    """
    env = make_env(config)
    torso = networks.Torso(config.hidden_sizes)
    actor = networks.make_deterministic_policy(env.spec, torso)
    critic = networks.make_q_network(env.spec, torso, num_critics=num_critics)
    actor_opt, critic_opt = optax.adam(config.actor_learning_rate), optax.adam(config.critic_learning_rate)

    def init(key, obs):
        actor_key, critic_key = jax.random.split(key)
        actor_params = actor.init(actor_key, obs)
        critic_params = critic.init(critic_key, obs, actor.apply(actor_params, obs))
        return {"actor": actor_params, "critic": critic_params, "target_actor": actor_params,
                "target_critic": critic_params, "actor_opt": actor_opt.init(actor_params),
                "critic_opt": critic_opt.init(critic_params), "updates": jnp.zeros((), jnp.int32)}

    def explore(learner, obs, key, step):
        action = actor.apply(learner["actor"], obs)
        return jnp.clip(action + config.exploration_noise * jax.random.normal(key, action.shape), -1.0, 1.0)

    def act(learner, obs, key):
        return actor.apply(learner["actor"], obs), {}

    def critic_loss(params, learner, batch, weights, key):
        next_action = actor.apply(learner["target_actor"], batch.next_obs)
        noise = jnp.clip(target_noise * jax.random.normal(key, next_action.shape), -noise_clip, noise_clip)
        next_action = jnp.clip(next_action + noise, -1.0, 1.0)
        next_q = jnp.min(critic.apply(learner["target_critic"], batch.next_obs, next_action), axis=0)
        target = losses.td_target(batch.reward, batch.termination, next_q, config.gamma ** batch.extras["n_steps"])
        q = critic.apply(params, batch.obs, batch.action)  # [num_critics, B]
        targets, masks = jnp.broadcast_to(target, q.shape), jnp.broadcast_to(weights, q.shape)
        loss = num_critics * losses.mse_loss(q, targets, mask=masks)  # the sum of the critics' losses
        return loss, (jnp.mean(q - target, axis=0), {"critic_loss": loss, "q": jnp.mean(q)})

    def actor_loss(params, critic_params, obs):
        first_critic = lambda p, o, a: critic.apply(p, o, a)[0]  # noqa: E731
        return losses.deterministic_actor_loss(first_critic, critic_params, obs, actor.apply(params, obs))

    def actor_step(learner, obs):
        loss, grads = jax.value_and_grad(actor_loss)(learner["actor"], learner["critic"], obs)
        updates, opt_state = actor_opt.update(grads, learner["actor_opt"], learner["actor"])
        params = optax.apply_updates(learner["actor"], updates)
        targets = {"target_actor": transforms.polyak_update(params, learner["target_actor"], config.tau),
                   "target_critic": transforms.polyak_update(learner["critic"], learner["target_critic"], config.tau)}
        return {**learner, "actor": params, "actor_opt": opt_state, **targets}, loss

    def update(learner, batch, weights, key):
        grads, (td_error, metrics) = jax.grad(critic_loss, has_aux=True)(
            learner["critic"], learner, batch, weights, key)
        updates, opt_state = critic_opt.update(grads, learner["critic_opt"], learner["critic"])
        learner = {**learner, "critic": optax.apply_updates(learner["critic"], updates), "critic_opt": opt_state,
                   "updates": learner["updates"] + 1}
        if policy_delay == 1:
            learner, loss = actor_step(learner, batch.obs)
        else:
            skip = lambda learner, obs: (learner, actor_loss(learner["actor"], learner["critic"], obs))  # noqa: E731
            learner, loss = jax.lax.cond(learner["updates"] % policy_delay == 0, actor_step, skip, learner, batch.obs)
        return learner, td_error, {**metrics, "actor_loss": loss}

    return Agent(env, init, explore, act, update)
