"""Bandit algorithms as pure functions over a statistics state.

A k-armed bandit algorithm here is two pure functions over :class:`Stats` (per-arm pull counts
N_a and reward sums S_a, and the number of pulls so far t = Σ_a N_a):

- :func:`update` ``(stats, arm, reward) -> stats`` adds one observation;
- a policy ``select(stats, key) -> arm``, built by :func:`epsilon_greedy`, :func:`ucb1`,
  :func:`kl_ucb`, :func:`bernoulli_thompson` or :func:`gaussian_thompson`.

Every Bayesian posterior used here is conjugate, so the counts and sums are sufficient
statistics for the Thompson samplers too. :func:`run` plays one policy against an ``fnrl.envs``
``bandit/*`` environment for T steps in one ``lax.scan``; :func:`run_many` vmaps it over keys
(thousands of independent runs in one program). :func:`cumulative_regret` (from
:mod:`fnrl.envs.bandit`) is the expected regret curve, and :func:`lai_robbins_bound` the
asymptotic lower bound it is measured against.

By name: :data:`ALGORITHMS` maps ``epsilon_greedy``, ``ucb1``, ``kl_ucb``, ``thompson``
(Beta-Bernoulli) and ``gaussian_thompson`` to their constructors, and :func:`make` builds one
from ``"name(key=value, ...)"`` (``"kl_ucb(c=3)"``), as ``fnrl bandit`` does. Many runs of many
algorithms against one bandit: :func:`compare` (the vmapped runs in chunks, one compiled program
per algorithm; what ``fnrl bandit`` and ``experiments/bandits.py`` both run), with
:func:`plot_regret` for the curves against the bound.

Conventions: the index policies (ε-greedy's greedy arm, UCB1, KL-UCB) give an arm that has not
been pulled the index +∞, so every arm is pulled once first, and they break ties uniformly at
random (``distrax.Greedy``/``distrax.EpsilonGreedy`` spread the mass evenly over the maxima), so
the order of the first k pulls is random and no arm is favoured by its index. "t" in the
indices is the number of pulls so far, ``stats.step`` (Auer et al. 2002's n).
"""
from __future__ import annotations

import difflib
import inspect
import math
import numbers
import time
from typing import Any, Callable, NamedTuple

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from fnrl.config import parse_call
from fnrl.envs.bandit import BernoulliBandit, GaussianBandit
from fnrl.envs.bandit import _Bandit  # the base of every bandit/* environment
from fnrl.envs.bandit import cumulative_regret  # the regret curve, re-exported with the policies
from fnrl.types import Array


class Stats(NamedTuple):
    """Per-arm sufficient statistics: ``counts`` N_a (int32 [k]), ``sums`` S_a = Σ rewards of arm
    a (float32 [k]) and ``step`` t = Σ_a N_a (int32 scalar)."""

    counts: Array
    sums: Array
    step: Array


Policy = Callable[[Stats, chex.PRNGKey], Array]  # select(stats, key) -> int32 arm


# ------------------------------------------------------------------------------ input checks

