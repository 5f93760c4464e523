"""Update transforms: natural gradient, TRPO step, target networks, dual ascent.

Every function here is pure over pytrees of parameters and works under ``jit``, ``vmap`` and
``grad``; optax supplies the tree arithmetic, the target-network updates and the chaining.

Sign conventions (one rule for the whole module):

- The pure functions keep the paper's direction. :func:`natural_gradient_step` maps a gradient
  ``g`` to a step of the *same* sign, ``Δ = α F⁻¹ g``: give it the gradient of an objective to
  maximise and add ``Δ``, or the gradient of a loss and subtract ``Δ``. :func:`trpo_step`
  *maximises* ``surrogate_fn``. :func:`dual_ascent_update` *raises* λ while the constraint
  is violated.
- :func:`scale_by_natural_gradient` follows optax's ``scale_by_*`` convention: it rescales the
  incoming gradient and keeps its sign. Optax *adds* updates to the parameters and minimises
  losses, so end the chain with a negative scale::

      tx = optax.chain(scale_by_natural_gradient(max_kl=0.01), optax.scale(-1.0))
      updates, opt_state = tx.update(jax.grad(loss)(params), opt_state, params, kl_fn=kl_fn)
      params = optax.apply_updates(params, updates)

The KL function. Natural gradient and TRPO take ``kl_fn(params) -> scalar``: the mean over
states of ``KL(π_old(·|s) ‖ π_params(·|s))`` where ``π_old`` is the policy at the parameters the
step is taken from, held fixed (computed once and closed over, or behind ``stop_gradient``). Its
Hessian there is the Fisher information matrix, and TRPO's line search uses the same function to
check the trust region.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from optax import tree_utils as otu

__all__ = [
    "optimizer_step",
    "conjugate_gradient",
    "fisher_vector_product",
    "natural_gradient_step",
    "scale_by_natural_gradient",
    "TRPOInfo",
    "trpo_step",
    "polyak_update",
    "periodic_update",
    "dual_ascent_update",
]

Params = Any


def _check_number(name: str, value, *, low: float, low_inclusive: bool, high: float | None = None):
    """Raise a one-line ValueError when a Python number is out of range (traced values pass)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    too_low = value < low if low_inclusive else value <= low
    if too_low or (high is not None and value > high):
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and <= {high}" if high is not None else "")
        raise ValueError(f"{name} must be {bound}, got {value}")


def optimizer_step(optimizer: optax.GradientTransformation, grads: Params, opt_state: Any,
                   params: Params) -> tuple[Params, Any]:
    """One step of an optax ``optimizer``: ``u, s' = optimizer.update(g, s, θ)``, ``θ' = θ + u``.
    Returns ``(θ', s')``."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _check_iterations(name: str, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a Python int >= 1, got {value!r}")


def _check_scalar_fn(name: str, fn: Callable, params: Params):
    out = jax.eval_shape(fn, params)
    if not hasattr(out, "shape") or out.shape != ():
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{name}(params) must return a scalar, got {shape}")


def _safe_div(num: chex.Array, den: chex.Array) -> chex.Array:
    """num / den where den > 0, else 0 (no NaN in the value or the gradient)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


# ------------------------------------------------------------------------------------------------
# Conjugate gradient and Fisher-vector products
# ------------------------------------------------------------------------------------------------


