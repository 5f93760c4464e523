"""Tests for fnrl.transforms against exact answers: linear algebra on small SPD systems, the
explicit Fisher matrix of a small softmax policy, closed-form line-search outcomes, and limits.

Exactness checks run in float64 inside ``jax.enable_x64(True)``.
"""
import functools

import jax
import jax.numpy as jnp
import jax.scipy.sparse.linalg as jsl
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from fnrl import transforms as T
from primitive_cases.transforms import logits, mean_kl_fn, policy_data, surrogate_fn


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _spd(n, seed=0):
    m = np.random.default_rng(seed).normal(size=(n, n))
    return m @ m.T + np.eye(n)


# ------------------------------------------------------------------------------------------------
# Conjugate gradient
# ------------------------------------------------------------------------------------------------


def test_cg_solves_spd_system_in_n_iterations(x64):
    n = 8
    a, b = _spd(n), np.random.default_rng(1).normal(size=n)
    x = T.conjugate_gradient(lambda v: a @ v, jnp.asarray(b), num_iterations=n)
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-6, atol=1e-6)


def test_cg_converges_in_as_many_iterations_as_distinct_eigenvalues(x64):
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(8, 8)))
    a = q @ np.diag([1.0, 1.0, 1.0, 4.0, 4.0, 9.0, 9.0, 9.0]) @ q.T  # 3 distinct eigenvalues
    b = np.random.default_rng(3).normal(size=8)
    exact = np.linalg.solve(a, b)
    solve = lambda k: T.conjugate_gradient(lambda v: a @ v, jnp.asarray(b), num_iterations=k)
    np.testing.assert_allclose(solve(3), exact, rtol=1e-6, atol=1e-6)
    assert np.abs(solve(2) - exact).max() > 1e-3  # two iterations are not enough


def test_cg_damping_solves_shifted_system(x64):
    a, b = _spd(6, seed=4), np.random.default_rng(5).normal(size=6)
    x = T.conjugate_gradient(lambda v: a @ v, jnp.asarray(b), num_iterations=6, damping=0.7)
    np.testing.assert_allclose(x, np.linalg.solve(a + 0.7 * np.eye(6), b), rtol=1e-6, atol=1e-6)


def test_cg_on_a_pytree_equals_the_flat_solve(x64):
    a, b = _spd(5, seed=6), np.random.default_rng(7).normal(size=5)
    tree_b = {"u": jnp.asarray(b[:2]), "v": jnp.asarray(b[2:]).reshape(3, 1)}

    def matvec(t):
        y = a @ jnp.concatenate([t["u"], t["v"].ravel()])
        return {"u": y[:2], "v": y[2:].reshape(3, 1)}

    x = T.conjugate_gradient(matvec, tree_b, num_iterations=5)
    np.testing.assert_allclose(ravel_pytree(x)[0], np.linalg.solve(a, b), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3])
def test_cg_truncated_iterates_match_jax_scipy(x64, k):
    a, b = _spd(6, seed=8), jnp.asarray(np.random.default_rng(9).normal(size=6))
    expected, _ = jsl.cg(lambda v: a @ v, b, tol=0.0, atol=0.0, maxiter=k)
    x = T.conjugate_gradient(lambda v: a @ v, b, num_iterations=k)
    np.testing.assert_allclose(x, expected, rtol=1e-10)


def test_cg_stays_finite_after_exact_convergence():
    b = jnp.array([1.0, -2.0, 3.0])
    solve = lambda b: T.conjugate_gradient(lambda v: 2.0 * v, b, num_iterations=5)  # exact after 1
    np.testing.assert_allclose(solve(b), b / 2.0)
    np.testing.assert_allclose(jax.grad(lambda b: jnp.sum(solve(b)))(b), 0.5 * np.ones(3), rtol=1e-6)
    np.testing.assert_array_equal(solve(jnp.zeros(3)), np.zeros(3))
    assert np.all(np.isfinite(jax.grad(lambda b: jnp.sum(solve(b)))(jnp.zeros(3))))


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_cg_past_the_rank_stops_at_the_minimum_norm_solution(seed):
    """A rank-4 Fisher ``JᵀJ`` on 10 parameters, in float32, b in its range: 30 undamped
    iterations (3x the dimension) stay at ``A⁺b`` once the relative residual is below the
    default ``tol`` (100 float32 eps);
    with ``tol=0`` (only an exact zero stops CG) they drift along the null space."""
    rng = np.random.default_rng(seed)
    j = rng.normal(size=(4, 10))
    a = j.T @ j
    b = (a @ rng.normal(size=10)).astype(np.float32)
    exact = np.linalg.pinv(a, rcond=1e-10) @ b
    solve = lambda tol: T.conjugate_gradient(lambda v: jnp.asarray(a, jnp.float32) @ v, jnp.asarray(b),
                                             num_iterations=30, tol=tol)
    scale = np.abs(exact).max()
    assert np.abs(solve(None) - exact).max() < 1e-5 * scale
    assert np.abs(solve(0.0) - exact).max() > 1e-3 * scale


