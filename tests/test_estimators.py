"""Returns, advantages and importance ratios of :mod:`fnrl.estimators` (issue 2, Estimators).

Values are checked against an independent brute-force oracle (explicit sums over the steps of
each episode), against rlax where the semantics coincide, and by exact identities (λ = 0 / λ = 1
limits, the n-step mixture, the Jacobian of GAE) and hypothesis properties.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax
from hypothesis import given, settings
from hypothesis import strategies as st

import fnrl.estimators as E

PROPERTY = settings(max_examples=20, deadline=None, derandomize=True)
TOL = dict(rtol=1e-5, atol=1e-5)


def stream(seed, shape, p_end=0.3, p_term=0.5):
    """A random stream of steps with episode ends, in the module's convention.

    Inside an episode next_values[t] == values[t + 1]; after an episode end next_values[t] is the
    value of the final observation (an independent draw), so a leak across the boundary, or a
    bootstrap from a terminal state, changes the answer. A fraction ``p_term`` of the episode
    ends are terminations, the rest truncations.
    """
    rng = np.random.default_rng(seed)
    ends = rng.random(shape) < p_end
    term = ends & (rng.random(shape) < p_term)
    trunc = ends & ~term
    values = rng.normal(size=shape)
    following = np.concatenate([values[1:], rng.normal(size=(1, *shape[1:]))], axis=0)
    next_values = np.where(ends, rng.normal(size=shape), following)
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    return dict(rewards=f32(rng.normal(size=shape)), values=f32(values),
                next_values=f32(next_values), termination=f32(term), truncation=f32(trunc))


def oracle_n_step(r, nv, term, trunc, gamma, n):
    """G^(n)_t by explicit summation over one column: rewards until n steps, the episode end or
    the sequence end, then γ^m V(s') unless the last step terminated."""
    r, nv, term, trunc = map(np.asarray, (r, nv, term, trunc))
    length = len(r)
    out = np.zeros(length)
    for t in range(length):
        last = min(t + n, length) - 1
        for k in range(t, last + 1):
            out[t] += gamma ** (k - t) * r[k]
            if term[k]:
                break
            if trunc[k] or k == last:
                out[t] += gamma ** (k - t + 1) * nv[k]
                break
    return out


def columns(x):
    """[T, ...] -> list of [T] columns."""
    x = np.asarray(x)
    return list(x.reshape(x.shape[0], -1).T)


def per_column(oracle, s, *args):
    cols = zip(*(columns(s[k]) for k in ("rewards", "next_values", "termination", "truncation")))
    out = np.stack([oracle(*c, *args) for c in cols], axis=1)
    return out.reshape(s["rewards"].shape)


# Jitted once per input shape, with γ and λ traced: hypothesis draws many shapes and values.
@jax.jit
def gae_of(s, gamma, lambda_):
    return E.gae(s["rewards"], s["values"], s["next_values"], s["termination"], s["truncation"],
                 gamma, lambda_)


@jax.jit
def lambda_returns_of(s, gamma, lambda_):
    return E.lambda_returns(s["rewards"], s["next_values"], s["termination"], s["truncation"],
                            gamma, lambda_)


@jax.jit
def td_errors_of(s, gamma):
    return E.td_errors(s["rewards"], s["values"], s["next_values"], s["termination"], gamma)


@jax.jit(static_argnames="n")
def n_step_of(s, gamma, n):
    return E.n_step_returns(s["rewards"], s["next_values"], s["termination"], s["truncation"],
                            gamma, n)


# --- exact answers


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20])
def test_n_step_returns_match_brute_force(n):
    s = stream(0, (7, 3))
    np.testing.assert_allclose(n_step_of(s, 0.9, n), per_column(oracle_n_step, s, 0.9, n), **TOL)