def conjugate_gradient(
    matvec: Callable[[Params], Params],
    b: Params,
    *,
    num_iterations: int,
    damping: float | chex.Array = 0.0,
    tol: float | None = None,
) -> Params:
    """Solve ``(A + c I) x = b`` with at most ``num_iterations`` conjugate-gradient iterations.

    Hestenes & Stiefel (1952); Nocedal & Wright, *Numerical Optimization* (2006), Alg. 5.2.
    With ``Ã = A + cI``, ``x₀ = 0`` and ``r₀ = p₀ = b``::

        α_k = r_kᵀ r_k / p_kᵀ Ã p_k,    x_{k+1} = x_k + α_k p_k,   r_{k+1} = r_k − α_k Ã p_k,
        β_k = r_{k+1}ᵀ r_{k+1} / r_kᵀ r_k,                          p_{k+1} = r_{k+1} + β_k p_k.

    In exact arithmetic ``x_k`` solves an SPD system once ``k`` reaches the number of distinct
    eigenvalues of ``Ã`` (so at most its dimension), and for a consistent singular PSD system
    (``b`` in the range of ``A``, ``c = 0``) it converges to the minimum-norm solution ``A⁺b``.

    ``A`` is given only through ``matvec`` (e.g. a Fisher-vector product), on any pytree ``b``.
    The loop is a ``lax.fori_loop`` with a static trip count: the cost is fixed and ``grad``
    differentiates exactly the iterations run. Once the residual is small, ``‖r_k‖ ≤ tol·‖b‖``
    (the relative test of SciPy's and JAX's ``cg``), the remaining iterations leave ``x`` as it
    is: float32 never reaches an exactly zero residual, and undamped CG run
    past the rank of a singular ``A`` would otherwise drift along its null space. A direction
    of non-positive curvature is guarded too (``x`` stops moving instead of turning into NaN). We do not use ``jax.scipy.sparse.linalg.cg``: it stops on a tolerance in
    a ``while_loop`` and differentiates through ``custom_linear_solve``'s implicit rule, which
    assumes a converged solve rather than the truncated one TRPO runs; with ``tol=0`` its iterates
    coincide with these (tested).

    Args:
      matvec: linear map ``v -> A v`` on pytrees shaped like ``b``; ``A`` symmetric PSD.
      b: right-hand side (any pytree of float arrays).
      num_iterations: number of CG iterations (Python int >= 1).
      damping: ``c >= 0`` added to the diagonal (Tikhonov damping).
      tol: relative residual ``>= 0`` at which the iterations stop moving ``x``; default
        ``100·eps`` of ``b``'s dtype (about 1e-5 in float32, as SciPy's default; 2e-14 in
        float64); 0: only an exactly zero residual stops them.

    Returns:
      ``x`` with the structure of ``b``.
    """
    _check_iterations("num_iterations", num_iterations)
    _check_number("damping", damping, low=0.0, low_inclusive=True)
    if tol is None:
        tol = 100 * float(jnp.finfo(jax.tree_util.tree_leaves(b)[0].dtype).eps)
    _check_number("tol", tol, low=0.0, low_inclusive=True)
    out = jax.eval_shape(matvec, b)
    chex.assert_trees_all_equal_shapes(
        out, b, custom_message="matvec(b) must return a pytree shaped like b"
    )

    def damped(v):
        return otu.tree_add_scale(matvec(v), damping, v)

    bb = otu.tree_vdot(b, b)

    def body(_, carry):
        x, r, p, rs = carry
        ap = damped(p)
        alpha = _safe_div(rs, otu.tree_vdot(p, ap))
        x_new = otu.tree_add_scale(x, alpha, p)
        r_new = otu.tree_add_scale(r, -alpha, ap)
        rs_new = otu.tree_vdot(r_new, r_new)
        p_new = otu.tree_add_scale(r_new, _safe_div(rs_new, rs), p)
        converged = rs <= tol**2 * bb
        return jax.tree_util.tree_map(lambda old, new: jnp.where(converged, old, new),
                                      carry, (x_new, r_new, p_new, rs_new))

    return jax.lax.fori_loop(0, num_iterations, body, (otu.tree_zeros_like(b), b, b, bb))[0]


def fisher_vector_product(kl_fn: Callable[[Params], chex.Array], params: Params) -> Callable[[Params], Params]:
    """Return the map ``v -> F v`` at ``params`` without materialising the Fisher matrix ``F``.

    The Fisher information is the Hessian of the KL from the fixed old policy (Amari 1998;
    Kakade 2001; Schulman et al. 2015, *Trust Region Policy Optimization*, App. C)::

        F = E_s E_{a~π}[∇ log π(a|s) ∇ log π(a|s)ᵀ] = ∇²_θ KL(π_old ‖ π_θ) |_{θ = θ_old},
        F v = ∇_θ ( ∇_θ KL(π_old ‖ π_θ) · v ).

    This is a Hessian-vector product by forward-over-reverse differentiation, linearised once with
    ``jax.linearize(jax.grad(kl_fn), params)`` so that each product (e.g. each CG iteration) costs
    one linear pass. Equivalent alternative, not implemented here: the Gauss-Newton form
    ``F = Jᵀ H_KL J`` with ``J`` the Jacobian of the distribution parameters (e.g. logits) with
    respect to ``θ`` and ``H_KL`` the Hessian of the KL in those parameters (Martens 2014).

    Args:
      kl_fn: ``kl_fn(p)`` = mean over states of ``KL(π_old ‖ π_p)`` with ``π_old`` fixed at
        ``params`` (see the module docstring); must return a scalar.
      params: the parameters ``θ_old`` at which the Fisher matrix is taken.

    Returns:
      ``fvp(v)``, a linear function of pytrees shaped like ``params``.
    """
    _check_scalar_fn("kl_fn", kl_fn, params)
    return jax.linearize(jax.grad(kl_fn), params)[1]


