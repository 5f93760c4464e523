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

Conventions: the index policies (ε-greedy's greedy arm, UCB1, KL-UCB) give an arm that has not
been pulled the index +∞, so every arm is pulled once first, and they break ties uniformly at
random (``distrax.Greedy``/``distrax.EpsilonGreedy`` spread the mass evenly over the maxima), so
the order of the first k pulls is random and no arm is favoured by its index. "t" in the
indices is the number of pulls so far, ``stats.step`` (Auer et al. 2002's n).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, NamedTuple

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

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

def epsilon_greedy(epsilon: float) -> Policy:
    """ε-greedy with a constant ε (Sutton & Barto 2018, §2.2): with probability ε an arm drawn
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

def lai_robbins_constant(means: Array) -> Array:
    """Σ_{a: Δ_a>0} Δ_a / kl(μ_a, μ*) for Bernoulli arms with ``means`` μ, Δ_a = μ* − μ_a
    (arms with kl = +∞, i.e. μ* = 1, add 0)."""
    _check_probabilities("lai_robbins_bound", means)
    means = jnp.asarray(means, jnp.float32)
    chex.assert_rank(means, 1, custom_message="lai_robbins_bound: `means` must be the arm means, shape [k]")
    best = jnp.max(means)
    gaps = best - means
    kl = bernoulli_kl(means, best)
    return jnp.sum(jnp.where(gaps > 0, gaps / jnp.where(gaps > 0, kl, 1.0), 0.0))


def lai_robbins_bound(means: Array, t: Array) -> Array:
    """The Lai & Robbins (1985) asymptotic lower bound on the expected regret of any consistent
    policy on Bernoulli arms with ``means`` μ:

        liminf_{t→∞} R(t) / ln t ≥ Σ_{a: Δ_a>0} Δ_a / kl(μ_a, μ*),

    returned as that constant · ln t (the shape of ``t``). It holds only asymptotically: at a
    finite t a good policy's regret may lie above it by a (slowly shrinking) factor.
    """
    return lai_robbins_constant(means) * jnp.log(jnp.asarray(t, jnp.float32))


__all__ = [
    "Stats", "Policy", "Trace", "init", "update", "empirical_means",
    "epsilon_greedy", "ucb1", "ucb1_index", "kl_ucb", "kl_ucb_index", "bernoulli_kl",
    "bernoulli_thompson", "beta_posterior", "gaussian_thompson", "gaussian_posterior",
    "run", "run_many", "cumulative_regret", "lai_robbins_constant", "lai_robbins_bound",
]