def test_cg_rejects_bad_input():
    b = jnp.ones(3)
    with pytest.raises(ValueError, match="num_iterations"):
        T.conjugate_gradient(lambda v: v, b, num_iterations=0)
    with pytest.raises(ValueError, match="damping"):
        T.conjugate_gradient(lambda v: v, b, num_iterations=2, damping=-1.0)
    with pytest.raises(ValueError, match="tol"):
        T.conjugate_gradient(lambda v: v, b, num_iterations=2, tol=-1e-3)
    with pytest.raises(AssertionError, match="matvec"):
        T.conjugate_gradient(lambda v: v[:2], b, num_iterations=2)


# ------------------------------------------------------------------------------------------------
# Fisher-vector products and natural gradient on a small softmax policy
# ------------------------------------------------------------------------------------------------


@jax.jit
def _explicit_fisher(params, obs):
    """F = E_s[Jᵀ (diag π − π πᵀ) J] with J = ∂logits(s)/∂θ, on the flattened parameters."""
    flat, unravel = ravel_pytree(params)
    jac = jax.jacobian(lambda f: logits(unravel(f), obs))(flat)  # [S, A, n]
    pi = jax.nn.softmax(logits(params, obs))
    h = jax.vmap(jnp.diag)(pi) - pi[:, :, None] * pi[:, None, :]
    return jnp.mean(jnp.einsum("sai,sab,sbj->sij", jac, h, jac), 0)


@pytest.fixture(scope="module")
def policy():
    """A float64 softmax policy with its explicit Fisher matrix; use together with ``x64``."""
    with jax.enable_x64(True):
        params, obs, actions, adv = jax.tree.map(
            lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x,
            policy_data(jax.random.PRNGKey(3)),
        )
        flat, unravel = ravel_pytree(params)
        surrogate = surrogate_fn(params, obs, actions, adv)
        return dict(
            data=(params, obs, actions, adv),
            params=params,
            obs=obs,
            kl=mean_kl_fn(params, obs),
            fisher=_explicit_fisher(params, obs),
            grad=ravel_pytree(jax.jit(jax.grad(surrogate))(params))[0],
            flat=flat,
            unravel=unravel,
        )


@functools.partial(jax.jit, static_argnames=("max_kl", "num_cg_iterations", "damping"))
def _natural_step(params, obs, actions, adv, **kwargs):
    """The flattened natural_gradient_step of the surrogate's gradient for the test policy."""
    fvp = T.fisher_vector_product(mean_kl_fn(params, obs), params)
    step = T.natural_gradient_step(jax.grad(surrogate_fn(params, obs, actions, adv))(params), fvp, **kwargs)
    return ravel_pytree(step)[0]


def test_fvp_equals_explicit_fisher_times_v(x64, policy):
    fvp = T.fisher_vector_product(policy["kl"], policy["params"])
    unravel, n = policy["unravel"], policy["flat"].size
    columns = jax.vmap(lambda e: ravel_pytree(fvp(unravel(e)))[0])(jnp.eye(n))  # F is symmetric
    np.testing.assert_allclose(columns, policy["fisher"], atol=1e-12)


