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
λ-returns -- is shared with NPG (:func:`fnrl.algorithms.npg.make_natural_agent`), and so are
the defaults (tuned for cartpole).
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from fnrl import transforms
from fnrl.agent import Agent
from fnrl.algorithms.npg import NaturalConfig, make_natural_agent
from fnrl.config import constrained, positive_int
from fnrl.loops import core, onpolicy

SUPPORTS = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class Config(NaturalConfig):
    """NPG's settings (:class:`fnrl.algorithms.npg.NaturalConfig`) and the line search's."""

    backtrack_ratio: float = constrained(0.8, lambda v: 0 < v <= 1, "in (0, 1]")
    max_backtracks: int = positive_int(10)


def make_agent(config: Config, spec) -> Agent:
    """TRPO's agent: :func:`fnrl.algorithms.npg.make_natural_agent` with the TRPO step."""

    def policy_step(params, surrogate_fn, kl_fn):
        params, info = transforms.trpo_step(
            params, surrogate_fn, kl_fn, max_kl=config.max_kl, num_cg_iterations=config.cg_iterations,
            damping=config.cg_damping, backtrack_ratio=config.backtrack_ratio, max_backtracks=config.max_backtracks)
        return params, {**info._asdict(), "accepted": info.accepted.astype(jnp.float32)}

    return make_natural_agent(config, spec, policy_step)


def make_train(config: Config, on_eval=None):
    """``train(key) -> (learner, metrics)`` for TRPO; see :mod:`fnrl.loops.core`."""
    env = core.make_env(config)
    return onpolicy.make_train(config, env, make_agent(config, env.spec), on_eval)
