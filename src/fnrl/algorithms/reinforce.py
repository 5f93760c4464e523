"""REINFORCE with reward-to-go and a learned state-value baseline (Williams 1992).

    ∇J ≈ Ê[∇ log π_θ(a_t|s_t) (G_t − V_φ(s_t))],   G_t = Σ_{k≥t} γ^{k−t} r_k (reward-to-go)

Composed of:
- :func:`fnrl.estimators.discounted_returns` -- the reward-to-go, cut at episode ends; an
  episode still running at the end of the rollout window, or truncated by the time limit, is
  bootstrapped from the baseline's value of its last observation;
- :func:`fnrl.losses.policy_gradient_loss` -- the score-function estimator with baseline;
- :func:`fnrl.losses.mse_loss` -- Monte-Carlo regression of the baseline V_φ on G_t.

The on-policy loop (:mod:`fnrl.loops.onpolicy`) does the rollouts and evaluation.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import optax

from fnrl import estimators, losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput, distribution_action
from fnrl.config import non_negative, positive
from fnrl.loops import core, onpolicy

SUPPORTS = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class Config(onpolicy.OnPolicyConfig):
    learning_rate: float = positive(1e-3)
    value_coef: float = non_negative(0.5)
    normalize_advantages: bool = True
    max_grad_norm: float = positive(0.5)


class Learner(NamedTuple):
    params: Any  # policy and baseline
    opt_state: Any


def make_agent(config: Config, spec) -> Agent:
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))
    net = networks.make_actor_critic(spec, networks.Torso(config.hidden_sizes, "tanh"))

    def init(key, obs):
        params = net.init(key, obs)
        return Learner(params, optimizer.init(params))

    def act(learner, obs, key, explore):
        dist, _ = net.apply(learner.params, obs)
        return distribution_action(dist, key, explore)

    def loss(params, traj):
        dist, values = net.apply(params, traj.obs)
        _, next_values = net.apply(params, traj.next_obs)
        returns = estimators.discounted_returns(traj.reward, traj.termination, traj.truncation,
                                                config.gamma, jax.lax.stop_gradient(next_values))
        advantages = returns - values
        if config.normalize_advantages:
            advantages = estimators.normalize_advantages(advantages)
        pg = losses.policy_gradient_loss(dist.log_prob(traj.action), advantages)
        baseline = losses.mse_loss(values, jax.lax.stop_gradient(returns))
        return pg + config.value_coef * baseline, {"policy_loss": pg, "value_loss": baseline}

    def update(learner, traj, key):
        grads, metrics = jax.grad(loss, has_aux=True)(learner.params, traj)
        return UpdateOutput(Learner(*transforms.optimizer_step(optimizer, grads, learner.opt_state, learner.params)),
                            metrics)

    def log_prob(learner, obs, action):
        return net.apply(learner.params, obs)[0].log_prob(action)

    return Agent(init, act, update, log_prob=log_prob)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for REINFORCE; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return onpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
