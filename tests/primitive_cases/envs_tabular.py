"""jit/vmap/grad cases for :mod:`fnrl.envs.tabular`: the exact solvers on a random MDP
(S=4, A=3, R[s, a, s']), differentiated with respect to the rewards, initial distribution and
policy."""
import jax
import jax.numpy as jnp

import fnrl.envs.tabular as T
from primitive_cases import Case

MODULE = T
S, A = 4, 3


def _mdp(rewards, initial):
    key = jax.random.PRNGKey(7)
    transitions = jax.nn.softmax(2.0 * jax.random.normal(key, (S, A, S)), axis=-1)
    return T.MDP(transitions, rewards, initial, jnp.float32(0.9), jnp.zeros(S, bool))


def _args(key):
    k = jax.random.split(key, 3)
    return (jax.random.normal(k[0], (S, A, S)), jax.nn.softmax(jax.random.normal(k[1], (S,))),
            jax.nn.softmax(jax.random.normal(k[2], (S, A)), axis=-1))


CASES = [
    Case("value_iteration", lambda r, mu: T.value_iteration(_mdp(r, mu)), lambda key: _args(key)[:2]),
    Case("policy_evaluation", lambda r, mu, pi: T.policy_evaluation(_mdp(r, mu), pi), _args, argnums=(0, 2)),
    Case("state_occupancy", lambda r, mu, pi: T.state_occupancy(_mdp(r, mu), pi), _args, argnums=(1, 2)),
]
_ENV = "builds a Python environment object from concrete arrays (validated in numpy); tested in tests/test_envs_tabular.py"
EXEMPT = {
    "MDP": "a NamedTuple container of arrays (a pytree), not a function",
    "Solution": "a NamedTuple container of arrays (a pytree), not a function",
    "TabularEnv": _ENV,
    "random_mdp": _ENV,
    "chain": _ENV,
    "gridworld": _ENV,
    "dyna_maze": _ENV,
    "DYNA_MAZE": "a layout (a tuple of strings), not a function",
}
