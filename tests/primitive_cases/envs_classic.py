"""jit/vmap/grad cases for :mod:`fnrl.envs.classic`: one step of each environment from a random
physical state, differentiated with respect to that state (the dynamics are differentiable)."""
import jax

import fnrl.envs.classic as C
from primitive_cases import Case

MODULE = C


def _step_case(cls):
    env = cls()

    def fn(x, action):
        state = env.step(env.reset(jax.random.PRNGKey(0)).replace(internal=x), action)
        return state.obs, state.reward, state.termination

    def make_args(key):
        k1, k2 = jax.random.split(key)
        return env.reset(k1).internal, env.spec.sample_action(k2)

    return Case(cls.__name__, fn, make_args, argnums=(0,) if env.spec.discrete else (0, 1))


CASES = [_step_case(getattr(C, name)) for name in C.__all__]
