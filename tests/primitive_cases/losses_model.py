"""jit/vmap/grad cases for :mod:`fnrl.losses.model`."""
import jax

import fnrl.losses.model
from fnrl.losses.model import gaussian_nll_loss
from primitive_cases import Case

MODULE = fnrl.losses.model
EXEMPT = {"GaussianNLLTerms": "a NamedTuple of results, not a function (gaussian_nll_loss has a case)"}

B, D = 5, 3


def _args(key):
    """A prediction (mean, log std), targets, per-sample weights and learned bounds."""
    k = jax.random.split(key, 6)
    mean, log_std, target = (jax.random.normal(ki, (B, D)) for ki in k[:3])
    weights = jax.random.uniform(k[3], (B,))
    low, high = -5.0 + jax.random.normal(k[4], (D,)), 0.5 + jax.random.normal(k[5], (D,))
    return mean, log_std, target, weights, low, high


CASES = [
    Case("gaussian_nll_loss", lambda m, s, y, *_: gaussian_nll_loss(m, s, y), _args, (0, 1, 2)),
    Case("gaussian_nll_loss", gaussian_nll_loss, _args, (0, 1, 2, 4, 5)),  # weighted, with bounds
]