def test_discounted_returns_match_brute_force_and_reward_to_go():
    s = stream(1, (9, 2))
    with_bootstrap = E.discounted_returns(s["rewards"], s["termination"], s["truncation"], 0.8,
                                          next_values=s["next_values"])
    np.testing.assert_allclose(with_bootstrap, per_column(oracle_n_step, s, 0.8, 100), **TOL)
    # Without values: the Monte-Carlo reward-to-go Σ_{k≥t} γ^{k−t} r_k of one episode.
    r = s["rewards"][:, 0]
    zeros = jnp.zeros_like(r)
    rtg = [sum(0.8 ** (k - t) * float(r[k]) for k in range(t, 9)) for t in range(9)]
    np.testing.assert_allclose(E.discounted_returns(r, zeros, zeros, 0.8), rtg, **TOL)


def test_gae_lambda_zero_is_td_errors():
    s = stream(2, (8, 2, 3))
    deltas = td_errors_of(s, 0.95)
    np.testing.assert_allclose(gae_of(s, 0.95, 0.0), deltas, **TOL)
    np.testing.assert_allclose(
        deltas, s["rewards"] + 0.95 * (1 - s["termination"]) * s["next_values"] - s["values"],
        **TOL)


def test_gae_lambda_one_is_monte_carlo_return_minus_value():
    s = stream(3, (10, 4))
    np.testing.assert_allclose(gae_of(s, 0.9, 1.0),
                               per_column(oracle_n_step, s, 0.9, 100) - s["values"], **TOL)


@pytest.mark.parametrize("end", ["termination", "truncation", "sequence"])
def test_gae_is_lambda_weighted_average_of_n_step_advantages(end):
    """A_t = (1 − λ) Σ_{n≥1} λ^{n−1} (G^(n)_t − V(s_t)) on one episode of T steps: n-step
    returns with n ≥ T − t all equal the full return, so the tail sums to λ^{T−t−1}."""
    T, gamma, lam = 6, 0.9, 0.7
    s = stream(4, (T,), p_end=0.0)
    if end != "sequence":
        s[end] = s[end].at[-1].set(1.0)
    advantages = {n: n_step_of(s, gamma, n) - s["values"] for n in range(1, T + 1)}
    mixture = [sum((1 - lam) * lam ** (n - 1) * advantages[n][t] for n in range(1, T - t))
               + lam ** (T - t - 1) * advantages[T - t][t] for t in range(T)]
    np.testing.assert_allclose(gae_of(s, gamma, lam), mixture, **TOL)


def test_lambda_returns_minus_values_is_gae():
    s = stream(5, (9, 3))
    np.testing.assert_allclose(lambda_returns_of(s, 0.9, 0.6) - s["values"], gae_of(s, 0.9, 0.6),
                               **TOL)


def test_truncation_bootstraps_final_observation_and_termination_does_not():
    """Two episodes [s0, s1 | s2]: step 1 ends the first; V(final obs of episode 1) = 10,
    V(s2) = 100 (the next episode's first observation) must never be used for steps 0-1."""
    gamma, lam = 0.5, 0.5
    rewards = jnp.array([1.0, 2.0, 3.0])
    values = jnp.array([4.0, 5.0, 100.0])
    next_values = jnp.array([5.0, 10.0, 6.0])
    flag = jnp.array([0.0, 1.0, 0.0])
    none = jnp.zeros(3)
    # Truncated: G_1 = 2 + 0.5·10 = 7; G_0 = 1 + 0.5·7 = 4.5; G_2 = 3 + 0.5·6 = 6.
    np.testing.assert_allclose(E.discounted_returns(rewards, none, flag, gamma, next_values),
                               [4.5, 7.0, 6.0])
    # Terminated: G_1 = 2; G_0 = 1 + 0.5·2 = 2.
    np.testing.assert_allclose(E.discounted_returns(rewards, flag, none, gamma, next_values),
                               [2.0, 2.0, 6.0])
    # GAE, truncated: δ = [1 + 2.5 − 4, 2 + 5 − 5, 3 + 3 − 100] = [−0.5, 2, −94];
    # A_1 = 2 (trace cut), A_0 = −0.5 + 0.25·2 = 0.
    np.testing.assert_allclose(E.gae(rewards, values, next_values, none, flag, gamma, lam),
                               [0.0, 2.0, -94.0])
    # GAE, terminated: δ_1 = 2 − 5 = −3; A_0 = −0.5 + 0.25·(−3) = −1.25.
    np.testing.assert_allclose(E.gae(rewards, values, next_values, flag, none, gamma, lam),
                               [-1.25, -3.0, -94.0])
    # n-step (n = 2), truncated: G_0 = 1 + 0.5·2 + 0.25·10 = 4.5; terminated: 1 + 0.5·2 = 2.
    np.testing.assert_allclose(E.n_step_returns(rewards, next_values, none, flag, gamma, 2),
                               [4.5, 7.0, 6.0])
    np.testing.assert_allclose(E.n_step_returns(rewards, next_values, flag, none, gamma, 2),
                               [2.0, 2.0, 6.0])


