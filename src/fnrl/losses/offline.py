"""Offline-RL losses: behavioural cloning, advantage-weighted regression, IQL, CQL, TD3+BC.

Arguments are per-sample arrays with any batch shape ``[...]`` (Q-values over discrete
actions add a trailing ``[..., A]``, sampled actions a trailing ``[..., N]``). Losses
return a scalar: the mean over samples, or ``Σ mask·ℓ / Σ mask`` with ``mask`` (weights
of the per-sample shape). Everything that plays the role of a fixed target or weight
is wrapped in :func:`jax.lax.stop_gradient`, as stated per function.
"""
from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import rlax

from fnrl.losses._checks import (
    _check_action_values,
    _check_float,
    _check_positive,
    _check_same_shape,
    _masked_mean,
    _select,
)
from fnrl.losses.policy import _critic_of_action
from fnrl.types import Array

__all__ = [
    "bc_nll_loss",
    "awr_weights",
    "awr_actor_loss",
    "expectile_loss",
    "td3_bc_actor_loss",
    "cql_penalty_discrete",
    "cql_penalty_continuous",
]


def bc_nll_loss(log_prob: Array, mask: Array | None = None) -> Array:
    """Behavioural-cloning negative log-likelihood ``L = −mean log π(a|s)`` over dataset pairs.

    Maximum-likelihood imitation (Pomerleau 1991; Ross et al. 2011). Takes the log-probs
    of the dataset actions, so any distribution works (categorical, Gaussian, tanh-Gaussian
    via ``distrax``'s ``log_prob``).

    Args:
      log_prob: ``log π(a_i|s_i)``, shape ``[...]``.
      mask: optional weights ``[...]``.
    Returns:
      scalar loss.
    """
    _check_float("bc_nll_loss", log_prob=log_prob)
    return -_masked_mean(log_prob, mask, "bc_nll_loss")


def awr_weights(advantage: Array, temperature: float, max_weight: float = 20.0) -> Array:
    """Advantage weights of AWR / AWAC, ``w = min(exp(Â/λ), w_max)``, stop-gradient.

    The KL-constrained improvement step has the closed form
    ``π*(a|s) = π_β(a|s) exp(A(s,a)/λ) / Z(s)`` (Peng et al. 2019, AWR; Nair et al. 2020,
    AWAC). As in AWR (which uses ``w_max = 20``), ``Z(s)`` is dropped and the weight is
    clipped at ``w_max`` instead of normalised; the clip is applied to the exponent,
    ``exp(min(Â/λ, log w_max))``, so it never overflows. Monotone non-decreasing in ``Â``.

    Args:
      advantage: ``Â(s, a)``, shape ``[...]``.
      temperature: λ > 0.
      max_weight: ``w_max`` > 0.
    Returns:
      weights ``[...]`` in ``(0, w_max]``, with zero gradient.
    """
    fn = "awr_weights"
    _check_float(fn, advantage=advantage)
    _check_positive(fn, "temperature", temperature)
    _check_positive(fn, "max_weight", max_weight)
    exponent = jnp.minimum(advantage / temperature, jnp.log(max_weight))
    return jax.lax.stop_gradient(jnp.exp(exponent))


def awr_actor_loss(
    log_prob: Array, advantage: Array, temperature: float, max_weight: float = 20.0, mask: Array | None = None
) -> Array:
    """Advantage-weighted maximum likelihood ``L = −mean w(Â) log π(a|s)`` (AWR / AWAC).

    ``w`` from :func:`awr_weights` (Peng et al. 2019; Nair et al. 2020); the gradient
    reaches only ``log_prob``.

    Args:
      log_prob: ``log π_θ(a|s)`` of the dataset actions ``[...]``.
      advantage: ``Â(s, a)`` ``[...]``.
      temperature: λ > 0.
      max_weight: ``w_max`` > 0.
      mask: optional weights ``[...]``.
    Returns:
      scalar loss.
    """
    _check_same_shape("awr_actor_loss", log_prob=log_prob, advantage=advantage)
    _check_float("awr_actor_loss", log_prob=log_prob)
    weights = awr_weights(advantage, temperature, max_weight)
    return -_masked_mean(weights * log_prob, mask, "awr_actor_loss")