def _check(fn: str, name: str, value: Any, ok: Callable[[float], bool], accepted: str) -> None:
    """One-line ``ValueError`` for a bad concrete hyperparameter (as ``fnrl.losses`` does)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(value):
        raise ValueError(f"{fn}: `{name}` must be {accepted}, got {value!r}")


def _check_int(fn: str, name: str, value: Any, ok: Callable[[int], bool], accepted: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not ok(value):
        raise ValueError(f"{fn}: `{name}` must be {accepted}, got {value!r}")


def _check_probabilities(fn: str, means: Any) -> None:
    """One-line error unless concrete ``means`` are all in [0, 1] (traced values pass)."""
    try:
        values = np.asarray(means, np.float64)
    except jax.errors.TracerArrayConversionError:
        return
    if values.size == 0 or not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"{fn}: `means` must be Bernoulli means in [0, 1], got {values.tolist()}")


# -------------------------------------------------------------------------------- statistics

def init(num_arms: int) -> Stats:
    """The statistics of no pulls: N_a = S_a = 0 for ``num_arms`` arms, t = 0."""
    _check_int("bandits.init", "num_arms", num_arms, lambda k: k >= 1, "a positive integer")
    return Stats(counts=jnp.zeros((num_arms,), jnp.int32), sums=jnp.zeros((num_arms,), jnp.float32),
                 step=jnp.zeros((), jnp.int32))


def update(stats: Stats, arm: Array, reward: Array) -> Stats:
    """Adds one pull of ``arm`` (int scalar) that paid ``reward`` (float scalar):
    N_arm += 1, S_arm += reward, t += 1."""
    arm, reward = jnp.asarray(arm), jnp.asarray(reward, jnp.float32)
    chex.assert_rank(arm, 0, custom_message="bandits.update: `arm` must be an int scalar (vmap for a batch)")
    chex.assert_type(arm, int, custom_message="bandits.update: `arm` must be an int scalar")
    chex.assert_rank(reward, 0, custom_message="bandits.update: `reward` must be a float scalar")
    return Stats(counts=stats.counts.at[arm].add(1), sums=stats.sums.at[arm].add(reward), step=stats.step + 1)


def empirical_means(stats: Stats) -> Array:
    """μ̂_a = S_a / N_a (0 for an arm never pulled)."""
    counts = stats.counts.astype(jnp.float32)
    return jnp.where(counts > 0, stats.sums / jnp.maximum(counts, 1.0), 0.0)


def _optimistic(stats: Stats, index: Array) -> Array:
    """``index`` with +∞ for arms never pulled, so that each arm is pulled once first."""
    return jnp.where(stats.counts > 0, index, jnp.inf)


def _greedy(index: Array, key: chex.PRNGKey) -> Array:
    """argmax_a index_a, ties broken uniformly at random."""
    return distrax.Greedy(index, dtype=jnp.int32).sample(seed=key)


# ---------------------------------------------------------------------------------- ε-greedy

def epsilon_greedy(epsilon: float = 0.1) -> Policy:
    """ε-greedy with a constant ε (default 0.1; Sutton & Barto 2018, §2.2): with probability ε an arm drawn
    uniformly from all k arms (the greedy one included), otherwise argmax_a μ̂_a.

    Choice: every arm is pulled once before the empirical means are trusted (an unpulled
    arm's greedy index is +∞), and ties are broken uniformly at random. With a constant ε the
    expected regret grows linearly: ≈ ε (1/k) Σ_a Δ_a per step once the means are learnt.
    """
    _check("bandits.epsilon_greedy", "epsilon", epsilon, lambda e: 0.0 <= e <= 1.0, "in [0, 1]")

    def select(stats: Stats, key: chex.PRNGKey) -> Array:
        index = _optimistic(stats, empirical_means(stats))
        return distrax.EpsilonGreedy(index, epsilon, dtype=jnp.int32).sample(seed=key)

    return select


# ---------------------------------------------------------------------------------------- UCB1

def ucb1_index(stats: Stats) -> Array:
    """UCB1's index μ̂_a + √(2 ln t / N_a) (Auer, Cesa-Bianchi & Fischer 2002), +∞ if N_a = 0."""
    counts = jnp.maximum(stats.counts, 1).astype(jnp.float32)
    log_t = jnp.log(jnp.maximum(stats.step, 1).astype(jnp.float32))
    return _optimistic(stats, empirical_means(stats) + jnp.sqrt(2.0 * log_t / counts))


def ucb1() -> Policy:
    """UCB1: each arm once, then argmax_a μ̂_a + √(2 ln t / N_a) (Auer et al. 2002), whose
    expected regret is at most Σ_{a: Δ_a>0} 8 ln T / Δ_a + (1 + π²/3) Σ_a Δ_a."""

    def select(stats: Stats, key: chex.PRNGKey) -> Array:
        return _greedy(ucb1_index(stats), key)

    return select


# -------------------------------------------------------------------------------------- KL-UCB

def bernoulli_kl(p: Array, q: Array) -> Array:
    """kl(p, q) = p ln(p/q) + (1−p) ln((1−p)/(1−q)), the KL divergence between Bernoulli(p) and
    Bernoulli(q), with 0 ln 0 = 0 (so kl(p, p) = 0, and kl(p, q) = +∞ if q ∈ {0, 1} ≠ p)."""
    p, q = jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)
    return xlogy(p, p) - xlogy(p, q) + xlogy(1.0 - p, 1.0 - p) - xlogy(1.0 - p, 1.0 - q)