def test_gae_jacobian_is_the_trace_matrix():
    """∂A_t/∂r_k = Π_{j=t}^{k−1} γλ(1 − term_j)(1 − trunc_j) for k ≥ t, else 0."""
    s = stream(6, (7,))
    gamma, lam = 0.9, 0.8
    jac = jax.jacobian(lambda r: E.gae(r, s["values"], s["next_values"], s["termination"],
                                       s["truncation"], gamma, lam))(s["rewards"])
    c = np.asarray(gamma * lam * (1 - s["termination"]) * (1 - s["truncation"]))
    expected = np.array([[np.prod(c[t:k]) if k >= t else 0.0 for k in range(7)] for t in range(7)])
    np.testing.assert_allclose(jac, expected, **TOL)


# --- agreement with rlax


def _rlax_columns(fn, *cols):
    return jnp.stack([fn(*c) for c in zip(*map(columns, cols))], axis=1)


def test_td_errors_agree_with_rlax_td_learning():
    s = stream(7, (6, 4))
    discount = 0.9 * (1 - s["termination"])
    ours = td_errors_of(s, 0.9)
    theirs = jax.vmap(jax.vmap(rlax.td_learning))(s["values"], s["rewards"], discount,
                                                  s["next_values"])
    np.testing.assert_allclose(ours, theirs, **TOL)


def test_gae_agrees_with_rlax_without_truncation():
    s = stream(8, (12, 4), p_term=1.0)
    rlax_values = jnp.concatenate([s["values"], s["next_values"][-1:]], axis=0)
    theirs = _rlax_columns(
        lambda r, d, v: rlax.truncated_generalized_advantage_estimation(r, d, 0.8, v),
        s["rewards"], 0.95 * (1 - s["termination"]), rlax_values)
    np.testing.assert_allclose(gae_of(s, 0.95, 0.8), theirs, **TOL)


def test_lambda_returns_agree_with_rlax_including_truncation_and_per_step_lambda():
    s = stream(9, (12, 4))
    lam = jnp.asarray(np.random.default_rng(9).uniform(size=(12, 4)), jnp.float32)
    theirs = _rlax_columns(rlax.lambda_returns, s["rewards"], 0.9 * (1 - s["termination"]),
                           s["next_values"], lam * (1 - s["truncation"]))
    np.testing.assert_allclose(lambda_returns_of(s, 0.9, lam), theirs, **TOL)


@pytest.mark.parametrize("n", [1, 3, 20])
def test_n_step_returns_agree_with_rlax(n):
    s = stream(10, (12, 3))
    theirs = _rlax_columns(lambda r, d, v, l: rlax.n_step_bootstrapped_returns(r, d, v, n, l),
                           s["rewards"], 0.9 * (1 - s["termination"]), s["next_values"],
                           1 - s["truncation"])
    np.testing.assert_allclose(n_step_of(s, 0.9, n), theirs, **TOL)