def test_explicit_fisher_is_the_kl_hessian_and_the_score_covariance(x64, policy):
    @jax.jit
    def hessian_and_score_covariance(params, obs):
        flat, unravel = ravel_pytree(params)
        hessian = jax.hessian(lambda f: mean_kl_fn(params, obs)(unravel(f)))(flat)
        # E_s Σ_a π(a|s) ∇log π(a|s) ∇log π(a|s)ᵀ, by enumeration over actions.
        scores = jax.jacobian(lambda f: jax.nn.log_softmax(logits(unravel(f), obs)))(flat)  # [S, A, n]
        pi = jax.nn.softmax(logits(params, obs))
        return hessian, jnp.mean(jnp.einsum("sa,sai,saj->sij", pi, scores, scores), 0)

    hessian, score_cov = hessian_and_score_covariance(policy["params"], policy["obs"])
    np.testing.assert_allclose(policy["fisher"], hessian, atol=1e-12)
    np.testing.assert_allclose(policy["fisher"], score_cov, atol=1e-12)


def test_fvp_rejects_a_non_scalar_kl(x64, policy):
    with pytest.raises(ValueError, match="kl_fn"):
        T.fisher_vector_product(lambda p: p["b"], policy["params"])


def test_natural_gradient_equals_explicit_fisher_solution(x64, policy):
    f, g, n = policy["fisher"], policy["grad"], policy["flat"].size
    # The softmax Fisher is singular (shifting all logits is invisible); g lies in its range and
    # undamped CG converges to the minimum-norm solution F⁺g.
    assert np.linalg.matrix_rank(f) < n
    x = _natural_step(*policy["data"], num_cg_iterations=n, damping=0.0)
    np.testing.assert_allclose(x, np.linalg.pinv(f) @ g, rtol=1e-4, atol=1e-8)
    x = _natural_step(*policy["data"], num_cg_iterations=n, damping=0.1)
    np.testing.assert_allclose(x, np.linalg.solve(f + 0.1 * np.eye(n), g), rtol=1e-4, atol=1e-8)


def test_natural_gradient_in_float32_matches_the_explicit_solution():
    params, obs, actions, adv = policy_data(jax.random.PRNGKey(3))
    n = ravel_pytree(params)[0].size
    x = _natural_step(params, obs, actions, adv, num_cg_iterations=n, damping=0.1)
    grads = jax.grad(surrogate_fn(params, obs, actions, adv))(params)
    f = np.asarray(_explicit_fisher(params, obs), np.float64)
    expected = np.linalg.solve(f + 0.1 * np.eye(n), np.asarray(ravel_pytree(grads)[0], np.float64))
    assert x.dtype == jnp.float32
    np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_natural_step_meets_the_quadratic_trust_region(x64, policy, damping):
    delta, n = 0.02, policy["flat"].size
    step = _natural_step(*policy["data"], max_kl=delta, num_cg_iterations=n, damping=damping)
    np.testing.assert_allclose(0.5 * step @ (policy["fisher"] + damping * np.eye(n)) @ step, delta, rtol=1e-8)


def test_true_kl_after_a_small_step_is_close_to_delta_and_the_slide_formula_is_not(x64, policy):
    delta, n = 1e-3, policy["flat"].size
    flat, unravel = policy["flat"], policy["unravel"]
    step = _natural_step(*policy["data"], max_kl=delta, num_cg_iterations=n, damping=0.0)
    assert abs(policy["kl"](unravel(flat + step)) / delta - 1.0) < 0.1

    # Slides: α = sqrt(2δ / gᵀFg) (a typo for gᵀF⁻¹g): the KL misses δ.
    x = _natural_step(*policy["data"], num_cg_iterations=n, damping=0.0)
    g = policy["grad"]
    wrong = np.sqrt(2 * delta / (g @ policy["fisher"] @ g)) * x
    assert abs(policy["kl"](unravel(flat + wrong)) / delta - 1.0) > 0.1


def test_zero_gradient_gives_a_zero_step():
    step = T.natural_gradient_step(jnp.zeros(3), lambda v: v, max_kl=0.01, num_cg_iterations=3)
    np.testing.assert_array_equal(step, np.zeros(3))
    with pytest.raises(ValueError, match="max_kl"):
        T.natural_gradient_step(jnp.ones(3), lambda v: v, max_kl=0.0)