def expectile_loss(prediction: Array, target: Array, expectile: float, mask: Array | None = None) -> Array:
    """Expectile regression loss of IQL (Kostrikov, Nair & Levine 2021, Sec. 4.1).

    With ``u = sg(target) − prediction`` (IQL: ``u = Q̂(s, a) − V(s)``)::

        L = mean |τ − 1(u < 0)| u²,

    i.e. weight τ when the prediction is below the target and 1 − τ above it. (The CS285
    notes write the same loss with ``x = V − Q = −u``: ``(1 − τ) x²`` if ``x > 0``, else
    ``τ x²``.) τ = ½ gives ``½ u²``; the minimiser over a constant is the τ-expectile of
    the targets, which tends to their maximum as τ → 1. Elementwise term from
    ``rlax.expectile_loss``.

    Args:
      prediction: ``V(s)`` ``[...]``.
      target: ``Q̂(s, a)`` ``[...]`` (target network; stop-gradient).
      expectile: τ ∈ (0, 1).
      mask: optional weights ``[...]``.
    Returns:
      scalar loss.
    """
    fn = "expectile_loss"
    _check_same_shape(fn, prediction=prediction, target=target)
    _check_float(fn, prediction=prediction, target=target)
    if isinstance(expectile, (int, float)) and not 0.0 < expectile < 1.0:
        raise ValueError(f"{fn}: `expectile` must be in (0, 1), got {expectile}")
    elementwise = rlax.expectile_loss(prediction, jax.lax.stop_gradient(target), expectile)
    return _masked_mean(elementwise, mask, fn)


def td3_bc_actor_loss(
    q_apply, q_params, obs, action: Array, data_action: Array, alpha: float = 2.5, mask: Array | None = None
) -> Array:
    """TD3+BC's actor loss (Fujimoto & Gu 2021, eq. 3): the deterministic policy gradient plus
    behavioural cloning, with the Q term normalised by the batch's mean ``|Q|``::

        L(θ) = −λ Ê[Q_φ(s, μ_θ(s))] + Ê[‖μ_θ(s) − a‖² / d],    λ = α / sg(Ê|Q_φ(s, μ_θ(s))|)

    ``a`` is the dataset action and ``d`` the action dimension (the paper's code takes
    ``F.mse_loss``, the mean over the batch and the action's components). Dividing by the mean
    ``|Q|`` makes α (2.5 in the paper) independent of the reward's scale; α → 0 is behavioural
    cloning by least squares, α → ∞ the plain TD3 actor (:func:`deterministic_actor_loss`).
    The critic and the observation are stop-gradiented, so the gradient reaches θ through
    ``action`` only.

    Args:
      q_apply: ``q_apply(q_params, obs, action) -> Q`` of shape ``action.shape[:-1]``.
      q_params: the critic's parameters (no gradient).
      obs: the observations (any pytree; no gradient).
      action: μ_θ(s), ``[..., action_dim]``.
      data_action: the dataset's actions, ``[..., action_dim]``.
      alpha: α ≥ 0.
      mask: optional per-sample weights of shape ``action.shape[:-1]``.
    Returns:
      scalar loss.
    """
    fn = "td3_bc_actor_loss"
    _check_same_shape(fn, action=action, data_action=data_action)
    _check_float(fn, data_action=data_action)
    if isinstance(alpha, (int, float)) and alpha < 0:
        raise ValueError(f"{fn}: `alpha` must be non-negative, got {alpha}")
    q = _critic_of_action(fn, q_apply, q_params, obs, action)
    lam = jax.lax.stop_gradient(alpha / jnp.maximum(_masked_mean(jnp.abs(q), mask, fn), 1e-8))
    squared_error = jnp.mean(jnp.square(action - jax.lax.stop_gradient(data_action)), axis=-1)
    return _masked_mean(squared_error - lam * q, mask, fn)


