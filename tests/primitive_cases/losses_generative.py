"""jit/vmap/grad cases for :mod:`fnrl.losses.generative`."""
import jax
import jax.numpy as jnp

import fnrl.losses.generative
from fnrl.losses.generative import vae_elbo
from primitive_cases import Case

MODULE = fnrl.losses.generative
EXEMPT = {"ELBOTerms": "a NamedTuple of results, not a function (vae_elbo has a case)"}

B, DX, DZ = 4, 3, 2


def _args(key):
    """A linear-Gaussian decoder W, data x, the posterior and a conditional prior."""
    k = jax.random.split(key, 6)
    W = jax.random.normal(k[0], (DX, DZ))
    x = jax.random.normal(k[1], (B, DX))
    mean, prior_mean = (jax.random.normal(ki, (B, DZ)) for ki in k[2:4])
    std, prior_std = (jnp.exp(0.3 * jax.random.normal(ki, (B, DZ))) for ki in k[4:6])
    return key, W, x, mean, std, prior_mean, prior_std


def _elbo(key, W, x, mean, std, prior_mean=None, prior_std=None):
    def log_likelihood(z):
        return -0.5 * jnp.sum((x - z @ W.T) ** 2, axis=-1)

    return vae_elbo(key, mean, std, log_likelihood, prior_mean, prior_std, beta=0.5, num_samples=3)


CASES = [
    Case("vae_elbo", lambda key, W, x, mean, std, *_: _elbo(key, W, x, mean, std), _args, (1, 2, 3, 4)),
    Case("vae_elbo", _elbo, _args, (1, 2, 3, 4, 5, 6)),  # conditional prior p(z|s)
]