# ------------------------------------------------------------------------------------------------
# The optax transform
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_kl,scale", [(0.01, -1.0), (None, -0.05)])
def test_optax_chain_matches_the_pure_function_and_descends(max_kl, scale):
    natural = T.scale_by_natural_gradient(max_kl=max_kl, num_cg_iterations=8, damping=0.1)
    tx = optax.chain(natural, optax.scale(scale))

    @jax.jit
    def run(params, obs, actions, adv):
        kl, surrogate = mean_kl_fn(params, obs), surrogate_fn(params, obs, actions, adv)
        grads = jax.grad(lambda p: -surrogate(p))(params)  # optax minimises the loss -L
        updates, _ = tx.update(grads, tx.init(params), params, kl_fn=kl)
        pure = T.natural_gradient_step(
            grads, T.fisher_vector_product(kl, params), max_kl=max_kl, num_cg_iterations=8, damping=0.1
        )
        return updates, pure, surrogate(optax.apply_updates(params, updates)) - surrogate(params)

    updates, pure, improvement = run(*policy_data(jax.random.PRNGKey(4)))
    np.testing.assert_allclose(ravel_pytree(updates)[0], scale * ravel_pytree(pure)[0], rtol=1e-5, atol=1e-7)
    assert improvement > 0


def test_optax_transform_needs_params_and_kl_fn():
    tx = T.scale_by_natural_gradient(max_kl=0.01)
    params = {"w": jnp.ones(2)}
    with pytest.raises(ValueError, match="kl_fn"):
        tx.update(params, tx.init(params), params)
    with pytest.raises(ValueError, match="max_kl"):
        T.scale_by_natural_gradient(max_kl=-1.0)


# ------------------------------------------------------------------------------------------------
# TRPO step
# ------------------------------------------------------------------------------------------------

BETA, TRIES = 0.8, 10


def test_trpo_accepted_steps_improve_and_respect_the_kl_on_softmax_policies():
    delta = 0.01

    def run(key):
        params, obs, actions, adv = policy_data(key)
        kl, surrogate = mean_kl_fn(params, obs), surrogate_fn(params, obs, actions, adv)
        kwargs = dict(max_kl=delta, num_cg_iterations=8, damping=0.1)
        new, info = T.trpo_step(params, surrogate, kl, backtrack_ratio=BETA, max_backtracks=TRIES, **kwargs)
        fvp = T.fisher_vector_product(kl, params)
        full = T.natural_gradient_step(jax.grad(surrogate)(params), fvp, **kwargs)
        return new, info, kl(new), surrogate(new) - surrogate(params), params, full

    keys = jax.random.split(jax.random.PRNGKey(5), 16)
    new, info, kl_new, improvement, params, full = jax.jit(jax.vmap(run))(keys)
    accepted = np.asarray(info.accepted)
    assert accepted.all()
    assert np.all(kl_new <= delta) and np.all(improvement > 0)
    np.testing.assert_allclose(info.kl, kl_new, rtol=1e-6)
    np.testing.assert_allclose(info.improvement, improvement, rtol=1e-6)
    assert np.all(np.isclose(np.asarray(info.step_fraction)[:, None], BETA ** np.arange(TRIES)).any(1))
    for leaf_new, leaf, leaf_full in zip(*map(jax.tree.leaves, (new, params, full))):
        frac = np.asarray(info.step_fraction).reshape(-1, *[1] * (leaf.ndim - 1))
        np.testing.assert_allclose(leaf_new, leaf + frac * leaf_full, rtol=1e-6, atol=1e-7)


def _quadratic_problem():
    """θ ∈ R⁴ with θ_old = 0, Fisher F and surrogate gradient g; Δ is the exact full step."""
    f, g, delta = _spd(4, seed=10), np.random.default_rng(11).normal(size=4), 0.05
    x = np.linalg.solve(f, g)
    return f, g, delta, np.sqrt(2 * delta / (g @ x)) * x


def _first_accepted(ok):
    """The first fraction β^k (k < TRIES) with ok(β^k), else 0 — the rule, evaluated in numpy."""
    return next((BETA**k for k in range(TRIES) if ok(BETA**k)), 0.0)


def _trpo_quadratic(surrogate, kl, delta):
    return T.trpo_step(
        jnp.zeros(4), surrogate, kl, max_kl=delta, num_cg_iterations=4, damping=0.0,
        backtrack_ratio=BETA, max_backtracks=TRIES,
    )


