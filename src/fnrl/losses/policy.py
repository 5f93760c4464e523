"""Policy losses: score-function PG, trust-region surrogates (PPO), entropy, DDPG/TD3 and SAC.

Every loss is a quantity to *minimise*. Inputs are per-sample arrays of one common shape (any
batch shape: ``[T]``, ``[T, B]``, ...), and each loss reduces them to a scalar by the mean,
or, given ``mask``, by the weighted mean ``Σ m·ℓ / Σ m`` (``mask`` has the per-sample shape and
holds 0/1 flags or non-negative weights; an all-zero mask gives 0).

Log-probabilities, not logits, are taken wherever the loss needs only ``log π(a|s)``, so the
same loss serves categorical, Gaussian and squashed policies alike. The policy-gradient, PPO
and entropy losses are tested against ``rlax.policy_gradient_loss``,
``rlax.clipped_surrogate_pg_loss`` and ``rlax.entropy_loss``, which take softmax logits or
ratios and accept a single time axis only.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import distrax
import jax
import jax.numpy as jnp

from fnrl.losses._checks import _check_float, _check_same_shape, _masked_mean
from fnrl.types import Array, Params

__all__ = [
    "policy_gradient_loss",
    "surrogate_loss",
    "ppo_clip_loss",
    "PPODiagnostics",
    "ppo_diagnostics",
    "kl_penalty_loss",
    "adaptive_kl_beta",
    "entropy_loss",
    "deterministic_actor_loss",
    "sac_actor_loss",
    "sac_temperature_loss",
]

sg = jax.lax.stop_gradient


def _check_samples(fn: str, **arrays: Array) -> None:
    """Per-sample float arrays of one common shape, named in the error message."""
    _check_float(fn, **arrays)
    _check_same_shape(fn, **arrays)


def _check_scalar(fn: str, **arrays: Array) -> None:
    for name, x in arrays.items():
        chex.assert_rank(x, 0, custom_message=f"{fn}: `{name}` must be a scalar")


def _check_epsilon(fn: str, epsilon) -> None:
    if isinstance(epsilon, (int, float)) and not 0 < epsilon < 1:
        raise ValueError(f"{fn}: `epsilon` must be in (0, 1), got {epsilon}")


def _ratio(log_prob: Array, old_log_prob: Array) -> Array:
    """r = π_θ(a|s) / π_old(a|s), differentiable in θ only."""
    return jnp.exp(log_prob - sg(old_log_prob))


def policy_gradient_loss(log_prob: Array, advantage: Array, mask: Array | None = None) -> Array:
    """Score-function (REINFORCE) policy-gradient loss with an advantage or baselined return.

        L(θ) = −Ê[log π_θ(a|s) · sg(Â)],      ∇_θ L = −Ê[∇_θ log π_θ(a|s) · Â]

    whose gradient is the (negated) policy-gradient estimate (Williams 1992; Sutton et al.
    2000). ``Â`` may be a return minus any state baseline b(s), which leaves the estimate
    unbiased. Equals ``rlax.policy_gradient_loss`` (which takes logits and actions) for
    ``log_prob = log_softmax(logits)[a]`` and ``mask = w`` of ones.

    Args:
      log_prob: log π_θ(a|s) of the taken actions, any shape.
      advantage: Â, same shape; no gradient flows into it.
      mask: optional per-sample weights, same shape.
    Returns:
      The scalar loss.
    """
    _check_samples("policy_gradient_loss", log_prob=log_prob, advantage=advantage)
    return _masked_mean(-log_prob * sg(advantage), mask, "policy_gradient_loss")


def surrogate_loss(
    log_prob: Array, old_log_prob: Array, advantage: Array, mask: Array | None = None
) -> Array:
    """Importance-sampled surrogate L^CPI of conservative policy iteration / TRPO.

        L(θ) = −Ê[r_t(θ) · sg(Â_t)],    r_t(θ) = π_θ(a_t|s_t) / π_old(a_t|s_t)

    (Kakade & Langford 2002; Schulman et al. 2015, TRPO eq. 14). At θ = θ_old its gradient is
    the policy gradient, since ∇r = r ∇log π and r = 1 there.

    Args:
      log_prob: log π_θ(a|s), any shape.
      old_log_prob: log π_old(a|s) of the behaviour policy, same shape; no gradient.
      advantage: Â under π_old, same shape; no gradient.
      mask: optional per-sample weights, same shape.
    Returns:
      The scalar loss.
    """
    _check_samples("surrogate_loss", log_prob=log_prob, old_log_prob=old_log_prob, advantage=advantage)
    return _masked_mean(-_ratio(log_prob, old_log_prob) * sg(advantage), mask, "surrogate_loss")


def ppo_clip_loss(
    log_prob: Array,
    old_log_prob: Array,
    advantage: Array,
    epsilon: float = 0.2,
    mask: Array | None = None,
) -> Array:
    """PPO clipped surrogate (Schulman et al. 2017, eq. 7).

        L(θ) = −Ê[min(r_t Â_t, clip(r_t, 1−ε, 1+ε) Â_t)],   r_t = π_θ(a_t|s_t) / π_old(a_t|s_t)

    Pointwise L^CLIP ≤ L^CPI (the objective is a pessimistic bound on the IS surrogate); it
    equals :func:`surrogate_loss` (value and gradient) while r ∈ [1−ε, 1+ε], and has zero
    gradient when r > 1+ε with Â > 0 or r < 1−ε with Â < 0. Same as
    ``rlax.clipped_surrogate_pg_loss`` with ratios exp(log_prob − old_log_prob).

    Args:
      log_prob: log π_θ(a|s), any shape.
      old_log_prob: log π_old(a|s), same shape; no gradient.
      advantage: Â under π_old, same shape; no gradient.
      epsilon: clip range ε ∈ (0, 1), typically 0.1–0.3.
      mask: optional per-sample weights, same shape.
    Returns:
      The scalar loss. See :func:`ppo_diagnostics` for clip fraction and approximate KL.
    """
    fn = "ppo_clip_loss"
    _check_samples(fn, log_prob=log_prob, old_log_prob=old_log_prob, advantage=advantage)
    _check_epsilon(fn, epsilon)
    ratio, advantage = _ratio(log_prob, old_log_prob), sg(advantage)
    clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon)
    return _masked_mean(-jnp.minimum(ratio * advantage, clipped * advantage), mask, fn)


class PPODiagnostics(NamedTuple):
    """Scalars to log next to a PPO update (see :func:`ppo_diagnostics`)."""

    approx_kl: Array
    clip_fraction: Array


def ppo_diagnostics(
    log_prob: Array, old_log_prob: Array, epsilon: float = 0.2, mask: Array | None = None
) -> PPODiagnostics:
    """Approximate KL and clip fraction of a PPO update, from samples a ~ π_old.

        approx_kl     = Ê[(r − 1) − log r]      (≥ 0, unbiased for KL[π_old ‖ π_θ]; Schulman 2020,
                                                 "Approximating KL divergence", estimator k3)
        clip_fraction = Ê[1{|r − 1| > ε}]

    With ``mask`` set to π_old(a|s) over an enumeration of the actions, approx_kl is the exact KL.

    Args:
      log_prob: log π_θ(a|s), any shape.
      old_log_prob: log π_old(a|s), same shape.
      epsilon: the PPO clip range.
      mask: optional per-sample weights, same shape.
    Returns:
      :class:`PPODiagnostics` of scalars.
    """
    fn = "ppo_diagnostics"
    _check_samples(fn, log_prob=log_prob, old_log_prob=old_log_prob)
    _check_epsilon(fn, epsilon)
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    clipped = (jnp.abs(ratio - 1.0) > epsilon).astype(ratio.dtype)
    return PPODiagnostics(
        approx_kl=_masked_mean((ratio - 1.0) - log_ratio, mask, fn),
        clip_fraction=_masked_mean(clipped, mask, fn),
    )


def kl_penalty_loss(
    log_prob: Array,
    old_log_prob: Array,
    advantage: Array,
    kl: Array,
    beta: Array,
    mask: Array | None = None,
) -> Array:
    """KL-penalised surrogate of PPO (Schulman et al. 2017, eq. 8).

        L(θ) = −Ê[r_t(θ) Â_t − β · KL[π_old(·|s_t) ‖ π_θ(·|s_t)]]

    i.e. :func:`surrogate_loss` plus β times the mean KL. The KL is zero with zero gradient at
    θ = θ_old, so there the gradient is the policy gradient. Adapt β between updates with
    :func:`adaptive_kl_beta`.

    Args:
      log_prob: log π_θ(a|s), any shape.
      old_log_prob: log π_old(a|s), same shape; no gradient.
      advantage: Â under π_old, same shape; no gradient.
      kl: per-state KL[π_old(·|s) ‖ π_θ(·|s)], same shape; analytic where the policy allows
        (e.g. ``old_dist.kl_divergence(new_dist)`` with distrax).
      beta: the penalty coefficient β ≥ 0, a scalar.
      mask: optional per-sample weights, same shape.
    Returns:
      The scalar loss.
    """
    fn = "kl_penalty_loss"
    _check_samples(fn, log_prob=log_prob, old_log_prob=old_log_prob, advantage=advantage, kl=kl)
    _check_scalar(fn, beta=jnp.asarray(beta))
    return surrogate_loss(log_prob, old_log_prob, advantage, mask) + beta * _masked_mean(kl, mask, fn)


def adaptive_kl_beta(
    beta: Array, kl: Array, kl_target: float, tolerance: float = 1.5, factor: float = 2.0
) -> Array:
    """Adaptive KL coefficient of PPO (Schulman et al. 2017, section 4).

        d = Ê[KL[π_old ‖ π_θ]] after an update;
        β ← β / factor   if d < d_targ / tolerance,
        β ← β · factor   if d > d_targ · tolerance,
        β unchanged      otherwise       (paper: tolerance 1.5, factor 2).

    Args:
      beta: the current β, a scalar.
      kl: the measured mean KL d, a scalar.
      kl_target: d_targ > 0.
      tolerance: the band half-width (> 1) on a multiplicative scale.
      factor: the multiplicative step (> 1).
    Returns:
      The new β, a scalar.
    """
    fn = "adaptive_kl_beta"
    for name, value, low in (("kl_target", kl_target, 0), ("tolerance", tolerance, 1), ("factor", factor, 1)):
        if isinstance(value, (int, float)) and not value > low:
            raise ValueError(f"{fn}: `{name}` must be > {low}, got {value}")
    beta, kl = jnp.asarray(beta), jnp.asarray(kl)
    _check_scalar(fn, beta=beta, kl=kl)
    too_small, too_large = kl < kl_target / tolerance, kl > kl_target * tolerance
    return jnp.where(too_small, beta / factor, jnp.where(too_large, beta * factor, beta))


def entropy_loss(dist: distrax.Distribution, mask: Array | None = None) -> Array:
    """Entropy bonus, as a loss: L = −Ê[H(π(·|s))] (Williams & Peng 1991; Mnih et al. 2016).

    Added to a policy loss with a coefficient c > 0 (PPO's L^CLIP + c₂ H[π]). The entropy is
    distrax's closed form, e.g. −Σ_a π log π for ``distrax.Categorical`` and
    Σ_i ½ log(2πe σ_i²) for ``distrax.MultivariateNormalDiag``; for categorical logits of rank 2
    it equals ``rlax.entropy_loss``.

    Args:
      dist: the policy at the sampled states, with batch shape equal to the per-sample shape.
      mask: optional per-sample weights of shape ``dist.batch_shape``.
    Returns:
      The scalar loss.
    """
    if not isinstance(dist, distrax.Distribution):
        raise TypeError(f"entropy_loss: `dist` must be a distrax.Distribution, got {type(dist).__name__}")
    return _masked_mean(-dist.entropy(), mask, "entropy_loss")


def _critic_of_action(fn: str, q_apply: Callable, q_params: Params, obs, action: Array) -> Array:
    """Q(s, a) with the critic and the observation frozen: gradient flows through ``action`` only."""
    _check_float(fn, action=action)
    if jnp.ndim(action) < 1:
        raise ValueError(f"{fn}: `action` must have shape [..., action_dim], got a scalar")
    q = q_apply(sg(q_params), sg(obs), action)
    msg = f"{fn}: `q_apply` must return one Q per action, shape {action.shape[:-1]}"
    chex.assert_shape(q, action.shape[:-1], custom_message=msg)
    return q


def deterministic_actor_loss(
    q_apply: Callable, q_params: Params, obs, action: Array, mask: Array | None = None
) -> Array:
    """DDPG/TD3 deterministic actor loss (Silver et al. 2014; Lillicrap et al. 2016; Fujimoto et al.
    2018).

        L(θ) = −Ê[Q_φ(s, μ_θ(s))],    ∇_θ L = −Ê[∇_a Q_φ(s, a)|_{a=μ_θ(s)} ∇_θ μ_θ(s)]

    The critic parameters and the observation are stop-gradiented, so the actor's gradient
    flows only through the action (the deterministic policy gradient). For TD3 pass the first
    critic.

    Args:
      q_apply: ``q_apply(q_params, obs, action) -> Q`` of shape ``action.shape[:-1]``.
      q_params: the critic's parameters (no gradient).
      obs: the observations (any pytree; no gradient).
      action: μ_θ(s), shape ``[..., action_dim]``.
      mask: optional per-sample weights of shape ``action.shape[:-1]``.
    Returns:
      The scalar loss.
    """
    fn = "deterministic_actor_loss"
    return _masked_mean(-_critic_of_action(fn, q_apply, q_params, obs, action), mask, fn)


def sac_actor_loss(
    q_apply: Callable,
    q_params: Params,
    obs,
    action: Array,
    log_prob: Array,
    alpha: Array,
    mask: Array | None = None,
) -> Array:
    """Soft actor-critic policy loss (Haarnoja et al. 2018a, eq. 12).

        L(θ) = Ê_{s, ε}[α log π_θ(a|s) − Q_φ(s, a)],    a = f_θ(ε; s) reparameterised

    e.g. a = tanh(μ_θ(s) + σ_θ(s) ε). The critic parameters, the observation and α are
    stop-gradiented: the gradient reaches θ through ``action`` and ``log_prob``. With twin
    critics pass a ``q_apply`` returning the minimum.

    Args:
      q_apply: ``q_apply(q_params, obs, action) -> Q`` of shape ``action.shape[:-1]``.
      q_params: the critic's parameters (no gradient).
      obs: the observations (any pytree; no gradient).
      action: the reparameterised sample a ~ π_θ(·|s), ``[..., action_dim]``.
      log_prob: log π_θ(a|s) of that sample, shape ``action.shape[:-1]``.
      alpha: the temperature α > 0, a scalar (no gradient).
      mask: optional per-sample weights of shape ``action.shape[:-1]``.
    Returns:
      The scalar loss.
    """
    fn = "sac_actor_loss"
    q = _critic_of_action(fn, q_apply, q_params, obs, action)
    _check_samples(fn, log_prob=log_prob, q=q)
    _check_scalar(fn, alpha=jnp.asarray(alpha))
    return _masked_mean(sg(alpha) * log_prob - q, mask, fn)


def sac_temperature_loss(
    log_alpha: Array, log_prob: Array, target_entropy: float, mask: Array | None = None
) -> Array:
    """SAC automatic temperature loss, in the log α parameterisation (Haarnoja et al. 2018b, eq. 18).

        L(log α) = −Ê[log α · sg(log π(a|s) + H̄)],   a ~ π(·|s)
        ∂L/∂log α = Ê[−log π] − H̄ = Ĥ(π) − H̄

    so gradient descent raises α while the policy's entropy is below the target H̄ and lowers
    it above. The paper writes the loss in α, −Ê[α (log π + H̄)]; its gradient in log α is
    α times the one above, with the same sign and fixed point. Using log α keeps α > 0 without
    a constraint. A common target is H̄ = −action_dim.

    Args:
      log_alpha: log α, a scalar.
      log_prob: log π(a|s) of fresh policy samples, any shape (no gradient).
      target_entropy: the target entropy H̄.
      mask: optional per-sample weights, same shape as ``log_prob``.
    Returns:
      The scalar loss.
    """
    fn = "sac_temperature_loss"
    log_alpha = jnp.asarray(log_alpha)
    _check_scalar(fn, log_alpha=log_alpha)
    _check_float(fn, log_alpha=log_alpha, log_prob=log_prob)
    return _masked_mean(-log_alpha * sg(log_prob + target_entropy), mask, fn)