def natural_gradient_step(
    grads: Params,
    fvp: Callable[[Params], Params],
    *,
    max_kl: float | chex.Array | None = None,
    num_cg_iterations: int = 10,
    damping: float | chex.Array = 1e-2,
) -> Params:
    """Natural-gradient step ``Δ = α x`` with ``x ≈ (F + cI)⁻¹ g`` solved by conjugate gradient.

    Amari (1998); Kakade (2001), *A Natural Policy Gradient*; Schulman et al. (2015), TRPO §6.
    ``x`` comes from :func:`conjugate_gradient` on the Fisher-vector product ``fvp`` (``F`` is never
    built). With ``max_kl = δ`` the step is scaled onto the quadratic trust region::

        α = sqrt(2δ / xᵀ(F + cI)x),   so that   ½ Δᵀ(F + cI)Δ = δ,

    i.e. ``α = sqrt(2δ / gᵀF⁻¹g)`` at ``c = 0``. (The lecture slides print ``sqrt(2δ / gᵀFg)``, a
    typo.) Damping only shrinks the step, so the quadratic model ``½ΔᵀFΔ`` stays ``<= δ``.
    With ``max_kl=None`` the step is ``x`` itself (natural gradient with a learning rate applied
    later). A zero gradient gives a zero step.

    The step has the sign of ``g`` (see the module docstring).

    Args:
      grads: the gradient ``g`` (pytree shaped like the parameters).
      fvp: ``v -> F v``, e.g. :func:`fisher_vector_product`.
      max_kl: the trust-region size ``δ > 0``, or ``None`` for the unscaled ``x``.
      num_cg_iterations: CG iterations (Python int >= 1).
      damping: ``c >= 0``, added to ``F`` both in the solve and in the scale.

    Returns:
      ``Δ``, shaped like ``grads``.
    """
    _check_number("max_kl", max_kl, low=0.0, low_inclusive=False)
    x = conjugate_gradient(fvp, grads, num_iterations=num_cg_iterations, damping=damping)
    if max_kl is None:
        return x
    x_fx = otu.tree_vdot(x, otu.tree_add_scale(fvp(x), damping, x))
    alpha = jnp.sqrt(_safe_div(2.0 * max_kl, x_fx))
    return otu.tree_scale(alpha, x)


def scale_by_natural_gradient(
    max_kl: float | None = None,
    num_cg_iterations: int = 10,
    damping: float = 1e-2,
) -> optax.GradientTransformationExtraArgs:
    """Optax transform: precondition the gradient by the inverse Fisher, ``g -> α (F + cI)⁻¹ g``.

    The stateless optax form of :func:`natural_gradient_step` (same equation and references).
    ``update(updates, state, params, *, kl_fn)`` needs the current ``params`` and the extra
    argument ``kl_fn`` (see the module docstring); ``optax.chain`` forwards it. Like optax's
    ``scale_by_*`` transforms it keeps the sign of the incoming gradient: for a loss, end the
    chain with ``optax.scale(-1.0)`` (``max_kl`` set: the step already has its trust-region size)
    or ``optax.scale(-learning_rate)`` (``max_kl=None``).

    Args:
      max_kl: trust-region size ``δ > 0``, or ``None`` for the unscaled natural gradient.
      num_cg_iterations: CG iterations (Python int >= 1).
      damping: ``c >= 0`` added to the Fisher matrix.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.
    """
    _check_number("max_kl", max_kl, low=0.0, low_inclusive=False)
    _check_iterations("num_cg_iterations", num_cg_iterations)
    _check_number("damping", damping, low=0.0, low_inclusive=True)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, *, kl_fn=None, **extra_args):
        del extra_args
        if params is None or kl_fn is None:
            raise ValueError(
                "scale_by_natural_gradient needs update(updates, state, params, kl_fn=...)"
            )
        step = natural_gradient_step(
            updates,
            fisher_vector_product(kl_fn, params),
            max_kl=max_kl,
            num_cg_iterations=num_cg_iterations,
            damping=damping,
        )
        return step, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


# ------------------------------------------------------------------------------------------------
# TRPO step
# ------------------------------------------------------------------------------------------------