def test_trpo_backtracks_until_the_surrogate_improves(x64):
    f, g, delta, full = _quadratic_problem()
    m = 4.0 * (g @ full) / (full @ full)  # improvement β gᵀΔ − m β² ‖Δ‖² > 0 iff β < 1/4
    surrogate = lambda d: g @ d - m * d @ d
    kl = lambda d: 0.5 * d @ f @ d
    new, info = _trpo_quadratic(surrogate, kl, delta)
    expected = _first_accepted(lambda b: surrogate(b * full) > 0 and kl(b * full) <= delta)
    assert 0 < expected < 1
    np.testing.assert_allclose(info.step_fraction, expected, rtol=1e-12)
    np.testing.assert_allclose(new, expected * full, rtol=1e-8)
    np.testing.assert_allclose(info.kl, kl(expected * full), rtol=1e-8)
    np.testing.assert_allclose(info.improvement, surrogate(expected * full), rtol=1e-8)


def test_trpo_backtracks_until_the_kl_is_inside_the_trust_region(x64):
    f, g, delta, full = _quadratic_problem()
    quartic = 3.0 * delta / (full @ full) ** 2  # the true KL exceeds its quadratic model
    surrogate = lambda d: g @ d
    kl = lambda d: 0.5 * d @ f @ d + quartic * (d @ d) ** 2
    new, info = _trpo_quadratic(surrogate, kl, delta)
    expected = _first_accepted(lambda b: kl(b * full) <= delta)
    assert 0 < expected < 1
    assert kl(full) > delta
    np.testing.assert_allclose(info.step_fraction, expected, rtol=1e-12)
    np.testing.assert_allclose(new, expected * full, rtol=1e-8)
    assert info.kl <= delta


def test_trpo_returns_unchanged_params_when_no_step_is_acceptable(x64):
    f, g, delta, full = _quadratic_problem()
    m = 2.0 * (g @ full) / (BETA ** (TRIES - 1) * (full @ full))  # even the smallest try loses
    params = jnp.asarray(np.random.default_rng(12).normal(size=4))
    surrogate = lambda p: g @ (p - params) - m * (p - params) @ (p - params)
    kl = lambda p: 0.5 * (p - params) @ f @ (p - params)
    new, info = T.trpo_step(params, surrogate, kl, max_kl=delta, num_cg_iterations=4, damping=0.0)
    np.testing.assert_array_equal(new, params)
    assert not info.accepted
    assert info.step_fraction == 0 and info.kl == 0 and info.improvement == 0

    # A zero gradient gives a zero step, which does not improve: unchanged, and no NaN.
    new, info = T.trpo_step(params, lambda p: 0.0 * jnp.sum(p), kl, max_kl=delta)
    np.testing.assert_array_equal(new, params)
    assert not info.accepted


def test_trpo_rejects_bad_input():
    params = jnp.zeros(2)
    kl = lambda p: jnp.sum(p**2)
    with pytest.raises(ValueError, match="surrogate_fn"):
        T.trpo_step(params, lambda p: p, kl, max_kl=0.01)
    with pytest.raises(ValueError, match="backtrack_ratio"):
        T.trpo_step(params, jnp.sum, kl, max_kl=0.01, backtrack_ratio=1.5)
    with pytest.raises(ValueError, match="max_kl"):
        T.trpo_step(params, jnp.sum, kl, max_kl=-0.01)


# ------------------------------------------------------------------------------------------------
# Target networks
# ------------------------------------------------------------------------------------------------


def _nets(seed):
    rng = np.random.default_rng(seed)
    return [
        {"w": jnp.asarray(rng.normal(size=(2, 3)), jnp.float32), "b": jnp.asarray(rng.normal(size=3), jnp.float32)}
        for _ in range(2)
    ]


def test_polyak_limits_and_geometric_convergence():
    online, target = _nets(13)
    jax.tree.map(np.testing.assert_array_equal, T.polyak_update(online, target, 1.0), online)
    jax.tree.map(np.testing.assert_array_equal, T.polyak_update(online, target, 0.0), target)

    tau, steps = 0.25, 20
    update = jax.jit(T.polyak_update)
    new = target
    for _ in range(steps):
        new = update(online, new, tau)
    expected = jax.tree.map(lambda o, t: o + (1 - tau) ** steps * (t - o), online, target)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), new, expected)


