"""Shape checks, masked means and action selection shared by every loss family."""
from __future__ import annotations

import chex
import jax.numpy as jnp

from fnrl.types import Array


def _masked_mean(x: Array, mask: Array | None, fn: str) -> Array:
    """``mean(x)``, or ``Σ mask·x / Σ mask`` (0 if ``Σ mask = 0``)."""
    if mask is None:
        return jnp.mean(x)
    chex.assert_equal_shape([x, mask], custom_message=f"{fn}: `mask` must have the per-sample shape {x.shape}")
    mask = jnp.asarray(mask, x.dtype)
    total = jnp.sum(mask)
    return jnp.sum(mask * x) / jnp.where(total > 0, total, 1.0)


def _check_positive(fn: str, name: str, value) -> None:
    """One-line error for a concrete non-positive hyperparameter (traced values pass)."""
    if isinstance(value, (int, float)) and not value > 0:
        raise ValueError(f"{fn}: `{name}` must be > 0, got {value}")


def _check_same_shape(fn: str, **arrays: Array) -> None:
    names = ", ".join(f"`{n}`" for n in arrays)
    chex.assert_equal_shape(list(arrays.values()), custom_message=f"{fn}: {names} must have the same shape")


def _check_float(fn: str, **arrays: Array) -> None:
    for name, x in arrays.items():
        chex.assert_type(x, float, custom_message=f"{fn}: `{name}` must be a float array")


def _check_action_values(fn: str, ref: Array, axis: str = "num_actions", **arrays: Array) -> None:
    """Each array must be ``[*ref.shape, K]`` (values over actions or over sampled actions)."""
    for name, x in arrays.items():
        chex.assert_shape(x, (*ref.shape, None),
                          custom_message=f"{fn}: `{name}` must have shape {tuple(ref.shape)} + ({axis},)")


def _check_discount(fn: str, discount, ref: Array) -> None:
    if isinstance(discount, (int, float)):
        if not 0.0 <= discount <= 1.0:
            raise ValueError(f"{fn}: `discount` must be in [0, 1], got {discount}")
    elif jnp.ndim(discount) != 0:
        chex.assert_shape(discount, ref.shape,
                          custom_message=f"{fn}: `discount` must be a scalar or have the per-sample shape {ref.shape}")


def _select(q_values: Array, actions: Array) -> Array:
    """``Q(s, a)``: pick ``actions [...]`` out of ``q_values [..., A]``."""
    return jnp.take_along_axis(q_values, actions[..., None].astype(jnp.int32), axis=-1)[..., 0]


