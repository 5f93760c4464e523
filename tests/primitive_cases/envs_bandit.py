"""jit/vmap/grad cases for :mod:`fnrl.envs.bandit`."""
import jax

import fnrl.envs.bandit as B
from primitive_cases import Case

MODULE = B
K, T = 4, 6

CASES = [
    Case("regret", B.regret,
         lambda key: (jax.random.normal(key, (K,)), jax.random.randint(key, (T, 2), 0, K))),
    Case("cumulative_regret", B.cumulative_regret,
         lambda key: (jax.random.uniform(key, (K,)), jax.random.randint(key, (T, 2), 0, K))),
]
_ENV = "an environment object built from concrete means; its reset/step run under jit and vmap in tests/test_envs_bandit.py"
EXEMPT = {"BernoulliBandit": _ENV, "GaussianBandit": _ENV}