class TRPOInfo(NamedTuple):
    """Diagnostics of :func:`trpo_step`, all about the returned parameters.

    Attributes:
      accepted: whether a step was taken.
      step_fraction: the accepted fraction ``β^k`` of the full natural step (0 if none).
      kl: ``kl_fn(new_params)`` (0 if no step).
      improvement: ``surrogate_fn(new_params) − surrogate_fn(params)`` (0 if no step).
    """

    accepted: chex.Array
    step_fraction: chex.Array
    kl: chex.Array
    improvement: chex.Array


def trpo_step(
    params: Params,
    surrogate_fn: Callable[[Params], chex.Array],
    kl_fn: Callable[[Params], chex.Array],
    *,
    max_kl: float | chex.Array,
    num_cg_iterations: int = 10,
    damping: float | chex.Array = 1e-2,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 10,
) -> tuple[Params, TRPOInfo]:
    """One TRPO update: natural-gradient direction plus a backtracking line search.

    Schulman et al. (2015), *Trust Region Policy Optimization*, §6 and App. C. With
    ``g = ∇L(θ)`` and the full step ``Δ`` of :func:`natural_gradient_step` (``½ΔᵀFΔ = δ``), try
    ``θ + β^k Δ`` for ``k = 0, ..., max_backtracks − 1`` and accept the first one with::

        L(θ + β^k Δ) − L(θ) > 0     and     KL(π_θ ‖ π_{θ+β^k Δ}) <= δ.

    If none qualifies the parameters are returned unchanged. The search is a fixed-length
    ``lax.scan`` whose body is a ``lax.cond``: after acceptance the remaining candidates are not
    evaluated (under ``vmap`` both branches run), and the whole step stays differentiable.

    Args:
      params: current parameters ``θ`` (the policy π_old).
      surrogate_fn: ``L(p)``, the surrogate objective to *maximise*, e.g. the importance-weighted
        advantage ``mean(π_p(a|s) / π_old(a|s) · A)``; pass ``lambda p: -loss(p)`` for a loss.
      kl_fn: mean ``KL(π_old ‖ π_p)`` with ``π_old`` fixed at ``params``.
      max_kl: trust-region size ``δ > 0`` (0.01 is typical).
      num_cg_iterations: CG iterations for ``F⁻¹g`` (10 in the paper).
      damping: ``c >= 0`` added to ``F``.
      backtrack_ratio: ``β`` in (0, 1].
      max_backtracks: number of candidate fractions tried (Python int >= 1).

    Returns:
      ``(new_params, TRPOInfo)``.
    """
    _check_number("max_kl", max_kl, low=0.0, low_inclusive=False)
    _check_number("backtrack_ratio", backtrack_ratio, low=0.0, low_inclusive=False, high=1.0)
    _check_iterations("max_backtracks", max_backtracks)
    _check_scalar_fn("surrogate_fn", surrogate_fn, params)

    surrogate, grads = jax.value_and_grad(surrogate_fn)(params)
    full_step = natural_gradient_step(
        grads,
        fisher_vector_product(kl_fn, params),
        max_kl=max_kl,
        num_cg_iterations=num_cg_iterations,
        damping=damping,
    )

    def evaluate(fraction):
        candidate = otu.tree_add_scale(params, fraction, full_step)
        kl = kl_fn(candidate)
        improvement = surrogate_fn(candidate) - surrogate
        ok = (improvement > 0) & (kl <= max_kl)
        zero = jnp.zeros_like(surrogate)
        return TRPOInfo(
            ok, jnp.where(ok, fraction, zero), jnp.where(ok, kl, zero), jnp.where(ok, improvement, zero)
        )

    def body(info, fraction):
        return jax.lax.cond(info.accepted, lambda _: info, evaluate, fraction), None

    fractions = backtrack_ratio ** jnp.arange(max_backtracks, dtype=surrogate.dtype)
    zero = jnp.zeros_like(surrogate)
    info, _ = jax.lax.scan(body, TRPOInfo(jnp.array(False), zero, zero, zero), fractions)
    new_params = jax.tree.map(
        lambda p, d: jnp.where(info.accepted, p + info.step_fraction * d, p), params, full_step
    )
    return new_params, info


# ------------------------------------------------------------------------------------------------
# Target networks
# ------------------------------------------------------------------------------------------------


def _check_online_target(online: Params, target: Params):
    chex.assert_trees_all_equal_shapes(
        online, target, custom_message="online and target must be pytrees of the same shapes"
    )