def test_discounted_returns_agree_with_rlax_without_truncation():
    s = stream(11, (12, 3), p_term=1.0)
    ours = E.discounted_returns(s["rewards"], s["termination"], s["truncation"], 0.9,
                                s["next_values"])
    theirs = _rlax_columns(rlax.discounted_returns, s["rewards"], 0.9 * (1 - s["termination"]),
                           s["next_values"])
    np.testing.assert_allclose(ours, theirs, **TOL)


# --- properties

# A few shapes (each is compiled once): one step, a sequence, trailing batch dims.
shapes = st.sampled_from([(1,), (6,), (4, 2), (5, 2, 3)])
unit = st.floats(0.0, 1.0)


@PROPERTY
@given(shape=shapes, seed=st.integers(0, 2**16), gamma=unit, lam=unit, a=st.floats(-3, 3))
def test_gae_is_linear_in_rewards_and_values(shape, seed, gamma, lam, a):
    s1, s2 = stream(seed, shape), stream(seed + 1, shape)
    s2["termination"], s2["truncation"] = s1["termination"], s1["truncation"]
    mixed = {k: (s1[k] + a * s2[k] if k in ("rewards", "values", "next_values") else s1[k])
             for k in s1}
    np.testing.assert_allclose(gae_of(mixed, gamma, lam),
                               gae_of(s1, gamma, lam) + a * gae_of(s2, gamma, lam),
                               rtol=1e-4, atol=1e-4)


@PROPERTY
@given(shape=shapes, seed=st.integers(0, 2**16), lam=unit)
def test_zero_discount_gives_immediate_rewards(shape, seed, lam):
    s = stream(seed, shape)
    np.testing.assert_allclose(gae_of(s, 0.0, lam), s["rewards"] - s["values"], **TOL)
    np.testing.assert_allclose(lambda_returns_of(s, 0.0, lam), s["rewards"], **TOL)


@PROPERTY
@given(shape=shapes, seed=st.integers(0, 2**16), gamma=unit, lam=unit)
def test_trailing_batch_dims_are_independent_columns(shape, seed, gamma, lam):
    s = stream(seed, shape)
    batched = gae_of(s, gamma, lam).reshape(shape[0], -1)
    for j, col in enumerate(zip(*(columns(s[k]) for k in s))):
        single = gae_of(dict(zip(s, map(jnp.asarray, col))), gamma, lam)
        np.testing.assert_allclose(batched[:, j], single, **TOL)


@PROPERTY
@given(k=st.integers(0, 4), seed=st.integers(0, 2**16), gamma=unit, lam=unit,
       n=st.sampled_from([1, 3]))
def test_truncation_splits_the_sequence(k, seed, gamma, lam, n):
    """A truncation at step k gives the same answers as two separate sequences [0, k], [k+1, T)."""
    s = stream(seed, (6,))
    s["truncation"] = s["truncation"].at[k].set(1.0)
    s["termination"] = s["termination"].at[k].set(0.0)
    head = {key: x[: k + 1] for key, x in s.items()}
    tail = {key: x[k + 1:] for key, x in s.items()}
    for estimate in (lambda x: gae_of(x, gamma, lam), lambda x: lambda_returns_of(x, gamma, lam),
                     lambda x: n_step_of(x, gamma, n)):
        np.testing.assert_allclose(estimate(s), jnp.concatenate([estimate(head), estimate(tail)]),
                                   **TOL)


@PROPERTY
@given(shape=shapes, seed=st.integers(0, 2**16), gamma=unit, lam=unit, n=st.sampled_from([1, 3]))
def test_termination_is_truncation_with_zero_final_value(shape, seed, gamma, lam, n):
    s = stream(seed, shape)
    ends = jnp.maximum(s["termination"], s["truncation"])
    as_truncation = dict(s, termination=jnp.zeros_like(ends), truncation=ends,
                         next_values=s["next_values"] * (1 - s["termination"]))
    for estimate in (lambda x: gae_of(x, gamma, lam), lambda x: lambda_returns_of(x, gamma, lam),
                     lambda x: n_step_of(x, gamma, n)):
        np.testing.assert_allclose(estimate(s), estimate(as_truncation), **TOL)