def cql_penalty_discrete(
    q_values: Array, actions: Array, temperature: float = 1.0, mask: Array | None = None
) -> Array:
    """CQL(H) regulariser for discrete actions (Kumar, Zhou, Tucker & Levine 2020, eq. 4).

    ``P(s, a) = τ log Σ_a' exp(Q(s, a')/τ) − Q(s, a)`` with ``a`` the dataset action;
    returns ``mean P`` (multiply by α and add to the TD loss). τ = 1 is the paper's
    CQL(H); the official code exposes τ as ``temp`` (the CS285 notes write
    μ ∝ exp(Q) vs exp(Q/α) inconsistently). Gradient: ``softmax(Q/τ) − onehot(a)``.

    What holds exactly (Gibbs' variational principle, ``τ log Σ exp(Q/τ) =
    max_μ E_μ Q + τ H(μ)``): for any data distribution ``β(·|s)``,
    ``E_{a∼β} P(s, a) ≥ τ H(β)``, with equality iff ``β = softmax(Q(s, ·)/τ)``. So
    ``P > 0`` for every sample, and when the data cover the actions uniformly,
    ``mean_a P(s, a) − τ log|A| = τ log mean_a exp(Q/τ) − mean_a Q ≥ 0``, with equality
    iff Q is constant over actions. (Subtracting ``τ log|A|``, i.e. R(μ) = −KL(μ‖Unif),
    changes neither the gradient nor the minimiser.)

    Args:
      q_values: ``Q(s, ·)``, ``[..., A]``.
      actions: integer dataset actions ``[...]``.
      temperature: τ > 0.
      mask: optional weights ``[...]``.
    Returns:
      scalar penalty.
    """
    fn = "cql_penalty_discrete"
    chex.assert_type(actions, int, custom_message=f"{fn}: `actions` must be an integer array")
    _check_action_values(fn, actions, q_values=q_values)
    _check_float(fn, q_values=q_values)
    _check_positive(fn, "temperature", temperature)
    soft_max = temperature * jax.nn.logsumexp(q_values / temperature, axis=-1)
    return _masked_mean(soft_max - _select(q_values, actions), mask, fn)


def cql_penalty_continuous(
    q_data: Array,
    q_uniform: Array,
    log_prob_uniform: Array,
    q_policy: Array | None = None,
    log_prob_policy: Array | None = None,
    temperature: float = 1.0,
    mask: Array | None = None,
) -> Array:
    """CQL(H) regulariser for continuous actions, importance-sampled (Kumar et al. 2020, App. F).

    ``τ log ∫ exp(Q(s, a)/τ) da`` is estimated from ``N`` actions ``a_i ~ Unif(𝒜)`` and,
    optionally, ``M`` actions ``a_j ~ π(·|s)``, with an equal-weight mixture::

        Ẑ = ½ mean_i exp(Q(s,a_i)/τ − log U(a_i)) + ½ mean_j exp(Q(s,a_j)/τ − log π(a_j|s)),
        P(s, a) = τ log Ẑ − Q(s, a),

    computed with one ``logsumexp`` (never exponentiating Q). Without the policy samples
    ``Ẑ`` is the uniform term alone. Each half is an unbiased estimate of ``∫ exp(Q/τ)``,
    so ``τ log Ẑ`` converges to ``τ log ∫ exp(Q/τ) da`` as N, M grow. The proposal
    log-densities are importance weights, not trained through (stop-gradient); gradient
    flows into every Q-value. Returns ``mean P``. (With N = M, dropping the constant ``log N``
    terms, as some implementations do, shifts the penalty but not its gradient.)

    Args:
      q_data: ``Q(s, a)`` of the dataset action ``[...]``.
      q_uniform: ``Q(s, a_i)`` for uniform samples ``[..., N]``.
      log_prob_uniform: ``log U(a_i)`` = ``−Σ_d log(high_d − low_d)``: a scalar or ``[..., N]``.
      q_policy: optional ``Q(s, a_j)`` for policy samples ``[..., M]``.
      log_prob_policy: ``log π(a_j|s)`` ``[..., M]``, required with ``q_policy``.
      temperature: τ > 0.
      mask: optional weights ``[...]``.
    Returns:
      scalar penalty.
    """
    fn = "cql_penalty_continuous"
    _check_action_values(fn, q_data, "num_samples", q_uniform=q_uniform)
    _check_float(fn, q_data=q_data, q_uniform=q_uniform)
    _check_positive(fn, "temperature", temperature)
    if jnp.ndim(log_prob_uniform) != 0:
        _check_same_shape(fn, q_uniform=q_uniform, log_prob_uniform=log_prob_uniform)
    if (q_policy is None) != (log_prob_policy is None):
        raise ValueError(f"{fn}: pass both `q_policy` and `log_prob_policy`, or neither")

    def log_mean_weight(q, log_prob):
        log_w = q / temperature - jax.lax.stop_gradient(log_prob)
        return jax.nn.logsumexp(log_w, axis=-1) - math.log(q.shape[-1])

    log_z = log_mean_weight(q_uniform, log_prob_uniform)
    if q_policy is not None:
        _check_action_values(fn, q_data, "num_samples", q_policy=q_policy)
        _check_same_shape(fn, q_policy=q_policy, log_prob_policy=log_prob_policy)
        log_z = jnp.logaddexp(log_z, log_mean_weight(q_policy, log_prob_policy)) - math.log(2.0)
    return _masked_mean(temperature * log_z - q_data, mask, fn)