def polyak_update(online: Params, target: Params, tau: float | chex.Array) -> Params:
    """Polyak (exponential moving) averaging of a target network: ``θ' ← τ θ + (1 − τ) θ'``.

    Polyak & Juditsky (1992); used for target networks by Lillicrap et al. (2016, DDPG, τ = 0.005
    to 0.01) and Haarnoja et al. (2018, SAC). Here ``tau`` is the fraction of the *online*
    parameters mixed in: ``tau = 1`` copies, ``tau = 0`` keeps the target. (The lecture notes'
    Polyak coefficient is the fraction *kept*, i.e. ``1 − tau``.) Built on
    ``optax.incremental_update``. With a fixed ``θ``, ``θ'_k − θ = (1 − τ)^k (θ'_0 − θ)``.

    Args:
      online: online parameters ``θ``.
      target: target parameters ``θ'`` (same tree and shapes).
      tau: step size in ``[0, 1]``.

    Returns:
      the new target parameters.
    """
    _check_online_target(online, target)
    _check_number("tau", tau, low=0.0, low_inclusive=True, high=1.0)
    return optax.incremental_update(online, target, tau)


def periodic_update(online: Params, target: Params, step: chex.Array, period: int) -> Params:
    """Hard target-network copy every ``period`` steps: ``θ' ← θ`` if ``step mod N = 0``.

    Mnih et al. (2015), *Human-level control through deep reinforcement learning* (DQN). Built on
    ``optax.periodic_update``. ``step`` counts updates of the online network; the copy happens at
    ``step = 0, N, 2N, ...`` (at 0 it is a no-op for a target initialised from the online network).

    Args:
      online: online parameters ``θ``.
      target: target parameters ``θ'`` (same tree and shapes).
      step: integer scalar step counter.
      period: ``N``, a Python int >= 1.

    Returns:
      the new target parameters.
    """
    _check_online_target(online, target)
    _check_iterations("period", period)
    step = jnp.asarray(step)
    chex.assert_rank(step, 0, custom_message="step must be a scalar")
    chex.assert_type(step, int, custom_message="step must be an integer")
    return optax.periodic_update(online, target, step, period)


# ------------------------------------------------------------------------------------------------
# Dual ascent
# ------------------------------------------------------------------------------------------------


def dual_ascent_update(
    multiplier: chex.Array,
    constraint: chex.Array,
    constraint_target: chex.Array | float,
    learning_rate: float | chex.Array,
    *,
    log_space: bool = False,
) -> chex.Array:
    """Projected gradient ascent on the dual of ``max f(θ)  s.t.  c(θ) <= c_target``.

    The Lagrangian ``f(θ) − λ (c(θ) − c_target)`` is minimised over ``λ >= 0`` by the dual;
    its gradient step, projected back onto ``λ >= 0`` (Boyd & Vandenberghe 2004, §5; the dual
    update of Lagrangian constrained RL, e.g. Tessler et al. 2019, *Reward Constrained Policy
    Optimization*, and of SAC's temperature, Haarnoja et al. 2018b)::

        λ ← max(0, λ + α (c − c_target)).

    With ``log_space=True`` the argument and result are ``log λ`` and the update is the
    exponentiated-gradient (mirror) ascent ``log λ ← log λ + α (c − c_target)``, i.e.
    ``λ ← λ exp(α (c − c_target))``, which keeps ``λ > 0`` with no projection (the update that
    SAC's usual log-temperature loss ``−log α · (log π + H_target)`` produces). Either way λ rises
    iff the constraint is violated (``c > c_target``). The same step as an optax optimiser:
    ``optax.chain(optax.sgd(α), optax.keep_params_nonnegative())`` applied to the gradient of the
    dual loss ``−λ · stop_gradient(c − c_target)`` (tested).

    Args:
      multiplier: ``λ >= 0`` (or ``log λ`` with ``log_space=True``), float array.
      constraint: the measured ``c``, same shape as ``multiplier`` (e.g. the mean KL).
      constraint_target: ``c_target``, broadcastable to ``constraint``.
      learning_rate: ``α > 0``.
      log_space: update ``log λ`` instead of ``λ``.

    Returns:
      the new ``λ`` (or ``log λ``), shaped like ``multiplier``.
    """
    _check_number("learning_rate", learning_rate, low=0.0, low_inclusive=False)
    multiplier, constraint = jnp.asarray(multiplier), jnp.asarray(constraint)
    chex.assert_type(
        [multiplier, constraint], float, custom_message="multiplier and constraint must be float"
    )
    chex.assert_equal_shape(
        [multiplier, constraint], custom_message="multiplier and constraint must have the same shape"
    )
    step = learning_rate * (constraint - jnp.asarray(constraint_target, constraint.dtype))
    if log_space:
        return multiplier + step
    return jnp.maximum(multiplier + step, 0.0)