def kl_ucb_index(stats: Stats, c: float = 0.0, num_bisections: int = 32) -> Array:
    """KL-UCB's index for rewards in [0, 1] (Garivier & Cappé 2011):

        U_a = max{q ∈ [μ̂_a, 1] : N_a · kl(μ̂_a, q) ≤ ln t + c ln ln t},   +∞ if N_a = 0.

    kl(μ̂, ·) increases on [μ̂, 1], so U_a is found by ``num_bisections`` bisection steps on
    [μ̂_a, 1] (a fixed number, so it is jittable); the lower end of the final bracket is
    returned, so N_a kl(μ̂_a, U_a) ≤ ln t + c ln ln t always holds and U_a is within
    2^−num_bisections below the exact root. ln ln t is taken as 0 while ln t < 1.
    """
    mean = jnp.clip(empirical_means(stats), 0.0, 1.0)
    counts = jnp.maximum(stats.counts, 1).astype(jnp.float32)
    log_t = jnp.log(jnp.maximum(stats.step, 1).astype(jnp.float32))
    budget = (log_t + c * jnp.log(jnp.maximum(log_t, 1.0))) / counts

    def bisect(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        feasible = bernoulli_kl(mean, mid) <= budget
        return jnp.where(feasible, mid, lo), jnp.where(feasible, hi, mid)

    lo, _ = jax.lax.fori_loop(0, num_bisections, bisect, (mean, jnp.ones_like(mean)))
    return _optimistic(stats, lo)


def kl_ucb(c: float = 0.0, num_bisections: int = 32) -> Policy:
    """KL-UCB for Bernoulli (or [0, 1]-bounded) rewards: each arm once, then argmax_a of
    :func:`kl_ucb_index` (Garivier & Cappé 2011). With c = 0 (their recommended practice;
    the proof takes c = 3) it matches the Lai–Robbins constant asymptotically."""
    _check("bandits.kl_ucb", "c", c, lambda v: v >= 0, ">= 0")
    _check_int("bandits.kl_ucb", "num_bisections", num_bisections, lambda n: n >= 1, "a positive integer")

    def select(stats: Stats, key: chex.PRNGKey) -> Array:
        return _greedy(kl_ucb_index(stats, c, num_bisections), key)

    return select


# --------------------------------------------------------------------------- Thompson sampling

def beta_posterior(stats: Stats) -> distrax.Beta:
    """Per-arm posterior Beta(1 + successes, 1 + failures) of Bernoulli means under a uniform
    Beta(1, 1) prior, with successes S_a and failures N_a − S_a (rewards in {0, 1})."""
    successes = stats.sums
    return distrax.Beta(1.0 + successes, 1.0 + stats.counts.astype(jnp.float32) - successes)


def bernoulli_thompson() -> Policy:
    """Beta-Bernoulli Thompson sampling (Thompson 1933; Chapelle & Li 2011): draw
    θ_a ~ Beta(1 + S_a, 1 + N_a − S_a) for every arm and pull argmax_a θ_a."""

    def select(stats: Stats, key: chex.PRNGKey) -> Array:
        return jnp.argmax(beta_posterior(stats).sample(seed=key)).astype(jnp.int32)

    return select


def gaussian_posterior(stats: Stats, noise_std: float = 1.0, prior_mean: float = 0.0,
                       prior_std: float = 1.0) -> distrax.Normal:
    """Per-arm posterior of the mean μ_a of Gaussian rewards N(μ_a, σ²) with known noise σ =
    ``noise_std``, under the conjugate normal prior μ_a ~ N(m₀, s₀²) (``prior_mean``,
    ``prior_std``):

        precision_a = 1/s₀² + N_a/σ²,   mean_a = (m₀/s₀² + S_a/σ²) / precision_a.
    """
    precision = 1.0 / prior_std**2 + stats.counts.astype(jnp.float32) / noise_std**2
    mean = (prior_mean / prior_std**2 + stats.sums / noise_std**2) / precision
    return distrax.Normal(mean, jax.lax.rsqrt(precision))


def gaussian_thompson(noise_std: float = 1.0, prior_mean: float = 0.0, prior_std: float = 1.0) -> Policy:
    """Gaussian Thompson sampling with known noise variance σ² and a conjugate normal prior
    N(m₀, s₀²) on each arm's mean (:func:`gaussian_posterior`): draw θ_a from each posterior
    and pull argmax_a θ_a. The defaults (σ = 1, N(0, 1) prior) give θ_a ~ N(S_a/(N_a+1),
    1/(N_a+1)), the Gaussian-prior Thompson sampling of Agrawal & Goyal (2013), analysed there
    for any rewards in [0, 1]."""
    fn = "bandits.gaussian_thompson"
    _check(fn, "noise_std", noise_std, lambda v: v > 0, "> 0")
    _check(fn, "prior_std", prior_std, lambda v: v > 0, "> 0")
    _check(fn, "prior_mean", prior_mean, lambda v: abs(v) < float("inf"), "finite")

    def select(stats: Stats, key: chex.PRNGKey) -> Array:
        theta = gaussian_posterior(stats, noise_std, prior_mean, prior_std).sample(seed=key)
        return jnp.argmax(theta).astype(jnp.int32)

    return select


# ------------------------------------------------------------------------------------- running

class Trace(NamedTuple):
    """One run's ``arms`` (int32) and ``rewards`` (float32), time-major [T, ...]."""

    arms: Array
    rewards: Array


def run(policy: Policy, env, key: chex.PRNGKey, num_steps: int) -> Trace:
    """Plays ``policy`` for ``num_steps`` pulls against a ``bandit/*`` environment in one
    ``lax.scan``: each step selects an arm from the statistics, pulls it with the environment's
    own ``step`` and updates the statistics. A bandit has no state besides its RNG key, so it
    is ``reset`` once and every (one-step) episode is stepped from the last state.

    Returns the :class:`Trace` of ``arms`` and ``rewards``, each [num_steps].
    """
    _check_int("bandits.run", "num_steps", num_steps, lambda n: n >= 1, "a positive integer")
    num_arms = env.spec.num_actions
    if num_arms is None:
        raise ValueError(f"bandits.run: `env` must have discrete actions (a bandit/* environment), got {env!r}")
    env_key, key = jax.random.split(key)

    def pull(carry, step_key):
        stats, env_state = carry
        arm = policy(stats, step_key)
        env_state = env.step(env_state, arm)
        return (update(stats, arm, env_state.reward), env_state), Trace(arm, env_state.reward)

    carry = (init(num_arms), env.reset(env_key))
    _, trace = jax.lax.scan(pull, carry, jax.random.split(key, num_steps))
    return trace


def run_many(policy: Policy, env, key: chex.PRNGKey, num_steps: int, num_runs: int) -> Trace:
    """``num_runs`` independent :func:`run` s (keys split from ``key``) vmapped in one program;
    the :class:`Trace` is time-major, [num_steps, num_runs]."""
    _check_int("bandits.run_many", "num_runs", num_runs, lambda n: n >= 1, "a positive integer")
    keys = jax.random.split(key, num_runs)
    return jax.vmap(lambda k: run(policy, env, k, num_steps), out_axes=1)(keys)


# ---------------------------------------------------------------------------------- the bound

def gaussian_kl(p: Array, q: Array, stddev: float) -> Array:
    """KL(N(p, σ²) ‖ N(q, σ²)) = (p − q)² / (2σ²), between Gaussians of one known σ = ``stddev``."""
    p, q = jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)
    return jnp.square(p - q) / (2.0 * stddev**2)


