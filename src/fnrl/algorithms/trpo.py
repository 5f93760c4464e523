"""Trust region policy optimisation (Schulman et al. 2015, "Trust Region Policy Optimization",
§6 and appendix C; with GAE advantages as in Schulman et al. 2016).

    maximise_θ  L(θ) = Ê[π_θ(a_t|s_t) / π_old(a_t|s_t) · Â_t]
    subject to  Ê[KL[π_old(·|s_t) ‖ π_θ(·|s_t)]] ≤ δ  (``max_kl``)

solved approximately by :func:`fnrl.transforms.trpo_step`: the natural-gradient step
Δ = sqrt(2δ / gᵀF⁻¹g) F⁻¹g (conjugate gradient on Fisher-vector products of the KL), then a
backtracking line search over θ_old + βᵏΔ, k = 0, ..., ``max_backtracks`` − 1
(β = ``backtrack_ratio``), accepting the first candidate that improves L and keeps the
measured KL ≤ δ; if none does, the policy is left unchanged. Logged: ``accepted``,
``step_fraction`` (βᵏ), ``kl`` (of the accepted step) and ``improvement`` (of L).

Everything else -- GAE advantages from a separate value network V_φ, the surrogate
(:func:`fnrl.losses.surrogate_loss`) and KL over the whole batch, Adam regression of V_φ on the
λ-returns -- is shared with NPG (:func:`fnrl.algorithms.npg.make_natural_train`), and so are the
defaults (tuned for cartpole) and the pendulum settings given there.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from fnrl import transforms
from fnrl.algorithms.npg import NaturalConfig, make_natural_train
from fnrl.config import check

SUPPORTS = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class Config(NaturalConfig):
    """NPG's settings (:class:`fnrl.algorithms.npg.NaturalConfig`) and the line search's."""

    backtrack_ratio: float = 0.8
    max_backtracks: int = 10

    def __post_init__(self):
        super().__post_init__()
        check(0 < self.backtrack_ratio <= 1, "backtrack_ratio", self.backtrack_ratio, "in (0, 1]")
        check(self.max_backtracks > 0, "max_backtracks", self.max_backtracks, "a positive integer")


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for TRPO; see :mod:`fnrl.training`."""

    def policy_step(params, surrogate_fn, kl_fn):
        params, info = transforms.trpo_step(
            params, surrogate_fn, kl_fn, max_kl=config.max_kl, num_cg_iterations=config.cg_iterations,
            damping=config.cg_damping, backtrack_ratio=config.backtrack_ratio, max_backtracks=config.max_backtracks)
        return params, {**info._asdict(), "accepted": info.accepted.astype(jnp.float32)}

    return make_natural_train(config, policy_step, on_eval)
