"""Generative losses: the evidence lower bound of a Gaussian VAE and of a conditional VAE.

The encoder's output (the mean and standard deviation of the diagonal Gaussian q(z|·)) is
passed as arrays and the decoder as its log-likelihood function of z, so the same loss serves
any encoder and decoder, conditioned or not. Sampling and the analytic KL use distrax.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import chex
import distrax
import jax
import jax.numpy as jnp

from fnrl.losses._checks import _check_float, _check_same_shape
from fnrl.types import Array, PRNGKey

__all__ = ["ELBOTerms", "vae_elbo"]


class ELBOTerms(NamedTuple):
    """Result of :func:`vae_elbo`; per-example arrays have the batch shape ``mean.shape[:-1]``.

    Attributes:
      loss: scalar to minimise, the batch mean of −(log_likelihood − β·kl).
      elbo: per-example ELBO with β = 1, log_likelihood − kl: a lower bound on log p(x).
      log_likelihood: per-example Monte-Carlo estimate of E_q[log p(x|z)].
      kl: per-example analytic KL(q(z|x) ‖ p(z)).
    """

    loss: Array
    elbo: Array
    log_likelihood: Array
    kl: Array


def vae_elbo(
    key: PRNGKey,
    posterior_mean: Array,
    posterior_std: Array,
    log_likelihood: Callable[[Array], Array],
    prior_mean: Array | None = None,
    prior_std: Array | None = None,
    beta: float = 1.0,
    num_samples: int = 1,
) -> ELBOTerms:
    """Evidence lower bound of a Gaussian VAE (Kingma & Welling 2014), optionally β-weighted
    (Higgins et al. 2017) and conditional (Sohn et al. 2015).

        ELBO(x) = E_{q(z|x)}[log p(x|z)] − KL(q(z|x) ‖ p(z)) ≤ log p(x),
        log p(x) − ELBO(x) = KL(q(z|x) ‖ p(z|x)),
        loss = Ê_x[−(E_q[log p(x|z)] − β KL(q(z|x) ‖ p(z)))],

    with q(z|x) = N(μ, diag σ²), the expectation estimated from ``num_samples`` reparameterised
    samples z = μ + σ ⊙ ε, ε ~ N(0, I) (so gradients reach μ and σ), and the KL in closed form:
    for the default prior p(z) = N(0, I) it is ½ Σ_i (σ_i² + μ_i² − 1 − log σ_i²).

    Conditional VAE, e.g. a behaviour model p(a|s) as in BCQ (Fujimoto et al. 2019) and PLAS
    (Zhou et al. 2020): x = a, the encoder gives q(z|a, s), ``log_likelihood`` closes over s
    (z ↦ log p(a|s, z)), and the prior is N(0, I) or a conditional Gaussian p(z|s) given by
    ``prior_mean``, ``prior_std``; then ELBO(a|s) ≤ log p(a|s). BCQ uses β = 0.5 and a
    fixed-variance Gaussian decoder.

    Args:
      key: PRNG key for ε.
      posterior_mean: μ, the encoder's mean, ``[..., latent_dim]``.
      posterior_std: σ > 0, same shape.
      log_likelihood: ``z -> log p(x|z)`` for z of shape ``[..., latent_dim]``, returning the
        batch shape ``[...]`` (the decoder, closed over x, its parameters and any condition).
      prior_mean, prior_std: optional conditional prior p(z|s) = N(prior_mean, diag prior_std²),
        both of the posterior's shape; omitted, the prior is N(0, I).
      beta: the KL weight β of the loss (the returned ``elbo`` always uses β = 1).
      num_samples: the number of samples of z per example.
    Returns:
      :class:`ELBOTerms`.
    """
    fn = "vae_elbo"
    if not (isinstance(num_samples, int) and num_samples >= 1):
        raise ValueError(f"{fn}: `num_samples` must be a positive int, got {num_samples!r}")
    if (prior_mean is None) != (prior_std is None):
        raise ValueError(f"{fn}: give both `prior_mean` and `prior_std` (a conditional prior) or neither")
    if jnp.ndim(posterior_mean) < 1:
        raise ValueError(f"{fn}: `posterior_mean` must have shape [..., latent_dim], got a scalar")
    gaussians = {"posterior_mean": posterior_mean, "posterior_std": posterior_std}
    if prior_mean is not None:
        gaussians.update(prior_mean=prior_mean, prior_std=prior_std)
    _check_float(fn, **gaussians)
    _check_same_shape(fn, **gaussians)

    posterior = distrax.MultivariateNormalDiag(posterior_mean, posterior_std)
    if prior_mean is None:
        prior_mean, prior_std = jnp.zeros_like(posterior_mean), jnp.ones_like(posterior_std)
    prior = distrax.MultivariateNormalDiag(prior_mean, prior_std)

    z = posterior.sample(seed=key, sample_shape=(num_samples,))
    log_lik = jax.vmap(log_likelihood)(z)
    batch_shape = posterior_mean.shape[:-1]
    msg = f"{fn}: `log_likelihood(z)` must return one value per example, shape {batch_shape}"
    chex.assert_shape(log_lik, (num_samples, *batch_shape), custom_message=msg)
    log_lik = jnp.mean(log_lik, axis=0)
    kl = posterior.kl_divergence(prior)
    return ELBOTerms(
        loss=-jnp.mean(log_lik - beta * kl),
        elbo=log_lik - kl,
        log_likelihood=log_lik,
        kl=kl,
    )
