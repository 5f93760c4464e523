"""Bandit algorithms (src/fnrl/bandits.py): each policy's choice on hand-made statistics, the
statistics update, KL-UCB's index, the Lai–Robbins constant, and vmapped regret runs against
``bandit/bernoulli`` whose growth (sub-linear or linear) is asserted."""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.envs
from fnrl import bandits as B
from fnrl.envs import bandit as envs_bandit

KEYS = 20_000  # keys per frequency test


def stats(counts, sums):
    counts = jnp.asarray(counts, jnp.int32)
    return B.Stats(counts=counts, sums=jnp.asarray(sums, jnp.float32), step=jnp.sum(counts))


@functools.lru_cache(maxsize=None)
def _picker(policy):
    return jax.jit(jax.vmap(policy, in_axes=(None, 0)))


def choices(policy, state, n=KEYS):
    """The arms ``policy`` selects on ``state`` under ``n`` keys (jit + vmap; one compilation
    per policy and shape)."""
    return np.asarray(_picker(policy)(state, jax.random.split(jax.random.PRNGKey(1), n)))


def assert_frequency(observed, p, n=KEYS):
    """|observed − p| within 4 binomial standard errors."""
    assert abs(observed - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12, (observed, p)


INDEX_POLICIES = {"epsilon_greedy(0)": B.epsilon_greedy(0.0), "ucb1": B.ucb1(), "kl_ucb": B.kl_ucb()}


# ---------------------------------------------------------------------------------- statistics

def test_init_and_update_match_numpy_counts():
    rng = np.random.default_rng(0)
    arms = rng.integers(0, 5, size=300).astype(np.int32)
    rewards = rng.normal(size=300).astype(np.float32)

    def fold(state, x):
        return B.update(state, *x), None

    final, _ = jax.jit(lambda a, r: jax.lax.scan(fold, B.init(5), (a, r)))(arms, rewards)
    np.testing.assert_array_equal(final.counts, np.bincount(arms, minlength=5))
    np.testing.assert_allclose(final.sums, np.bincount(arms, weights=rewards, minlength=5), rtol=1e-5, atol=1e-5)
    assert int(final.step) == 300
    means = np.bincount(arms, weights=rewards, minlength=5) / np.bincount(arms, minlength=5)
    np.testing.assert_allclose(B.empirical_means(final), means, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(B.empirical_means(B.init(3)), 0.0)  # unpulled arms: 0


# -------------------------------------------------------------------------------- index policies

def test_ucb1_choice_computed_by_hand():
    state = stats([10, 5, 20], [6.0, 2.0, 15.0])  # t = 35, means 0.6, 0.4, 0.75
    by_hand = [0.6 + math.sqrt(2 * math.log(35) / 10),   # 1.4432
               0.4 + math.sqrt(2 * math.log(35) / 5),    # 1.5925
               0.75 + math.sqrt(2 * math.log(35) / 20)]  # 1.3463
    np.testing.assert_allclose(B.ucb1_index(state), by_hand, rtol=1e-6)
    np.testing.assert_array_equal(choices(INDEX_POLICIES["ucb1"], state, 500), 1)  # the less-pulled arm wins
    # ε = 0 is greedy on the empirical means: arm 2.
    np.testing.assert_array_equal(choices(INDEX_POLICIES["epsilon_greedy(0)"], state, 500), 2)


@pytest.mark.parametrize("name", INDEX_POLICIES)
def test_an_unpulled_arm_is_pulled_first(name):
    policy = INDEX_POLICIES[name]
    np.testing.assert_array_equal(choices(policy, stats([3, 0, 4], [3.0, 0.0, 4.0]), 500), 1)
    # Two unpulled arms (and the all-unpulled start): ties are broken uniformly at random.
    picks = choices(policy, stats([0, 5, 0], [0.0, 5.0, 0.0]), 4000)
    assert set(np.unique(picks)) == {0, 2}
    assert_frequency(np.mean(picks == 0), 0.5, 4000)
    picks = choices(policy, B.init(4), 4000)
    np.testing.assert_allclose(np.bincount(picks, minlength=4) / 4000, 0.25, atol=4 * math.sqrt(0.25 * 0.75 / 4000))


def test_epsilon_greedy_explores_at_rate_epsilon():
    state = stats([10, 10, 10, 10], [9.0, 1.0, 2.0, 1.0])  # greedy arm 0
    for epsilon in (0.1, 0.3):
        picks = choices(B.epsilon_greedy(epsilon), state)
        # An exploring step draws any of the 4 arms uniformly, so a non-greedy arm comes with
        # probability ε·3/4, each one with ε/4.
        assert_frequency(np.mean(picks != 0), epsilon * 3 / 4)
        assert_frequency(np.mean(picks == 2), epsilon / 4)
    np.testing.assert_allclose(np.bincount(choices(B.epsilon_greedy(1.0), state), minlength=4) / KEYS, 0.25,
                               atol=4 * math.sqrt(0.25 * 0.75 / KEYS))


def _kl(p, q):
    """Bernoulli KL in float64 numpy, 0 ln 0 = 0."""
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


def _kl_ucb_reference(mean, count, t, c=0.0):
    """Float64 bisection on [mean, 1] for the largest q with count·kl(mean, q) ≤ ln t + c ln ln t."""
    budget = (math.log(t) + c * math.log(max(math.log(t), 1.0))) / count
    lo, hi = mean, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _kl(mean, mid) <= budget else (lo, mid)
    return lo


def test_bernoulli_kl_values():
    np.testing.assert_allclose(B.bernoulli_kl(0.3, 0.3), 0.0, atol=1e-7)
    np.testing.assert_allclose(B.bernoulli_kl(0.8, 0.9), _kl(0.8, 0.9), rtol=1e-5)
    np.testing.assert_allclose(B.bernoulli_kl(0.0, 0.4), -math.log(0.6), rtol=1e-6)  # 0 ln 0 = 0
    np.testing.assert_allclose(B.bernoulli_kl(1.0, 0.4), -math.log(0.4), rtol=1e-6)
    assert np.isinf(B.bernoulli_kl(0.5, 1.0)) and np.isinf(B.bernoulli_kl(0.5, 0.0))


@pytest.mark.parametrize("c", [0.0, 3.0])
def test_kl_ucb_index_solves_its_equation(c):
    counts = [7, 40, 3, 200, 12, 1]
    sums = [3.0, 30.0, 0.0, 170.0, 12.0, 1.0]  # means 0.43, 0.75, 0, 0.85, 1, 1
    state = stats(counts, sums)
    t = int(sum(counts))
    index = np.asarray(B.kl_ucb_index(state, c=c))
    reference = [_kl_ucb_reference(s / n, n, t, c) for n, s in zip(counts, sums)]
    np.testing.assert_allclose(index, reference, atol=1e-6)
    budget = math.log(t) + c * math.log(math.log(t))
    for n, s, u in zip(counts, sums, index):
        mean = s / n
        assert mean - 1e-6 <= u <= 1.0
        if mean < 1:  # the constraint binds: N kl(μ̂, U) = ln t + c ln ln t
            np.testing.assert_allclose(n * _kl(mean, float(u)), budget, rtol=1e-3)
    # KL-UCB is tighter than UCB1 on [0, 1] rewards (Pinsker: kl(p, q) ≥ 2 (p − q)²).
    assert np.all(index <= np.asarray(B.ucb1_index(state)) + 1e-6)


def test_kl_ucb_choice_differs_from_ucb1_where_variance_is_small():
    # Arm 0: mean 0.95 over 100 pulls (small Bernoulli variance); arm 1: mean 0.8 over 20 pulls.
    state = stats([100, 20], [95.0, 16.0])
    ucb, klucb = np.asarray(B.ucb1_index(state)), np.asarray(B.kl_ucb_index(state))
    assert ucb[1] > ucb[0] and klucb[0] > klucb[1]  # UCB1's bonus ignores the variance
    np.testing.assert_array_equal(choices(B.ucb1(), state, 200), 1)
    np.testing.assert_array_equal(choices(B.kl_ucb(), state, 200), 0)


# ------------------------------------------------------------------------------- Thompson sampling

def test_bernoulli_thompson_frequencies():
    thompson = B.bernoulli_thompson()
    # A clear winner: Beta(91, 11) against Beta(11, 91).
    assert np.mean(choices(thompson, stats([100, 100], [90.0, 10.0])) == 0) > 0.999
    # A close call: P(θ_0 > θ_1) for Beta(7, 5) and Beta(5, 7), by numpy sampling (10⁶ draws).
    rng = np.random.default_rng(0)
    p = np.mean(rng.beta(7, 5, 10**6) > rng.beta(5, 7, 10**6))
    assert_frequency(np.mean(choices(thompson, stats([10, 10], [6.0, 4.0])) == 0), p)
    # Unpulled arms sample from the uniform prior: equal chances.
    assert_frequency(np.mean(choices(thompson, B.init(2)) == 0), 0.5)


def test_gaussian_thompson_posterior_and_frequencies():
    state = stats([4, 9], [6.0, 9.0])
    post = B.gaussian_posterior(state, noise_std=2.0, prior_mean=0.5, prior_std=1.0)
    # precision = 1/1 + N/4; mean = (0.5/1 + S/4) / precision
    precision = np.array([1 + 4 / 4, 1 + 9 / 4])
    mean = np.array([0.5 + 6 / 4, 0.5 + 9 / 4]) / precision
    np.testing.assert_allclose(post.loc, mean, rtol=1e-6)
    np.testing.assert_allclose(post.scale, 1 / np.sqrt(precision), rtol=1e-6)
    # P(θ_0 > θ_1) = Φ((m_0 − m_1) / √(v_0 + v_1)), exactly.
    z = (mean[0] - mean[1]) / math.sqrt(np.sum(1 / precision))
    p = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    thompson = B.gaussian_thompson(noise_std=2.0, prior_mean=0.5, prior_std=1.0)
    assert_frequency(np.mean(choices(thompson, state) == 0), p)
    assert np.mean(choices(thompson, stats([200, 200], [180.0, 20.0])) == 0) > 0.999


# ---------------------------------------------------------------------------------------- bound

def test_lai_robbins_two_arms_by_hand():
    # μ = (0.9, 0.8): Δ = 0.1, kl(0.8, 0.9) = 0.8 ln(8/9) + 0.2 ln 2 = 0.044403.
    kl = 0.8 * math.log(0.8 / 0.9) + 0.2 * math.log(0.2 / 0.1)
    assert abs(kl - 0.044403) < 1e-6
    np.testing.assert_allclose(B.lai_robbins_constant(jnp.array([0.9, 0.8])), 0.1 / kl, rtol=1e-4)  # 2.2521
    np.testing.assert_allclose(B.lai_robbins_bound([0.8, 0.9], 1e5), 0.1 / kl * math.log(1e5), rtol=1e-4)
    # Arms tied with the best add nothing; the bound at several t has t's shape.
    t = jnp.array([10.0, 100.0, 1000.0])
    np.testing.assert_allclose(B.lai_robbins_bound([0.9, 0.8, 0.9], t), 0.1 / kl * np.log(t), rtol=1e-4)


def test_lai_robbins_gaussian_arms_by_hand():
    # N(μ_a, σ²) arms, σ = 2: kl = Δ²/(2σ²), so Σ_a Δ_a / kl = Σ_a 2σ²/Δ_a = 8/0.5 + 8/1 = 24.
    np.testing.assert_allclose(B.lai_robbins_constant([1.0, 0.5, 0.0], stddev=2.0), 24.0, rtol=1e-6)
    np.testing.assert_allclose(B.gaussian_kl(0.5, 1.0, 2.0), 0.25 / 8, rtol=1e-6)
    np.testing.assert_allclose(B.lai_robbins_bound([1.0, 0.5, 1.0], 100.0, stddev=1.0), 4.0 * math.log(100), rtol=1e-6)
    gaussian = fnrl.envs.make("bandit/gaussian(means=(1.0, 0.5, 0.0), stddev=2.0)")
    assert B.env_lai_robbins_constant(gaussian) == pytest.approx(24.0, rel=1e-6)
    bernoulli = fnrl.envs.make("bandit/bernoulli(means=(0.9, 0.8))")
    assert B.env_lai_robbins_constant(bernoulli) == pytest.approx(float(B.lai_robbins_constant([0.9, 0.8])))
    assert B.env_lai_robbins_constant(fnrl.envs.make("tabular/chain")) is None


# ------------------------------------------------------------------------------ names (make)

def test_every_name_builds_with_its_defaults():
    assert B.names() == sorted(B.ALGORITHMS) == ["epsilon_greedy", "gaussian_thompson", "kl_ucb", "thompson", "ucb1"]
    assert B.ALGORITHMS["thompson"] is B.bernoulli_thompson
    bernoulli = fnrl.envs.make("bandit/bernoulli(means=(0.9, 0.5))")
    for name in B.names():
        assert callable(B.make(name)) and callable(B.make(f" {name} ", bernoulli))


def test_make_passes_the_parameters(monkeypatch):
    calls = []
    monkeypatch.setitem(B.ALGORITHMS, "kl_ucb", lambda c=0.0, num_bisections=32: calls.append((c, num_bisections)))
    B.make("kl_ucb(c=3, num_bisections=8)")
    B.make("kl_ucb")
    assert calls == [(3, 8), (0.0, 32)]
    # ... and the policy is the constructor's: ε = 0 is greedy, ε = 1 uniform.
    state = stats([10, 10, 10], [2.0, 7.0, 5.0])
    np.testing.assert_array_equal(choices(B.make("epsilon_greedy(epsilon=0.0)"), state, 200), 1)
    assert set(np.unique(choices(B.make("epsilon_greedy(epsilon=1.0)"), state, 200))) == {0, 1, 2}


@pytest.mark.parametrize("spec, env, match", [
    ("kl_uc", None, r"unknown bandit algorithm 'kl_uc' \(did you mean kl_ucb\?\); accepted: epsilon_greedy, "
                    r"gaussian_thompson, kl_ucb, thompson, ucb1"),
    ("bernoulli_thompson", None, r"did you mean gaussian_thompson, thompson\?"),
    ("kl_ucb(d=1)", None, r"bandit algorithm 'kl_ucb' has no parameter 'd'; accepted: c, num_bisections"),
    ("ucb1(c=2)", None, r"'ucb1' has no parameter 'c'; it takes none"),
    ("epsilon_greedy(epsilon=1.5)", None, r"epsilon_greedy: `epsilon` must be in \[0, 1\], got 1.5"),
    ("kl_ucb(c=)", None, r"bandit algorithm 'kl_ucb\(c=\)': write NAME\(key=value, ...\)"),
    ("gaussian_thompson(noise_std=0)", None, r"`noise_std` must be > 0"),
    ("thompson", "bandit/gaussian", r"'thompson' needs rewards in \[0, 1\] .*bandit/gaussian's rewards are not; "
                                    "for Gaussian arms use gaussian_thompson"),
    ("kl_ucb(c=3)", "bandit/gaussian", r"'kl_ucb' needs rewards in \[0, 1\] \(its index is a Bernoulli KL"),
])
def test_make_refuses_in_one_line(spec, env, match):
    with pytest.raises(ValueError, match=match) as info:
        B.make(spec, None if env is None else fnrl.envs.make(env))
    assert "\n" not in str(info.value)


def test_gaussian_arms_take_the_gaussian_sampler():
    assert callable(B.make("gaussian_thompson(noise_std=2.0)", fnrl.envs.make("bandit/gaussian")))


def test_the_experiment_names_its_algorithms_as_the_command_line_does():
    """experiments/bandits.py builds its five policies with `make` from the names `fnrl bandit` takes."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "bandits.py"
    spec = importlib.util.spec_from_file_location("experiments_bandits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    env = fnrl.envs.make(module.ENV)
    assert B.is_bandit(env) and tuple(np.asarray(env.means).round(6)) == module.MEANS
    assert len({B.make(name, env) for name in module.ALGORITHMS.values()}) == 5


# ------------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("make, match", [
    (lambda: B.epsilon_greedy(1.5), r"epsilon_greedy: `epsilon` must be in \[0, 1\], got 1.5"),
    (lambda: B.epsilon_greedy(-0.1), r"`epsilon` must be in \[0, 1\]"),
    (lambda: B.epsilon_greedy("0.1"), r"`epsilon` must be in \[0, 1\], got '0.1'"),
    (lambda: B.init(0), r"init: `num_arms` must be a positive integer, got 0"),
    (lambda: B.init(2.5), r"`num_arms` must be a positive integer, got 2.5"),
    (lambda: B.kl_ucb(c=-1.0), r"kl_ucb: `c` must be >= 0"),
    (lambda: B.kl_ucb(num_bisections=0), r"`num_bisections` must be a positive integer"),
    (lambda: B.gaussian_thompson(noise_std=0.0), r"gaussian_thompson: `noise_std` must be > 0"),
    (lambda: B.gaussian_thompson(prior_std=-1.0), r"`prior_std` must be > 0"),
    (lambda: B.lai_robbins_bound([1.2, 0.5], 10.0), r"`means` must be Bernoulli means in \[0, 1\]"),
    (lambda: B.run(B.ucb1(), fnrl.envs.make("bandit/bernoulli", means=(0.5, 0.6)), jax.random.PRNGKey(0), 0),
     r"run: `num_steps` must be a positive integer, got 0"),
    (lambda: B.lai_robbins_constant([1.0, 2.0], stddev=0.0), r"`stddev` must be > 0"),
    (lambda: B.log_times(0), r"log_times: `num_steps` must be a positive integer, got 0"),
    (lambda: B.regret_curves(B.ucb1(), fnrl.envs.make("bandit/bernoulli"), jax.random.PRNGKey(0), 10, 4, 0,
                             np.array([1, 10])), r"regret_curves: `chunk` must be a positive integer, got 0"),
    (lambda: B.regret_curves(B.ucb1(), fnrl.envs.make("bandit/bernoulli"), jax.random.PRNGKey(0), 10, 4, 2,
                             np.array([0, 10])), r"`times` must be 1-based times in \[1, 10\]"),
    (lambda: B.compare({"ucb1": B.ucb1()}, fnrl.envs.make("cartpole"), jax.random.PRNGKey(0), 10, 4),
     r"compare: `env` must be a bandit/\* environment, got 'cartpole'"),
])
def test_bad_input_fails_with_one_line(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_update_rejects_a_batch_of_arms():
    with pytest.raises(AssertionError, match="`arm` must be an int scalar"):
        B.update(B.init(3), jnp.array([0, 1]), jnp.array([1.0, 0.0]))


# ---------------------------------------------------------------------------------- regret runs

MEANS = (0.7, 0.5)
T, RUNS, EPSILON = 2_000, 200, 0.1
RUN_POLICIES = {"epsilon_greedy": B.epsilon_greedy(EPSILON), "ucb1": B.ucb1(), "kl_ucb": B.kl_ucb(),
                "bernoulli_thompson": B.bernoulli_thompson(), "gaussian_thompson": B.gaussian_thompson()}


@pytest.fixture(scope="module")
def env():
    return fnrl.envs.make("bandit/bernoulli", means=MEANS)


@pytest.fixture(scope="module", params=list(RUN_POLICIES))
def traces(request, env):
    """``RUNS`` vmapped runs of ``T`` pulls, time-major [T, RUNS]."""
    policy = RUN_POLICIES[request.param]
    trace = jax.jit(lambda key: B.run_many(policy, env, key, T, RUNS))(jax.random.PRNGKey(0))
    return request.param, trace


def test_run_trace_is_consistent(traces, env):
    name, trace = traces
    assert trace.arms.shape == trace.rewards.shape == (T, RUNS) and trace.arms.dtype == jnp.int32
    rewards, arms = np.asarray(trace.rewards), np.asarray(trace.arms)
    assert set(np.unique(rewards)) <= {0.0, 1.0}  # the environment's Bernoulli rewards
    for arm, mean in enumerate(MEANS):  # ... with its arm means
        pulled = rewards[arms == arm]
        assert abs(pulled.mean() - mean) <= 4 * math.sqrt(mean * (1 - mean) / pulled.size)
    curve = np.asarray(B.cumulative_regret(env.means, trace.arms))
    np.testing.assert_allclose(curve[-1], envs_bandit.regret(env.means, trace.arms), rtol=1e-5)
    # Runs are independent: they do not all pull the same sequence.
    assert len({tuple(arms[:50, r]) for r in range(RUNS)}) > RUNS // 2


def test_regret_growth(traces, env):
    name, trace = traces
    curve = np.asarray(B.cumulative_regret(env.means, trace.arms)).mean(axis=1)  # mean over runs
    first, second = curve[T // 2 - 1], curve[-1] - curve[T // 2 - 1]
    third_quarter, fourth_quarter = curve[3 * T // 4 - 1] - curve[T // 2 - 1], curve[-1] - curve[3 * T // 4 - 1]
    if name == "epsilon_greedy":
        # Linear: once the means are learnt, the regret per step is ε (1/k) Σ_a Δ_a = 0.01, the
        # same in every later window; the first half is larger only by the early learning phase.
        rate = EPSILON * (MEANS[0] - MEANS[1]) / len(MEANS)
        assert abs(second - rate * T / 2) < 0.15 * rate * T / 2, (second, rate * T / 2)
        assert abs(fourth_quarter / third_quarter - 1) < 0.2, (third_quarter, fourth_quarter)
    else:
        # Sub-linear: the second half adds much less than the first, and the last quarter less
        # than the third (ln(2000/1500) / ln(1500/1000) = 0.71 for logarithmic growth).
        assert second < 0.6 * first, (first, second)
        assert fourth_quarter < 0.9 * third_quarter, (third_quarter, fourth_quarter)


# ------------------------------------------------------------------------ chunked regret curves

def test_log_times():
    times = B.log_times(100_000)
    assert times[0] == 1 and times[-1] == 100_000 and 10_000 in times and np.all(np.diff(times) > 0)
    assert 100 < len(times) <= 122  # 120 log-spaced, fewer where rounding merges small t
    np.testing.assert_array_equal(B.log_times(1), [1])
    np.testing.assert_array_equal(B.log_times(5), [1, 2, 3, 4, 5])


def test_regret_curves_are_run_many_chunk_by_chunk(env):
    """5 runs, 2 per call: three calls of run_many from split(key, 3), the sixth run dropped. A
    chunk larger than the runs is one chunk of exactly that many, whose first runs (jax's
    partitionable keys: split(k, n)[i] does not depend on n) are the first chunk's."""
    policy, key, steps, times = B.ucb1(), jax.random.PRNGKey(7), 60, np.array([1, 6, 30, 60])
    result = B.regret_curves(policy, env, key, steps, 5, 2, times)
    curve = jax.jit(lambda k: B.cumulative_regret(env.means, B.run_many(policy, env, k, steps, 2).arms).T)
    expected = np.concatenate([np.asarray(curve(k)) for k in jax.random.split(key, 3)])[:5, times - 1]
    np.testing.assert_array_equal(result.regret, expected)
    assert result.regret.dtype == np.float32 and result.wall_s >= result.compile_s > 0
    whole = B.regret_curves(policy, env, key, steps, 5, 8, times).regret
    assert whole.shape == (5, 4)
    np.testing.assert_array_equal(whole[:2], expected[:2])
    assert not np.array_equal(whole[2:], expected[2:])  # other chunks, other keys
    final = B.final_regret(whole)
    assert final["mean"] == pytest.approx(whole[:, -1].mean())
    assert final["stderr"] == pytest.approx(whole[:, -1].std(ddof=1) / math.sqrt(5))
    assert B.final_regret(whole[:1])["stderr"] is None
