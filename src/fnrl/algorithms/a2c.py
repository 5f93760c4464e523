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
:func:`fnrl.losses.entropy_loss`, with ``optax.clip_by_global_norm`` and Adam; the on-policy
loop (:mod:`fnrl.loops.onpolicy`) does the rollouts and evaluation. Gaussian policies
(``distribution="gaussian"``, chosen by ``"auto"`` on continuous environments) act in
[-1, 1]; the environment clips and rescales the sample, and the log-probability is that of
the unclipped sample. Defaults are tuned for cartpole (8 environments × 8 steps per update).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import optax

from fnrl import estimators, losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput, distribution_action
from fnrl.config import non_negative, one_of, positive, positive_int, unit_interval
from fnrl.loops import core, onpolicy

SUPPORTS = ("discrete", "continuous")
ADVANTAGES = ("gae", "n_step")
# The entropy bonus needs a closed-form entropy, which the tanh-squashed Gaussian lacks.
DISTRIBUTIONS = ("auto", "categorical", "gaussian")


@dataclasses.dataclass(frozen=True)
class Config(onpolicy.OnPolicyConfig):
    """A2C settings (module docstring). Without advantage normalisation or an entropy bonus:
    with both, cartpole returns kept oscillating between ~150 and 500 over 500k steps instead
    of settling at 500, in 5 seeds out of 5."""

    num_envs: int = positive_int(8)
    rollout_length: int = positive_int(8)
    learning_rate: float = positive(1e-3)
    advantage: str = one_of("gae", ADVANTAGES)
    gae_lambda: float = unit_interval(0.95)
    n_steps: int = positive_int(8)
    value_coef: float = non_negative(0.5)
    entropy_coef: float = non_negative(0.0)
    normalize_advantages: bool = False
    max_grad_norm: float = positive(0.5)
    distribution: str = one_of("auto", DISTRIBUTIONS)


class Learner(NamedTuple):
    params: Any  # actor-critic
    opt_state: Any


def make_agent(config: Config, spec) -> Agent:
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(config.learning_rate))
    torso = networks.Torso(config.hidden_sizes, "tanh", orthogonal_init=True)
    net = networks.make_actor_critic(spec, torso, distribution=config.distribution)

    def init(key, obs):
        params = net.init(key, obs)
        return Learner(params, optimizer.init(params))

    def act(learner, obs, key, explore):
        dist, _ = net.apply(learner.params, obs)
        return distribution_action(dist, key, explore)

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
            advantages = estimators.normalize_advantages(advantages)
        policy_loss = losses.policy_gradient_loss(dist.log_prob(traj.action), advantages)
        value_loss = losses.mse_loss(values, targets)
        entropy = losses.entropy_loss(dist)
        total = policy_loss + config.value_coef * value_loss + config.entropy_coef * entropy
        return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": -entropy}

    def update(learner, traj, key):
        grads, metrics = jax.grad(loss, has_aux=True)(learner.params, traj)
        params, opt_state = transforms.optimizer_step(optimizer, grads, learner.opt_state, learner.params)
        return UpdateOutput(Learner(params, opt_state), {**metrics, "grad_norm": optax.tree.norm(grads)})

    def log_prob(learner, obs, action):
        return net.apply(learner.params, obs)[0].log_prob(action)

    return Agent(init, act, update, log_prob=log_prob)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for A2C; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return onpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
