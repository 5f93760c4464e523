"""Advantage actor-critic, the synchronous A3C (Mnih et al. 2016, "Asynchronous Methods for
Deep Reinforcement Learning").

    L(θ) = −Ê[log π_θ(a_t|s_t) Â_t] + c_v Ê[½ (V_θ(s_t) − Ĝ_t)²] − c_H Ê[H(π_θ(·|s_t))]

one gradient step per rollout, one optimiser over the policy, the value and the entropy bonus.
The advantage Â_t (from the value before the step) is

- ``advantage="n_step"``: Ĝ_t = :func:`fnrl.estimators.n_step_returns` (the A3C target,
  ``n_steps`` rewards then V; ``n_steps >= rollout_length`` bootstraps only at the end of the
  rollout window as in the paper), Â_t = Ĝ_t − V(s_t);
- ``advantage="gae"``: Â_t = :func:`fnrl.estimators.gae` (Schulman et al. 2016), Ĝ_t = Â_t + V(s_t).

Composed of :func:`fnrl.losses.policy_gradient_loss`, :func:`fnrl.losses.mse_loss` and
:func:`fnrl.losses.entropy_loss`, with ``optax.clip_by_global_norm`` and Adam; the shared
on-policy loop (:mod:`fnrl.training`) does the rollouts and evaluation.

Defaults are tuned for cartpole (8 environments × 8 steps per update, no advantage
normalisation or entropy bonus: with both, returns kept oscillating between ~150 and 500 over
500k steps instead of settling at 500, in 5 seeds out of 5). A2C
did not learn pendulum within 1M steps in the settings tried (see
``experiments/onpolicy_pendulum.py``). Gaussian policies (``distribution="gaussian"``, chosen by
``"auto"`` on continuous environments) act in [-1, 1]; the environment clips and rescales the
sample, and the log-probability is that of the unclipped sample.
"""
from __future__ import annotations

import dataclasses

import jax
import optax

from fnrl import estimators, losses, networks
from fnrl.config import check
from fnrl.training import OnPolicyConfig, make_env, make_on_policy_train

SUPPORTS = ("discrete", "continuous")
ADVANTAGES = ("gae", "n_step")
# The entropy bonus needs a closed-form entropy, which the tanh-squashed Gaussian lacks.
DISTRIBUTIONS = ("auto", "categorical", "gaussian")


@dataclasses.dataclass(frozen=True)
class Config(OnPolicyConfig):
    """A2C settings (module docstring); 8 × 8 steps per update as tuned for cartpole."""

    num_envs: int = 8
    rollout_length: int = 8
    learning_rate: float = 1e-3
    advantage: str = "gae"
    gae_lambda: float = 0.95
    n_steps: int = 8
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    normalize_advantages: bool = False
    max_grad_norm: float = 0.5
    distribution: str = "auto"

    def __post_init__(self):
        super().__post_init__()
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "positive")
        check(self.advantage in ADVANTAGES, "advantage", self.advantage, f"one of {ADVANTAGES}")
        check(0.0 <= self.gae_lambda <= 1.0, "gae_lambda", self.gae_lambda, "in [0, 1]")
        check(self.n_steps > 0, "n_steps", self.n_steps, "a positive integer")
        check(self.value_coef >= 0, "value_coef", self.value_coef, ">= 0")
        check(self.entropy_coef >= 0, "entropy_coef", self.entropy_coef, ">= 0")
        check(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "positive")
        check(self.distribution in DISTRIBUTIONS, "distribution", self.distribution, f"one of {DISTRIBUTIONS}")


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for A2C; see :mod:`fnrl.training`."""
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))
    env = make_env(config)
    torso = networks.Torso(config.hidden_sizes, "tanh", orthogonal_init=True)
    net = networks.make_actor_critic(env.spec, torso, distribution=config.distribution)

    def init(key, obs):
        params = net.init(key, obs)
        return {"params": params, "opt_state": optimizer.init(params)}

    def act(learner, obs, key):
        dist, _ = net.apply(learner["params"], obs)
        return dist.sample(seed=key), {}

    def loss(params, traj):
        dist, values = net.apply(params, traj.obs)
        _, next_values = net.apply(params, traj.next_obs)
        v, next_v = jax.lax.stop_gradient((values, next_values))
        if config.advantage == "gae":
            advantages = estimators.gae(traj.reward, v, next_v, traj.termination, traj.truncation,
                                        config.gamma, config.gae_lambda)
            targets = advantages + v
        else:
            targets = estimators.n_step_returns(traj.reward, next_v, traj.termination, traj.truncation,
                                                config.gamma, config.n_steps)
            advantages = targets - v
        if config.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy_loss = losses.policy_gradient_loss(dist.log_prob(traj.action), advantages)
        value_loss = losses.mse_loss(values, targets)
        entropy = losses.entropy_loss(dist)
        total = policy_loss + config.value_coef * value_loss + config.entropy_coef * entropy
        return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": -entropy}

    def update(learner, traj, key):
        grads, metrics = jax.grad(loss, has_aux=True)(learner["params"], traj)
        updates, opt_state = optimizer.update(grads, learner["opt_state"], learner["params"])
        params = optax.apply_updates(learner["params"], updates)
        return {"params": params, "opt_state": opt_state}, {**metrics, "grad_norm": optax.tree.norm(grads)}

    return make_on_policy_train(config, env, init, act, update, on_eval)
