"""Natural policy gradient (Kakade 2001, "A Natural Policy Gradient"; in the batch form of
Schulman et al. 2015/2016, "Trust Region Policy Optimization" and "High-Dimensional Continuous
Control Using Generalized Advantage Estimation").

Each update takes one step on the whole batch of ``num_envs × rollout_length`` steps:

    g = ∇_θ L(θ)|_θold,   L(θ) = Ê[π_θ(a_t|s_t) / π_old(a_t|s_t) · Â_t]   (:func:`fnrl.losses.surrogate_loss`)
    F = ∇²_θ Ê[KL[π_old(·|s_t) ‖ π_θ(·|s_t)]]|_θold                         (the Fisher matrix)
    θ ← θ_old + α (F + cI)⁻¹ g,   α = sqrt(2δ / gᵀ(F + cI)⁻¹g)   (``max_kl = δ``: a step onto the
                                                                  quadratic KL radius)
                                  or α = ``step_size``             (a fixed step, when set)

with (F + cI)⁻¹g from conjugate gradient on Fisher-vector products, never forming F
(:func:`fnrl.transforms.scale_by_natural_gradient`, the optax form of
:func:`fnrl.transforms.natural_gradient_step`). Nothing checks the step afterwards; TRPO
(:mod:`fnrl.algorithms.trpo`) adds the line search.

The advantages Â_t are :func:`fnrl.estimators.gae` from a separate value network V_φ,
normalised over the batch; V_φ is then regressed on the λ-returns Â_t + V_φold(s_t)
(:func:`fnrl.losses.mse_loss`) by Adam over ``value_epochs`` shuffled passes of
``value_minibatches`` minibatches (:func:`fnrl.loops.onpolicy.minibatch_epochs`), as in the GAE paper.

:func:`make_natural_agent` is that whole update with the policy step as an argument: NPG and
TRPO differ only there. Defaults are tuned for cartpole.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from fnrl import estimators, losses, networks, transforms
from fnrl.agent import Agent, UpdateOutput, distribution_action
from fnrl.config import check, constrained, non_negative, one_of, positive, positive_int, unit_interval
from fnrl.loops import core, onpolicy

SUPPORTS = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class NaturalConfig(onpolicy.OnPolicyConfig):
    """Fields shared by NPG and TRPO."""

    max_kl: float = positive(0.01)
    cg_iterations: int = positive_int(10)
    cg_damping: float = non_negative(0.1)
    gae_lambda: float = unit_interval(0.95)
    normalize_advantages: bool = True
    value_learning_rate: float = positive(1e-3)
    value_epochs: int = positive_int(10)
    value_minibatches: int = positive_int(8)
    distribution: str = one_of("auto", networks.DISTRIBUTIONS)

    def __post_init__(self):
        super().__post_init__()
        check(self.steps_per_update % self.value_minibatches == 0, "value_minibatches", self.value_minibatches,
              f"a divisor of the batch num_envs * rollout_length = {self.steps_per_update}")


@dataclasses.dataclass(frozen=True)
class Config(NaturalConfig):
    """``step_size=None``: scale each step to the KL radius ``max_kl``; a number: the fixed
    step α of θ ← θ + α (F + cI)⁻¹ g (``max_kl`` unused)."""

    step_size: float | None = constrained(None, lambda v: v is None or v > 0, "positive or null")


class Learner(NamedTuple):
    policy: Any
    value: Any
    value_opt_state: Any


def make_natural_agent(config: NaturalConfig, spec, policy_step: Callable) -> Agent:
    """The agent: GAE advantages from V_φ, ``policy_step`` on the surrogate and the KL over the
    whole batch, then Adam regression of V_φ (module docstring).

    ``policy_step(params, surrogate_fn, kl_fn) -> (new_params, metrics)`` takes the policy step:
    ``surrogate_fn(p)`` is L(p), to maximise, and ``kl_fn(p)`` is Ê[KL[π_old ‖ π_p]] with π_old
    fixed at ``params`` (the conventions of :mod:`fnrl.transforms`).
    """
    value_optimizer = optax.adam(config.value_learning_rate)
    torso = networks.Torso(config.hidden_sizes, "tanh", orthogonal_init=True)
    policy = networks.make_policy(spec, torso, distribution=config.distribution)
    value = networks.make_value(spec, torso)

    def init(key, obs):
        policy_key, value_key = jax.random.split(key)
        value_params = value.init(value_key, obs)
        return Learner(policy.init(policy_key, obs), value_params, value_optimizer.init(value_params))

    def act(learner, obs, key, explore):
        dist = policy.apply(learner.policy, obs)
        return distribution_action(dist, key, explore, with_log_prob=True)

    def value_step(state, minibatch):
        params, opt_state = state
        value_loss, grads = jax.value_and_grad(
            lambda p: losses.mse_loss(value.apply(p, minibatch["obs"]), minibatch["target"]))(params)
        return transforms.optimizer_step(value_optimizer, grads, opt_state, params), {"value_loss": value_loss}

    def update(learner, traj, key):
        values = value.apply(learner.value, traj.obs)
        next_values = value.apply(learner.value, traj.next_obs)
        advantages = estimators.gae(traj.reward, values, next_values, traj.termination, traj.truncation,
                                    config.gamma, config.gae_lambda)
        targets = advantages + values
        if config.normalize_advantages:
            advantages = estimators.normalize_advantages(advantages)

        old_dist = policy.apply(learner.policy, traj.obs)
        old_log_prob = traj.extras["log_prob"]

        def surrogate_fn(params):
            log_prob = policy.apply(params, traj.obs).log_prob(traj.action)
            return -losses.surrogate_loss(log_prob, old_log_prob, advantages)

        def kl_fn(params):
            return jnp.mean(old_dist.kl_divergence(policy.apply(params, traj.obs)))

        policy_params, policy_metrics = policy_step(learner.policy, surrogate_fn, kl_fn)
        (value_params, value_opt_state), value_metrics = onpolicy.minibatch_epochs(
            key, (learner.value, learner.value_opt_state), {"obs": traj.obs, "target": targets},
            value_step, config.value_epochs, config.value_minibatches)
        return UpdateOutput(Learner(policy_params, value_params, value_opt_state), {**policy_metrics, **value_metrics})

    def log_prob(learner, obs, action):
        return policy.apply(learner.policy, obs).log_prob(action)

    return Agent(init, act, update, log_prob=log_prob)


def make_agent(config: Config, spec) -> Agent:
    """NPG's agent: :func:`make_natural_agent` with the natural-gradient step."""
    # Optax minimises: precondition the gradient of −L, then step against it.
    scale = -1.0 if config.step_size is None else -config.step_size
    max_kl = config.max_kl if config.step_size is None else None
    optimizer = optax.chain(
        transforms.scale_by_natural_gradient(max_kl, config.cg_iterations, config.cg_damping), optax.scale(scale))

    def policy_step(params, surrogate_fn, kl_fn):
        grads = jax.grad(lambda p: -surrogate_fn(p))(params)
        updates, _ = optimizer.update(grads, optimizer.init(params), params, kl_fn=kl_fn)
        new_params = optax.apply_updates(params, updates)
        return new_params, {"kl": kl_fn(new_params), "improvement": surrogate_fn(new_params) - surrogate_fn(params)}

    return make_natural_agent(config, spec, policy_step)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for NPG; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return onpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
