"""jit/vmap/grad cases for :mod:`fnrl.bandits` (its differentiable functions; the policies and
the run are exercised under jit and vmap in tests/test_bandits.py)."""
import jax
import jax.numpy as jnp

import fnrl.bandits as B
from primitive_cases import Case

MODULE = B
K, T = 4, 6
COUNTS = jnp.array([3, 1, 0, 5], jnp.int32)


def _probabilities(key, shape=(K,)):
    return jax.random.uniform(key, shape, minval=0.05, maxval=0.95)


CASES = [
    Case("bernoulli_kl", B.bernoulli_kl,
         lambda key: (_probabilities(key), _probabilities(jax.random.fold_in(key, 1))), argnums=(0, 1)),
    Case("gaussian_kl", lambda p, q: B.gaussian_kl(p, q, 0.5),
         lambda key: (_probabilities(key), _probabilities(jax.random.fold_in(key, 1))), argnums=(0, 1)),
    Case("lai_robbins_constant", B.lai_robbins_constant, lambda key: (_probabilities(key),)),
    Case("lai_robbins_bound", lambda m: B.lai_robbins_bound(m, 1e5), lambda key: (_probabilities(key),)),
    Case("empirical_means", lambda sums: B.empirical_means(B.Stats(COUNTS, sums, jnp.sum(COUNTS))),
         lambda key: (jax.random.uniform(key, (K,)) * COUNTS,)),
]
_TYPE = "a type"
_POLICY = "selects an integer arm (nothing to differentiate); jit/vmap in tests/test_bandits.py"
_STATS = "integer statistics state; jit + scan + vmap in tests/test_bandits.py"
EXEMPT = {
    "Stats": _TYPE, "Policy": _TYPE, "Trace": _TYPE,
    "init": _STATS, "update": _STATS, "ucb1_index": _STATS, "kl_ucb_index": _STATS,
    "beta_posterior": "returns a distrax distribution over the statistics; sampled in tests/test_bandits.py",
    "gaussian_posterior": "returns a distrax distribution; its loc and scale are checked in tests/test_bandits.py",
    "epsilon_greedy": _POLICY, "ucb1": _POLICY, "kl_ucb": _POLICY,
    "bernoulli_thompson": _POLICY, "gaussian_thompson": _POLICY,
    "run": _POLICY, "run_many": _POLICY,
    "cumulative_regret": "re-exported from fnrl.envs.bandit; its case is in envs_bandit.py",
}
_HOST = "host-side tooling of `fnrl bandit` and experiments/bandits.py (names, building, chunked runs, plots); tested in tests/test_bandits.py"
EXEMPT.update({name: _HOST for name in (
    "env_lai_robbins_constant", "ALGORITHMS", "UNIT_INTERVAL_REWARDS", "ENVIRONMENTS", "names", "is_bandit", "make",
    "log_times", "Result", "regret_curves", "compare", "final_regret", "plot_regret")})
