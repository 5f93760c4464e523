"""Evaluation episodes (fnrl.loops.evaluation), shared by every loop."""
import jax
import jax.numpy as jnp
import numpy as np

from fnrl.envs.core import Env, EnvState, Spec
from fnrl.loops.evaluation import evaluate


class _NaNAfterEnd(Env):
    """Reward 1 for 3 steps, terminating on the third; afterwards the reward is NaN (as Brax
    physics stepped past a termination can produce)."""

    spec = Spec(observation_shape=(1,), num_actions=2)

    def reset(self, key):
        zero = jnp.zeros((), jnp.float32)
        return EnvState(obs=jnp.zeros(1), reward=zero, termination=zero, truncation=zero,
                        internal=jnp.zeros((), jnp.int32))

    def step(self, state, action):
        t = state.internal + 1
        reward = jnp.where(t <= 3, 1.0, jnp.nan)
        return state.replace(obs=state.obs + 1, reward=reward, termination=(t >= 3).astype(jnp.float32),
                             truncation=jnp.zeros((), jnp.float32), internal=t)


def test_evaluate_sums_each_episode_to_its_end_and_ignores_later_steps():
    act = lambda learner, obs, key: (jnp.zeros(obs.shape[0], jnp.int32), {})  # noqa: E731
    total = evaluate(_NaNAfterEnd(), act, None, jax.random.PRNGKey(0), num_episodes=4, max_steps=6)
    np.testing.assert_allclose(total, 3.0)
