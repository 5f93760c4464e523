"""REINFORCE with reward-to-go and a learned state-value baseline (Williams 1992).

    ∇J ≈ Ê[∇ log π_θ(a_t|s_t) (G_t − V_φ(s_t))],   G_t = Σ_{k≥t} γ^{k−t} r_k (reward-to-go)

Composed of:
- :func:`fnrl.estimators.discounted_returns` -- the reward-to-go, cut at episode ends; an
  episode still running at the end of the rollout window, or truncated by the time limit, is
  bootstrapped from the baseline's value of its last observation;
- :func:`fnrl.losses.policy_gradient_loss` -- the score-function estimator with baseline;
- :func:`fnrl.losses.mse_loss` -- Monte-Carlo regression of the baseline V_φ on G_t.

The shared on-policy loop (:mod:`fnrl.training`) does the rollouts and evaluation.
"""
from __future__ import annotations

import dataclasses

import jax
import optax

from fnrl import estimators, losses, networks
from fnrl.config import check
from fnrl.training import OnPolicyConfig, make_env, make_on_policy_train

SUPPORTS = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class Config(OnPolicyConfig):
    learning_rate: float = 1e-3
    value_coef: float = 0.5
    normalize_advantages: bool = True
    max_grad_norm: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "positive")
        check(self.value_coef >= 0, "value_coef", self.value_coef, ">= 0")
        check(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "positive")


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for REINFORCE; see :mod:`fnrl.training`."""
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.adam(config.learning_rate))
    env = make_env(config)
    net = networks.make_actor_critic(env.spec, networks.Torso(config.hidden_sizes, "tanh"))

    def init(key, obs):
        params = net.init(key, obs)
        return {"params": params, "opt_state": optimizer.init(params)}

    def act(learner, obs, key):
        dist, _ = net.apply(learner["params"], obs)
        action = dist.sample(seed=key)
        return action, {}

    def loss(params, traj):
        dist, values = net.apply(params, traj.obs)
        _, next_values = net.apply(params, traj.next_obs)
        returns = estimators.discounted_returns(traj.reward, traj.termination, traj.truncation,
                                                config.gamma, jax.lax.stop_gradient(next_values))
        advantages = returns - values
        if config.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        pg = losses.policy_gradient_loss(dist.log_prob(traj.action), advantages)
        baseline = losses.mse_loss(values, jax.lax.stop_gradient(returns))
        return pg + config.value_coef * baseline, {"policy_loss": pg, "value_loss": baseline}

    def update(learner, traj, key):
        grads, metrics = jax.grad(loss, has_aux=True)(learner["params"], traj)
        updates, opt_state = optimizer.update(grads, learner["opt_state"], learner["params"])
        return {"params": optax.apply_updates(learner["params"], updates), "opt_state": opt_state}, metrics

    return make_on_policy_train(config, env, init, act, update, on_eval)