def lai_robbins_constant(means: Array, stddev: float | None = None) -> Array:
    """Σ_{a: Δ_a>0} Δ_a / kl(μ_a, μ*) for arms with ``means`` μ, Δ_a = μ* − μ_a: Bernoulli arms
    (:func:`bernoulli_kl`; arms with kl = +∞, i.e. μ* = 1, add 0), or, with ``stddev`` σ given,
    Gaussian arms N(μ_a, σ²) of known σ (:func:`gaussian_kl`, so the sum is Σ_a 2σ² / Δ_a)."""
    if stddev is None:
        _check_probabilities("lai_robbins_bound", means)
    else:
        _check("lai_robbins_bound", "stddev", stddev, lambda v: 0 < v < float("inf"), "> 0 (the arms' known σ)")
    means = jnp.asarray(means, jnp.float32)
    chex.assert_rank(means, 1, custom_message="lai_robbins_bound: `means` must be the arm means, shape [k]")
    best = jnp.max(means)
    gaps = best - means
    kl = bernoulli_kl(means, best) if stddev is None else gaussian_kl(means, best, stddev)
    return jnp.sum(jnp.where(gaps > 0, gaps / jnp.where(gaps > 0, kl, 1.0), 0.0))


def lai_robbins_bound(means: Array, t: Array, stddev: float | None = None) -> Array:
    """The Lai & Robbins (1985) asymptotic lower bound on the expected regret of any consistent
    policy on Bernoulli arms with ``means`` μ (or Gaussian arms of known σ = ``stddev``):

        liminf_{t→∞} R(t) / ln t ≥ Σ_{a: Δ_a>0} Δ_a / kl(μ_a, μ*),

    returned as that constant · ln t (the shape of ``t``). It holds only asymptotically: at a
    finite t a good policy's regret may lie above it by a (slowly shrinking) factor.
    """
    return lai_robbins_constant(means, stddev) * jnp.log(jnp.asarray(t, jnp.float32))


