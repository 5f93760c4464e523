"""Proximal policy optimisation (Schulman et al. 2017, "Proximal Policy Optimization Algorithms").

Each rollout of ``num_envs × rollout_length`` steps is reused for ``num_epochs`` shuffled
passes of ``num_minibatches`` Adam steps (:func:`fnrl.loops.onpolicy.minibatch_epochs`) on

    L(θ) = L^π(θ) + c_v L^V(θ) − c_H Ê[H(π_θ(·|s_t))],     r_t(θ) = π_θ(a_t|s_t) / π_old(a_t|s_t)

with the policy objective chosen by ``objective``:

- ``"clip"``: L^π = −Ê[min(r_t Â_t, clip(r_t, 1 − ε, 1 + ε) Â_t)] (eq. 7,
  :func:`fnrl.losses.ppo_clip_loss`);
- ``"kl"``: L^π = −Ê[r_t Â_t − β KL[π_old(·|s_t) ‖ π_θ(·|s_t)]] (eq. 8,
  :func:`fnrl.losses.kl_penalty_loss`, analytic KL from distrax), and after each update β is
  halved or doubled when the measured KL d leaves [d_targ / 1.5, 1.5 d_targ]
  (:func:`fnrl.losses.adaptive_kl_beta`); β lives in the learner state.

Â_t is :func:`fnrl.estimators.gae` from the value before the update (normalised per minibatch
with ``normalize_advantages``); the value target is Ĝ_t = Â_t + V_old(s_t), regressed by
:func:`fnrl.losses.mse_loss` or, with ``clip_value``, :func:`fnrl.losses.clipped_value_loss`;
the entropy bonus is :func:`fnrl.losses.entropy_loss`. Gradients are clipped by global norm
(``optax.clip_by_global_norm``) before Adam, whose learning rate optionally decays linearly to
0 (``anneal_lr``). Logged after each update, over the whole batch: ``kl`` (analytic mean
KL[π_old ‖ π_θ]) and :func:`fnrl.losses.ppo_diagnostics` (``approx_kl``, ``clip_fraction``).

Policies: categorical (discrete), Gaussian (continuous; the environment clips the sample to
[-1, 1] and rescales it, and the log-probability is that of the unclipped sample) or
``distribution="tanh_gaussian"`` (samples squashed into (-1, 1)); the tanh-Gaussian has no
closed-form entropy, so its bonus uses the pre-squash Gaussian's, an upper bound
(H[tanh u] = H[u] + E[log(1 − tanh² u)] ≤ H[u]).

Defaults are tuned for cartpole; the tuned settings for other tasks are in ``fnrl/presets.yaml``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fnrl import estimators, losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput, distribution_action
from fnrl.config import check, constrained, non_negative, one_of, positive, positive_int, unit_interval
from fnrl.loops import core, onpolicy

SUPPORTS = ("discrete", "continuous")
OBJECTIVES = ("clip", "kl")


@dataclasses.dataclass(frozen=True)
class Config(onpolicy.OnPolicyConfig):
    """PPO settings (module docstring). ``kl_target`` and ``init_kl_beta`` are used with
    ``objective="kl"``, ``value_clip_epsilon`` with ``clip_value``."""

    num_envs: int = positive_int(8)
    rollout_length: int = positive_int(64)
    learning_rate: float = positive(1e-3)
    anneal_lr: bool = False
    num_epochs: int = positive_int(8)
    num_minibatches: int = positive_int(4)
    objective: str = one_of("clip", OBJECTIVES)
    clip_epsilon: float = constrained(0.2, lambda v: 0 < v < 1, "in (0, 1)")
    kl_target: float = positive(0.01)
    init_kl_beta: float = positive(1.0)
    gae_lambda: float = unit_interval(0.95)
    normalize_advantages: bool = True
    value_coef: float = non_negative(0.5)
    clip_value: bool = False
    value_clip_epsilon: float = positive(0.2)
    entropy_coef: float = non_negative(0.0)
    max_grad_norm: float = positive(0.5)
    distribution: str = one_of("auto", networks.DISTRIBUTIONS)

    def __post_init__(self):
        super().__post_init__()
        check(self.steps_per_update % self.num_minibatches == 0, "num_minibatches", self.num_minibatches,
              f"a divisor of the batch num_envs * rollout_length = {self.steps_per_update}")


class Learner(NamedTuple):
    params: Any  # actor-critic
    opt_state: Any
    kl_beta: jax.Array  # the KL penalty's β (objective="kl")


def make_agent(config: Config, spec) -> Agent:
    learning_rate = config.learning_rate
    if config.anneal_lr:
        num_steps = config.periods.iterations * config.num_epochs * config.num_minibatches
        learning_rate = optax.linear_schedule(config.learning_rate, 0.0, num_steps)
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(learning_rate))
    torso = networks.Torso(config.hidden_sizes, "tanh", orthogonal_init=True)
    net = networks.make_actor_critic(spec, torso, distribution=config.distribution)

    def entropy_of(dist):
        return dist.distribution if isinstance(dist, networks.TanhNormal) else dist

    def init(key, obs):
        params = net.init(key, obs)
        return Learner(params, optimizer.init(params), jnp.float32(config.init_kl_beta))

    def act(learner, obs, key, explore):
        dist, _ = net.apply(learner.params, obs)
        return distribution_action(dist, key, explore, with_log_prob=True)

    def loss(params, batch, old_params, kl_beta):
        dist, values = net.apply(params, batch["obs"])
        log_prob, old_log_prob = dist.log_prob(batch["action"]), batch["log_prob"]
        advantages = batch["advantage"]
        if config.normalize_advantages:
            advantages = estimators.normalize_advantages(advantages)
        if config.objective == "clip":
            policy_loss = losses.ppo_clip_loss(log_prob, old_log_prob, advantages, config.clip_epsilon)
        else:
            old_dist, _ = net.apply(old_params, batch["obs"])
            kl = old_dist.kl_divergence(dist)
            policy_loss = losses.kl_penalty_loss(log_prob, old_log_prob, advantages, kl, kl_beta)
        if config.clip_value:
            value_loss = losses.clipped_value_loss(values, batch["value"], batch["target"], config.value_clip_epsilon)
        else:
            value_loss = losses.mse_loss(values, batch["target"])
        entropy = losses.entropy_loss(entropy_of(dist))
        total = policy_loss + config.value_coef * value_loss + config.entropy_coef * entropy
        return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": -entropy}

    def update(learner, traj, key):
        dist, values = net.apply(learner.params, traj.obs)
        _, next_values = net.apply(learner.params, traj.next_obs)
        advantages = estimators.gae(traj.reward, values, next_values, traj.termination, traj.truncation,
                                    config.gamma, config.gae_lambda)
        batch = {"obs": traj.obs, "action": traj.action, "log_prob": traj.extras["log_prob"],
                 "advantage": advantages, "value": values, "target": advantages + values}

        def step(state, minibatch):
            params, opt_state = state
            grads, metrics = jax.grad(loss, has_aux=True)(params, minibatch, learner.params, learner.kl_beta)
            state = transforms.optimizer_step(optimizer, grads, opt_state, params)
            return state, {**metrics, "grad_norm": optax.tree.norm(grads)}

        (params, opt_state), metrics = onpolicy.minibatch_epochs(key, (learner.params, learner.opt_state), batch,
                                                                 step, config.num_epochs, config.num_minibatches)
        new_dist, _ = net.apply(params, traj.obs)
        kl = dist.kl_divergence(new_dist).mean()
        diagnostics = losses.ppo_diagnostics(new_dist.log_prob(traj.action), traj.extras["log_prob"],
                                             config.clip_epsilon)
        kl_beta = learner.kl_beta
        if config.objective == "kl":
            kl_beta = losses.adaptive_kl_beta(kl_beta, kl, config.kl_target)
        return UpdateOutput(Learner(params, opt_state, kl_beta),
                            {**metrics, "kl": kl, "kl_beta": kl_beta, **diagnostics._asdict()})

    def log_prob(learner, obs, action):
        return net.apply(learner.params, obs)[0].log_prob(action)

    return Agent(init, act, update, log_prob=log_prob)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for PPO; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return onpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