# --- importance ratios


def test_importance_ratios_and_truncation():
    rng = np.random.default_rng(12)
    pi, mu = rng.uniform(0.05, 1, size=(2, 5, 3))
    ratios = E.importance_ratios(jnp.log(pi), jnp.log(mu))
    np.testing.assert_allclose(ratios, pi / mu, rtol=1e-5)
    np.testing.assert_allclose(E.importance_ratios(jnp.log(pi), jnp.log(mu), max_ratio=1.0),
                               np.minimum(1.0, pi / mu), rtol=1e-5)


def test_cumulative_importance_ratios_restart_after_episode_ends():
    rng = np.random.default_rng(13)
    pi, mu = rng.uniform(0.05, 1, size=(2, 8, 2))
    done = np.zeros((8, 2))
    done[2, 0] = done[5, 0] = done[7, 1] = 1.0
    rho = pi / mu
    for max_ratio, factors in [(None, rho), (1.0, np.minimum(1.0, rho))]:
        got = E.cumulative_importance_ratios(jnp.log(pi), jnp.log(mu), done, max_ratio=max_ratio)
        expected = np.concatenate([np.cumprod(factors[0:3, :1], 0), np.cumprod(factors[3:6, :1], 0),
                                   np.cumprod(factors[6:, :1], 0)])
        np.testing.assert_allclose(got[:, :1], expected, rtol=1e-5)
        np.testing.assert_allclose(got[:, 1:], np.cumprod(factors[:, 1:], 0), rtol=1e-5)


# --- input errors


def test_bad_inputs_fail_with_the_argument_named():
    s = stream(14, (5, 2))
    with pytest.raises(AssertionError, match="`next_values` must have the shape of `rewards`"):
        E.gae(s["rewards"], s["values"], s["next_values"][:, :1], s["termination"],
              s["truncation"], 0.9, 0.9)
    with pytest.raises(AssertionError, match="`truncation` must have the shape"):
        E.lambda_returns(s["rewards"], s["next_values"], s["termination"], s["truncation"][1:],
                         0.9, 0.9)
    with pytest.raises(AssertionError, match="`values` must be a float array"):
        E.td_errors(s["rewards"], jnp.zeros((5, 2), jnp.int32), s["next_values"],
                    s["termination"], 0.9)
    with pytest.raises(ValueError, match="`rewards` must have rank >= 1"):
        E.discounted_returns(jnp.float32(1.0), jnp.float32(0.0), jnp.float32(0.0), 0.9)
    flags = s["termination"], s["truncation"]
    with pytest.raises(ValueError, match="`gamma` must be in \\[0, 1\\]"):
        E.gae(s["rewards"], s["values"], s["next_values"], *flags, 1.5, 0.9)
    with pytest.raises(ValueError, match="`lambda_` must be in \\[0, 1\\]"):
        E.lambda_returns(s["rewards"], s["next_values"], *flags, 0.9, -0.1)
    with pytest.raises(ValueError, match="`n` must be a Python int >= 1"):
        E.n_step_returns(s["rewards"], s["next_values"], *flags, 0.9, 0)
    with pytest.raises(ValueError, match="`max_ratio` must be > 0"):
        E.importance_ratios(s["rewards"], s["values"], max_ratio=0.0)


def test_boolean_flags_equal_float_flags():
    s = stream(15, (6, 2))
    as_bool = dict(s, termination=s["termination"] > 0, truncation=s["truncation"] > 0)
    np.testing.assert_allclose(gae_of(as_bool, 0.9, 0.9), gae_of(s, 0.9, 0.9))


def test_normalize_advantages_standardises_the_whole_batch():
    adv = jnp.array([[1.0, 2.0], [3.0, 10.0]])
    out = E.normalize_advantages(adv)
    np.testing.assert_allclose(out.mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.std(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out, (adv - 4.0) / (np.std([1.0, 2.0, 3.0, 10.0]) + 1e-8), rtol=1e-6)