def env_lai_robbins_constant(env) -> float | None:
    """:func:`lai_robbins_constant` of a ``bandit/bernoulli`` or ``bandit/gaussian`` environment
    (its means, and its known σ for Gaussian arms); ``None`` for any other."""
    if isinstance(env, BernoulliBandit):
        return float(lai_robbins_constant(env.means))
    if isinstance(env, GaussianBandit):
        return float(lai_robbins_constant(env.means, env.stddev))
    return None


# -------------------------------------------------------------------------- algorithms by name

# The name of each algorithm for :func:`make` (and ``fnrl bandit``) -> its constructor, whose
# keyword arguments are the algorithm's parameters.
ALGORITHMS: dict[str, Callable[..., Policy]] = {
    "epsilon_greedy": epsilon_greedy,
    "ucb1": ucb1,
    "kl_ucb": kl_ucb,
    "thompson": bernoulli_thompson,
    "gaussian_thompson": gaussian_thompson,
}

# The algorithms whose model holds only for rewards in [0, 1]: KL-UCB's index is a Bernoulli KL
# (the empirical mean clipped to [0, 1]), and the Beta posterior Beta(1 + S_a, 1 + N_a − S_a) has
# a non-positive parameter once S_a ≤ −1 or S_a ≥ N_a + 1 (its samples are then NaN).
UNIT_INTERVAL_REWARDS = {"kl_ucb": "its index is a Bernoulli KL divergence",
                         "thompson": "its Beta-Bernoulli posterior has no meaning for other rewards"}


def names() -> list[str]:
    """The names :func:`make` accepts, sorted."""
    return sorted(ALGORITHMS)


def _rewards_in_unit_interval(env) -> bool:
    return isinstance(env, BernoulliBandit)


ENVIRONMENTS = (BernoulliBandit.name, GaussianBandit.name)  # the bandit/* environments


def is_bandit(env) -> bool:
    """Whether ``env`` is a ``bandit/*`` environment of :mod:`fnrl.envs.bandit` (arm means known)."""
    return isinstance(env, _Bandit)