def test_periodic_copy_happens_exactly_at_multiples_of_the_period():
    period = 3
    update = jax.jit(T.periodic_update, static_argnums=3)
    target = {"w": jnp.array(-1.0)}
    for step in range(3 * period + 2):
        online = {"w": jnp.array(float(step))}
        target = update(online, target, jnp.array(step), period)
        assert float(target["w"]) == step - step % period


def test_target_updates_reject_bad_input():
    online, target = _nets(14)
    with pytest.raises(ValueError, match="tau"):
        T.polyak_update(online, target, 1.5)
    with pytest.raises(AssertionError, match="online and target"):
        T.polyak_update(online, {"w": target["w"], "b": target["w"]}, 0.5)
    with pytest.raises(ValueError, match="period"):
        T.periodic_update(online, target, jnp.array(1), 0)
    with pytest.raises(AssertionError, match="step"):
        T.periodic_update(online, target, jnp.array(1.0), 2)


# ------------------------------------------------------------------------------------------------
# Dual ascent
# ------------------------------------------------------------------------------------------------

_gap = st.floats(1e-3, 1.0) | st.floats(-1.0, -1e-3) | st.just(0.0)


_dual_ascent = jax.jit(T.dual_ascent_update, static_argnames="log_space")


@settings(max_examples=60, deadline=None)
@given(lam=st.floats(0.0, 10.0), target=st.floats(-1.0, 1.0), gap=_gap, lr=st.floats(1e-2, 1.0))
def test_dual_ascent_rises_iff_violated_and_stays_nonnegative(lam, target, gap, lr):
    lam, c, target = np.float32(lam), np.float32(target + gap), np.float32(target)
    new = _dual_ascent(lam, c, target, lr)
    assert new >= 0
    assert bool(new > lam) == bool(c > target)
    assert bool(new == lam) == bool(c == target or (lam == 0 and c < target))
    np.testing.assert_allclose(new, max(0.0, lam + lr * (c - target)), rtol=1e-5, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(log_lam=st.floats(-5.0, 5.0), target=st.floats(-1.0, 1.0), gap=_gap, lr=st.floats(1e-2, 1.0))
def test_dual_ascent_in_log_space_rises_iff_violated(log_lam, target, gap, lr):
    old, c, target = np.float32(log_lam), np.float32(target + gap), np.float32(target)
    new = _dual_ascent(old, c, target, lr, log_space=True)
    assert jnp.exp(new) > 0
    assert bool(new > old) == bool(c > target)


def test_dual_ascent_equals_optax_sgd_with_nonnegative_projection():
    lam = jnp.array([0.0, 0.02, 1.0, 0.3])
    c, target, lr = jnp.array([0.5, -0.9, 0.2, -0.1]), 0.1, 0.5
    tx = optax.chain(optax.sgd(lr), optax.keep_params_nonnegative())
    grads = jax.grad(lambda l: -jnp.sum(l * jax.lax.stop_gradient(c - target)))(lam)
    updates, _ = tx.update(grads, tx.init(lam), lam)
    expected = optax.apply_updates(lam, updates)
    np.testing.assert_allclose(T.dual_ascent_update(lam, c, target, lr), expected, atol=1e-7)


def test_dual_ascent_rejects_bad_input():
    with pytest.raises(AssertionError, match="multiplier and constraint"):
        T.dual_ascent_update(jnp.zeros(2), jnp.zeros(3), 0.0, 0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        T.dual_ascent_update(jnp.zeros(2), jnp.zeros(2), 0.0, 0.0)


def test_optimizer_step_is_optax_update_then_apply():
    params, grads = {"w": jnp.array([1.0, -2.0])}, {"w": jnp.array([0.5, 1.0])}
    sgd = optax.sgd(0.1)
    new, state = T.optimizer_step(sgd, grads, sgd.init(params), params)
    np.testing.assert_allclose(new["w"], [0.95, -2.1], rtol=1e-6)
    adam = optax.adam(0.1)
    new, state = T.optimizer_step(adam, grads, adam.init(params), params)
    assert int(state[0].count) == 1 and np.allclose(new["w"], [0.9, -2.1])  # Adam's first step is lr·sign(g)
