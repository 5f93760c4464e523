"""Model losses: the Gaussian negative log-likelihood of a probabilistic dynamics model, with
the penalty on learned log-σ bounds of PETS.

The model's prediction is passed as arrays (mean and log standard deviation, any network), so
the same loss trains one model, each member of an ensemble (``jax.vmap`` over members) or any
other diagonal-Gaussian regressor.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax.numpy as jnp

from fnrl.losses._checks import _check_float, _check_same_shape, _masked_mean
from fnrl.types import Array

__all__ = ["GaussianNLLTerms", "gaussian_nll_loss"]

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianNLLTerms(NamedTuple):
    """Result of :func:`gaussian_nll_loss`; every field is a scalar.

    Attributes:
      loss: scalar to minimise, ``nll + bound_penalty · (Σ max_log_std − Σ min_log_std)``.
      nll: the (weighted) mean over samples of −log N(y; μ, diag σ²).
      mse: the (weighted) mean over samples and dimensions of (y − μ)², a diagnostic.
      bound_penalty: the penalty term (0 without bounds).
    """

    loss: Array
    nll: Array
    mse: Array
    bound_penalty: Array


def gaussian_nll_loss(
    mean: Array,
    log_std: Array,
    target: Array,
    weights: Array | None = None,
    min_log_std: Array | None = None,
    max_log_std: Array | None = None,
    bound_penalty: float = 0.01,
) -> GaussianNLLTerms:
    """Negative log-likelihood of a diagonal Gaussian, with PETS's penalty on learned log-σ
    bounds (Chua et al. 2018, "Deep Reinforcement Learning in a Handful of Trials using
    Probabilistic Dynamics Models", §4.1 and appendix A.1; used again by MBPO, Janner et al. 2019).

        −log N(y; μ, diag σ²) = Σ_d [ (y_d − μ_d)² / (2σ_d²) + log σ_d + ½ log 2π ],
        nll  = Σ_n w_n (−log N(y_n; μ_n, σ_n²)) / Σ_n w_n        (w_n = 1 without weights),
        loss = nll + λ (Σ_d max_log_std_d − Σ_d min_log_std_d).

    The network bounds ``log σ`` softly between learned ``min_log_std`` and ``max_log_std``
    (:func:`fnrl.networks.soft_clamp`); the NLL pushes the upper bound up where σ would need
    to exceed it, and the penalty pulls the bounds together otherwise, so the variance stays
    bounded away from the data. ``weights`` are per-sample weights, e.g. bootstrap counts or
    masks (Osband et al. 2016). PETS's code puts λ = 0.01 on the *log-variance* bounds (0.02
    on log-σ ones) beside an NLL without the ½ and the constant, averaged over samples *and*
    output dimensions; here the NLL is the true negative log-density per sample, summed over
    dimensions (comparable across models), and λ (default 0.01) multiplies log-σ bounds.

    Args:
      mean: μ, ``[..., D]``.
      log_std: log σ, ``[..., D]`` (passed in log form for accuracy: σ may be tiny).
      target: y, ``[..., D]``.
      weights: optional per-sample weights ``[...]`` (≥ 0); the mean is over their total.
      min_log_std, max_log_std: the learned bounds (any shape, e.g. ``[D]``), both or neither.
      bound_penalty: λ ≥ 0.
    Returns:
      :class:`GaussianNLLTerms`.
    """
    fn = "gaussian_nll_loss"
    _check_float(fn, mean=mean, log_std=log_std, target=target)
    _check_same_shape(fn, mean=mean, log_std=log_std, target=target)
    chex.assert_rank(mean, {*range(1, 9)}, custom_message=f"{fn}: `mean` must be [..., D]")
    if (min_log_std is None) != (max_log_std is None):
        raise ValueError(f"{fn}: give both `min_log_std` and `max_log_std` (learned bounds) or neither")
    if isinstance(bound_penalty, (int, float)) and bound_penalty < 0:
        raise ValueError(f"{fn}: `bound_penalty` must be >= 0, got {bound_penalty}")

    z = (target - mean) * jnp.exp(-log_std)
    per_sample = jnp.sum(0.5 * z**2 + log_std + 0.5 * _LOG_2PI, axis=-1)
    nll = _masked_mean(per_sample, weights, fn)
    mse = _masked_mean(jnp.mean((target - mean) ** 2, axis=-1), weights, fn)
    if min_log_std is None:
        penalty = jnp.zeros((), nll.dtype)
    else:
        _check_float(fn, min_log_std=min_log_std, max_log_std=max_log_std)
        penalty = bound_penalty * (jnp.sum(max_log_std) - jnp.sum(min_log_std))
    return GaussianNLLTerms(loss=nll + penalty, nll=nll, mse=mse, bound_penalty=penalty)