def make(spec: str, env=None) -> Policy:
    """The policy named by ``spec``, ``"name"`` or ``"name(key=value, ...)"`` with Python
    literals as values (:func:`fnrl.config.parse_call`): ``make("kl_ucb(c=3)")`` is
    ``kl_ucb(c=3)``, ``make("thompson")`` is :func:`bernoulli_thompson`. The names are
    :data:`ALGORITHMS`. With ``env`` given, refuses an algorithm meant for rewards in [0, 1]
    (:data:`UNIT_INTERVAL_REWARDS`) on a bandit whose rewards are not (``bandit/gaussian``).

    Raises:
      ValueError: one line, for an unknown name (with the closest matches), a parameter the
        algorithm does not have, a value it refuses, or an environment it does not fit.
    """
    name, kwargs = parse_call(spec, "bandit algorithm")
    if name not in ALGORITHMS:
        close = difflib.get_close_matches(name, ALGORITHMS, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown bandit algorithm {name!r}{hint}; accepted: {', '.join(names())}")
    constructor = ALGORITHMS[name]
    parameters = list(inspect.signature(constructor).parameters)
    unknown = [key for key in kwargs if key not in parameters]
    if unknown:
        accepted = f"accepted: {', '.join(parameters)}" if parameters else "it takes none"
        raise ValueError(f"bandit algorithm {name!r} has no parameter {unknown[0]!r}; {accepted}")
    if env is not None and name in UNIT_INTERVAL_REWARDS and not _rewards_in_unit_interval(env):
        raise ValueError(f"bandit algorithm {name!r} needs rewards in [0, 1] ({UNIT_INTERVAL_REWARDS[name]}), "
                         f"but {getattr(env, 'name', type(env).__name__)}'s rewards are not; for Gaussian arms "
                         "use gaussian_thompson")
    return constructor(**kwargs)


# ------------------------------------------------------------------- many runs, many algorithms

def log_times(num_steps: int, num: int = 120) -> np.ndarray:
    """About ``num`` log-spaced 1-based times t in [1, ``num_steps``] (int), always including
    ``num_steps // 10`` and ``num_steps``: where :func:`compare` keeps the regret curves."""
    _check_int("bandits.log_times", "num_steps", num_steps, lambda n: n >= 1, "a positive integer")
    return np.union1d(np.geomspace(1, num_steps, num).round().astype(int), [max(num_steps // 10, 1), num_steps])


class Result(NamedTuple):
    """One algorithm's runs in :func:`compare`: ``regret`` R(t) at the times asked for, float32
    [runs, len(times)], and the seconds spent, ``compile_s`` (its one program) and ``wall_s``
    (compilation and every run)."""

    regret: np.ndarray
    compile_s: float
    wall_s: float


def regret_curves(policy: Policy, env, key: chex.PRNGKey, num_steps: int, num_runs: int, chunk: int,
                  times: np.ndarray) -> Result:
    """R(t) at ``times`` (1-based) of ``num_runs`` runs of ``policy`` against ``env``, vmapped
    ``chunk`` runs at a time: one program, compiled once, is called ⌈num_runs / chunk⌉ times
    (chunks keep the [num_steps, chunk] traces in memory small).

    The runs' keys: the c-th call plays ``run_many(policy, env, keys[c], num_steps, chunk)``
    with ``keys = jax.random.split(key, ⌈num_runs / chunk⌉)``, and the runs past ``num_runs``
    of the last call are dropped. ``chunk`` is at most ``num_runs`` (a larger one is the same
    runs, with jax's default partitionable keys, as one chunk of all of them).
    """
    _check_int("bandits.regret_curves", "num_runs", num_runs, lambda n: n >= 1, "a positive integer")
    _check_int("bandits.regret_curves", "chunk", chunk, lambda n: n >= 1, "a positive integer")
    times = np.asarray(times)
    if times.ndim != 1 or times.size == 0 or times.min() < 1 or times.max() > num_steps:
        raise ValueError(f"bandits.regret_curves: `times` must be 1-based times in [1, {num_steps}], got {times}")
    chunk = min(chunk, num_runs)
    index = jnp.asarray(times - 1)

    def chunk_regret(chunk_key):
        trace = run_many(policy, env, chunk_key, num_steps, chunk)
        return cumulative_regret(env.means, trace.arms)[index].T  # [chunk, len(times)]

    keys = jax.random.split(key, -(-num_runs // chunk))
    start = time.perf_counter()
    compiled = jax.jit(chunk_regret).lower(keys[0]).compile()
    compile_s = time.perf_counter() - start
    regret = np.concatenate([np.asarray(compiled(k)) for k in keys])[:num_runs]
    return Result(regret, compile_s, time.perf_counter() - start)


def compare(policies: dict[str, Policy], env, key: chex.PRNGKey, num_steps: int, num_runs: int,
            chunk: int = 100, times: np.ndarray | None = None,
            report: Callable[[str, Result], None] | None = None) -> dict[str, Result]:
    """:func:`regret_curves` of each of ``policies`` (label -> policy) against ``env``, every one
    from the same ``key`` (so their runs share the bandit's reward draws as far as they pull the
    same arms), at ``times`` (default :func:`log_times`); ``report(label, result)`` is called as
    each finishes. ``fnrl bandit`` and ``experiments/bandits.py`` both run this."""
    if not is_bandit(env):
        raise ValueError(f"bandits.compare: `env` must be a bandit/* environment, got {getattr(env, 'name', env)!r}")
    _check_int("bandits.compare", "num_steps", num_steps, lambda n: n >= 1, "a positive integer")
    times = log_times(num_steps) if times is None else times
    results = {}
    for label, policy in policies.items():
        results[label] = regret_curves(policy, env, key, num_steps, num_runs, chunk, times)
        if report is not None:
            report(label, results[label])
    return results


def final_regret(regret: np.ndarray) -> dict[str, float | None]:
    """The mean, standard deviation (ddof 1) and standard error of the mean over runs of the last
    column of ``regret`` [runs, times] (in float64; the last two ``None`` for one run)."""
    final = np.asarray(regret, np.float64)[:, -1]
    if final.size < 2:
        return {"mean": float(final.mean()), "std": None, "stderr": None}
    std = float(final.std(ddof=1))
    return {"mean": float(final.mean()), "std": std, "stderr": std / math.sqrt(final.size)}


def plot_regret(regrets: dict[str, np.ndarray], times: np.ndarray, bound: np.ndarray | None, path: str,
                title: str) -> None:
    """Writes ``path`` (a PNG): each algorithm's mean regret curve ± 2 standard errors over its
    runs (``regrets``: label -> [runs, len(times)]) against log t, with the Lai–Robbins ``bound``
    at ``times`` (or none), once with linear and once with logarithmic regret. The linear panel
    is capped at the second-highest final regret when the highest is more than 3 times it
    (ε-greedy's linear regret would otherwise flatten the rest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for label, regret in regrets.items():
        regret = np.asarray(regret)
        se = regret.std(0, ddof=1) / np.sqrt(len(regret)) if len(regret) > 1 else np.zeros(regret.shape[1])
        curves[label] = (regret.mean(0), se)
    finals = sorted((mean[-1], label) for label, (mean, _) in curves.items())
    capped = len(finals) > 1 and finals[-1][0] > 3 * finals[-2][0]
    top = max(finals[-2 if capped else -1][0], 0.0 if bound is None else float(bound[-1]))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, log_y in zip(axes, (False, True)):
        for label, (mean, se) in curves.items():
            line, = ax.plot(times, mean, label=label)
            ax.fill_between(times, mean - 2 * se, mean + 2 * se, color=line.get_color(), alpha=0.25)
        if bound is not None:
            ax.plot(times, bound, "k--", label="Lai–Robbins bound Σ Δ/kl · ln t")
        ax.set_xscale("log")
        if times[-1] > 1:
            ax.set_xlim(10 if times[-1] >= 100 else 1, times[-1])
        ax.set_xlabel("t (pulls)")
        ax.grid(True, which="both", alpha=0.3)
        if log_y:
            ax.set_yscale("log")
            if top > 1:
                ax.set_ylim(1, None)
            ax.set_title("log–log: every algorithm")
        else:
            if top > 0:
                ax.set_ylim(0, 1.15 * top)
            ax.set_ylabel("expected regret R(t)")
            ax.set_title("log t, linear regret" + (f" ({finals[-1][1]} leaves the top)" if capped else ""))
            ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = [
    "Stats", "Policy", "Trace", "init", "update", "empirical_means",
    "epsilon_greedy", "ucb1", "ucb1_index", "kl_ucb", "kl_ucb_index", "bernoulli_kl",
    "bernoulli_thompson", "beta_posterior", "gaussian_thompson", "gaussian_posterior",
    "run", "run_many", "cumulative_regret", "gaussian_kl", "lai_robbins_constant", "lai_robbins_bound",
    "env_lai_robbins_constant", "ALGORITHMS", "UNIT_INTERVAL_REWARDS", "ENVIRONMENTS", "names", "is_bandit", "make",
    "log_times", "Result", "regret_curves", "compare", "final_regret", "plot_regret",
]
