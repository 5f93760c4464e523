"""Offline-RL losses (issue 2, "Losses"): BC NLL, AWR/AWAC weights, IQL expectile, CQL penalties."""
import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import optimize, stats

from fnrl.losses import offline as O
from fnrl.losses import value as V


# ----------------------------------------------------------------------------- behavioural cloning
def test_bc_nll_is_the_mean_negative_log_likelihood_for_any_distribution():
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    logits = jax.random.normal(k1, (4, 3))
    actions = jnp.array([0, 2, 1, 2])
    cat = distrax.Categorical(logits=logits)
    np.testing.assert_allclose(O.bc_nll_loss(cat.log_prob(actions)),
                               -np.mean(np.take_along_axis(jax.nn.log_softmax(logits), actions[:, None], 1)),
                               rtol=1e-6)
    mean, a = jax.random.normal(k2, (4, 2)), jax.random.normal(k3, (4, 2))
    gauss_logp = distrax.MultivariateNormalDiag(mean, 0.5 * jnp.ones(2)).log_prob(a)
    closed_form = np.sum(0.5 * ((a - mean) / 0.5) ** 2 + np.log(0.5) + 0.5 * np.log(2 * np.pi), -1)
    np.testing.assert_allclose(O.bc_nll_loss(gauss_logp), closed_form.mean(), rtol=1e-5)
    # The BC gradient w.r.t. the logits is the cross-entropy gradient softmax - onehot.
    g = jax.grad(lambda z: O.bc_nll_loss(distrax.Categorical(logits=z).log_prob(actions)))(logits)
    np.testing.assert_allclose(g, (jax.nn.softmax(logits) - jax.nn.one_hot(actions, 3)) / 4, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- AWR / AWAC
def test_awr_weights_monotone_exact_below_the_clip_and_clipped_above():
    adv = jnp.linspace(-5.0, 5.0, 101)
    lam, w_max = 0.5, 20.0
    w = O.awr_weights(adv, lam, w_max)
    assert np.all(np.diff(np.asarray(w)) >= 0) and np.all(np.asarray(w) > 0)
    below = adv < lam * math.log(w_max)
    np.testing.assert_allclose(w[below], np.exp(np.asarray(adv[below]) / lam), rtol=1e-5)
    np.testing.assert_allclose(w[~below], w_max, rtol=1e-6)
    assert float(w.max()) == pytest.approx(w_max, rel=1e-6)
    # Huge advantages are clipped before the exponential: finite weights, no overflow.
    np.testing.assert_allclose(O.awr_weights(jnp.array([1e30]), 1e-3, w_max), [w_max], rtol=1e-6)


def test_awr_actor_loss_gradient_reaches_log_prob_only():
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    logp, adv = -jnp.abs(jax.random.normal(k1, (6,))), 2 * jax.random.normal(k2, (6,))
    lam, w_max = 0.7, 3.0
    w = np.minimum(np.exp(np.asarray(adv) / lam), w_max)
    np.testing.assert_allclose(O.awr_actor_loss(logp, adv, lam, w_max), -np.mean(w * np.asarray(logp)), rtol=1e-5)
    g_logp, g_adv = jax.grad(O.awr_actor_loss, argnums=(0, 1))(logp, adv, lam, w_max)
    np.testing.assert_allclose(g_logp, -w / 6, rtol=1e-5)
    np.testing.assert_array_equal(g_adv, 0.0)
    np.testing.assert_array_equal(jax.grad(lambda a: O.awr_weights(a, lam, w_max).sum())(adv), 0.0)


# ----------------------------------------------------------------------------- IQL expectile
def _expectile_root(x, tau):
    """τ-expectile of samples x: root of E|τ − 1(x < m)|(x − m) = 0 (Newey & Powell 1987)."""
    x = np.asarray(x, np.float64)
    return optimize.brentq(lambda m: np.mean(np.abs(tau - (x < m)) * (x - m)), x.min(), x.max(), xtol=1e-12)


@pytest.fixture(scope="module")
def samples():
    return jax.random.gumbel(jax.random.PRNGKey(2), (200,))  # skewed, so expectiles differ from the mean


def test_expectile_half_is_half_mse_and_weights_are_asymmetric(samples):
    v = jnp.zeros_like(samples) + 0.3
    np.testing.assert_allclose(O.expectile_loss(v, samples, 0.5), V.mse_loss(v, samples), rtol=1e-6)
    tau = 0.8
    u = np.asarray(samples - v)  # u = Q - V
    expected = np.mean(np.where(u < 0, 1 - tau, tau) * u**2)
    np.testing.assert_allclose(O.expectile_loss(v, samples, tau), expected, rtol=1e-5)
    np.testing.assert_allclose(O.expectile_loss(v, samples, tau), rlax.expectile_loss(v, samples, tau).mean(),
                               rtol=1e-6)
    np.testing.assert_array_equal(jax.grad(O.expectile_loss, argnums=1)(v, samples, tau), 0.0)  # target fixed


@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_expectile_minimiser_by_gradient_descent_is_the_expectile(samples, tau):
    grad = jax.grad(lambda m: O.expectile_loss(jnp.full_like(samples, m), samples, tau))

    @jax.jit
    def descend(m):
        return jax.lax.fori_loop(0, 400, lambda _, m: m - 0.5 * grad(m), m)

    np.testing.assert_allclose(descend(jnp.float32(0.0)), _expectile_root(samples, tau), atol=1e-4)


def test_expectile_tends_to_the_max_as_tau_goes_to_one(samples):
    grad = jax.jit(jax.grad(lambda m, tau: O.expectile_loss(jnp.full_like(samples, m), samples, tau)))

    def minimiser(tau):  # bisection on the (increasing) derivative of the convex loss
        lo, hi = float(samples.min()), float(samples.max())
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if grad(jnp.float32(mid), tau) < 0 else (lo, mid)
        return 0.5 * (lo + hi)

    taus = [0.5, 0.9, 0.99, 0.999, 0.99999]
    m = [minimiser(jnp.float32(t)) for t in taus]
    for t, mt in zip(taus, m):
        np.testing.assert_allclose(mt, _expectile_root(samples, float(np.float32(t))), atol=1e-4)
    assert np.all(np.diff(m) > 0)
    x_max, spread = float(samples.max()), float(samples.max() - samples.min())
    assert x_max - m[-1] < 0.02 * spread
    np.testing.assert_allclose(m[0], float(samples.mean()), atol=1e-4)  # τ = ½: the mean


# ----------------------------------------------------------------------------- CQL, discrete
def test_cql_discrete_hand_computed_and_gradient():
    q = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    a = jnp.array([0, 1])
    expected = np.mean([np.log(np.exp([1.0, 2, 3]).sum()) - 1.0, np.log(3.0)])
    np.testing.assert_allclose(O.cql_penalty_discrete(q, a), expected, rtol=1e-6)
    tau = 0.5
    np.testing.assert_allclose(O.cql_penalty_discrete(q, a, tau),
                               np.mean([tau * np.log(np.exp(np.array([1.0, 2, 3]) / tau).sum()) - 1.0,
                                        tau * np.log(3.0)]), rtol=1e-6)
    g = jax.grad(O.cql_penalty_discrete)(q, a, tau)  # pushes Q down where softmax(Q/τ) is, up at the data
    np.testing.assert_allclose(g, (jax.nn.softmax(q / tau) - jax.nn.one_hot(a, 3)) / 2, rtol=1e-5, atol=1e-7)


_cql_discrete = jax.jit(O.cql_penalty_discrete)


def _uniform_coverage_gap(q, tau):
    """mean_a P(s, a) − τ log|A|: the penalty when the data cover every action once."""
    n = q.shape[0]
    return float(_cql_discrete(jnp.tile(q, (n, 1)), jnp.arange(n), tau)) - tau * math.log(n)


@settings(max_examples=80, deadline=None)
@given(q=hnp.arrays(np.float32, st.integers(2, 6), elements=st.floats(-5, 5, width=32)),
       tau=st.sampled_from([0.5, 1.0, 2.0]))
def test_cql_discrete_penalty_is_nonnegative_and_zero_iff_q_constant(q, tau):
    """With uniform data coverage, P − τ log|A| = τ log mean exp(Q/τ) − mean Q ≥ 0, = 0 iff Q constant.

    Quantitatively (Taylor with remainder on exp(y), y = (Q − mean Q)/τ, |y| ≤ R):
    the gap is ≥ τ log(1 + ½ e^{−R} var(y)) > 0 unless Q is constant.
    """
    gap = _uniform_coverage_gap(jnp.asarray(q), tau)
    y = (q.astype(np.float64) - q.mean()) / tau
    lower = tau * math.log1p(0.5 * math.exp(-np.abs(y).max()) * y.var())
    assert gap >= lower - 1e-5
    assert gap >= -1e-5
    # Every single-sample penalty is non-negative: τ lse(Q/τ) ≥ max Q ≥ Q(a). (The excess
    # τ log(1 + Σ_{a≠a*} e^{(Q(a) − max Q)/τ}) is positive in exact arithmetic but underflows
    # in float32 when the other actions lie far below the max, e.g. Q = [−4, 4], τ = 0.5.)
    assert float(_cql_discrete(q[None], jnp.array([int(np.argmax(q))]), tau)) >= 0


@settings(max_examples=20, deadline=None)
@given(c=st.floats(-5, 5), n=st.integers(2, 6))
def test_cql_discrete_penalty_is_zero_for_constant_q(c, n):
    assert abs(_uniform_coverage_gap(jnp.full((n,), c, jnp.float32), 1.0)) < 1e-5


def test_cql_discrete_gibbs_bound_for_any_data_distribution():
    """E_{a∼β} P(s, a) ≥ τ H(β), with equality iff β = softmax(Q/τ) (a fractional mask weights the actions)."""
    n, tau = 5, 0.7
    q = 2 * jax.random.normal(jax.random.PRNGKey(3), (n,))
    tiled, actions = jnp.tile(q, (n, 1)), jnp.arange(n)
    expected_penalty = jax.jit(jax.vmap(lambda beta: O.cql_penalty_discrete(tiled, actions, tau, mask=beta)))
    betas = np.random.default_rng(0).dirichlet(np.ones(n), 20).astype(np.float32)
    entropies = -np.sum(betas * np.log(betas), -1)
    assert np.all(np.asarray(expected_penalty(betas)) > tau * entropies)
    boltzmann = jax.nn.softmax(q / tau)
    np.testing.assert_allclose(expected_penalty(boltzmann[None])[0], -tau * jnp.sum(boltzmann * jnp.log(boltzmann)),
                               rtol=1e-5)


# ----------------------------------------------------------------------------- CQL, continuous
MU, SIGMA, C = 0.3, 0.25, 0.5  # Q(a) = C − (a − MU)² / (2 SIGMA²) on the action space [−1, 1]


def _q(a):
    return C - (a - MU) ** 2 / (2 * SIGMA**2)


def _exact_soft_max(tau):
    """τ log ∫_{−1}^{1} exp(Q(a)/τ) da: a truncated Gaussian integral."""
    s = SIGMA * math.sqrt(tau)
    mass = stats.norm.cdf((1 - MU) / s) - stats.norm.cdf((-1 - MU) / s)
    return C + tau * math.log(s * math.sqrt(2 * math.pi) * mass)


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_cql_continuous_uniform_estimate_approaches_the_exact_integral(tau):
    """With N = 2e5 uniform samples the standard error of log Ẑ is ≈ 0.004; tolerance 0.02."""
    a = jax.random.uniform(jax.random.PRNGKey(4), (200_000,), minval=-1.0, maxval=1.0)
    penalty = O.cql_penalty_continuous(jnp.float32(0.0), _q(a), -jnp.log(2.0), temperature=tau)
    np.testing.assert_allclose(penalty, _exact_soft_max(tau), atol=0.02)


def test_cql_continuous_mixture_with_a_tanh_gaussian_policy_approaches_the_exact_integral():
    k1, k2 = jax.random.split(jax.random.PRNGKey(5))
    n = 100_000
    policy = distrax.Transformed(distrax.Normal(0.4, 0.5), distrax.Tanh())  # SAC-style proposal on (−1, 1)
    a_pi, logp_pi = policy.sample_and_log_prob(seed=k1, sample_shape=(n,))
    a_u = jax.random.uniform(k2, (n,), minval=-1.0, maxval=1.0)
    q_data = jnp.float32(0.2)
    penalty = O.cql_penalty_continuous(q_data, _q(a_u), jnp.full((n,), -jnp.log(2.0)), _q(a_pi), logp_pi)
    np.testing.assert_allclose(penalty, _exact_soft_max(1.0) - 0.2, atol=0.02)


def test_cql_continuous_small_case_and_gradients():
    """Hand-computed two-proposal estimate; the Q gradients are the normalised importance weights."""
    q_data = jnp.array([0.5, -1.0])
    q_u = jnp.array([[0.0, 1.0], [2.0, -1.0]])
    log_u = jnp.float32(-math.log(2.0))
    q_p = jnp.array([[0.5, 0.0, 1.5], [0.0, 0.0, 1.0]])
    log_p = jnp.array([[-1.0, -0.5, 0.0], [0.2, -0.3, -2.0]])
    w_u = np.exp(np.asarray(q_u) - np.asarray(log_u))
    w_p = np.exp(np.asarray(q_p) - np.asarray(log_p))
    z = 0.5 * w_u.mean(-1) + 0.5 * w_p.mean(-1)
    np.testing.assert_allclose(O.cql_penalty_continuous(q_data, q_u, log_u, q_p, log_p),
                               np.mean(np.log(z) - np.asarray(q_data)), rtol=1e-5)
    grads = jax.grad(O.cql_penalty_continuous, argnums=(0, 1, 2, 3, 4))(q_data, q_u, log_u, q_p, log_p)
    g_data, g_u, g_logu, g_p, g_logp = grads
    np.testing.assert_allclose(g_data, [-0.5, -0.5])
    np.testing.assert_allclose(g_u, 0.5 * (0.5 * w_u / 2) / z[:, None], rtol=1e-5)
    np.testing.assert_allclose(g_p, 0.5 * (0.5 * w_p / 3) / z[:, None], rtol=1e-5)
    np.testing.assert_allclose(g_u.sum(-1) + g_p.sum(-1), [0.5, 0.5], rtol=1e-5)
    assert float(g_logu) == 0.0
    np.testing.assert_array_equal(g_logp, 0.0)


# ----------------------------------------------------------------------------- errors
def test_bad_inputs_fail_with_the_argument_name():
    q, a = jnp.zeros((4, 3)), jnp.zeros(4, jnp.int32)
    with pytest.raises(AssertionError, match="`actions` must be an integer"):
        O.cql_penalty_discrete(q, a.astype(jnp.float32))
    with pytest.raises(AssertionError, match="`q_values` must have shape"):
        O.cql_penalty_discrete(q[:2], a)
    with pytest.raises(AssertionError, match="`q_uniform` must have shape"):
        O.cql_penalty_continuous(jnp.zeros(4), jnp.zeros((3, 5)), 0.0)
    with pytest.raises(ValueError, match="pass both `q_policy` and `log_prob_policy`"):
        O.cql_penalty_continuous(jnp.zeros(4), jnp.zeros((4, 5)), 0.0, q_policy=jnp.zeros((4, 5)))
    with pytest.raises(ValueError, match="`expectile` must be in"):
        O.expectile_loss(jnp.zeros(4), jnp.zeros(4), 1.0)
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        O.awr_weights(jnp.zeros(4), 0.0)
    with pytest.raises(AssertionError, match="`log_prob`, `advantage`"):
        O.awr_actor_loss(jnp.zeros(4), jnp.zeros(3), 1.0)
