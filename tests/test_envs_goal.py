"""Goal reaching (envs/goal.py): goal/point's dynamics, rewards, flags and goal slices, and the
interface every environment keeps (make, spec, time limit, jit and vmap, one-line bad actions)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.envs
from fnrl.envs.goal import PointGoal, goal_slices
from fnrl.envs.wrappers import TimeLimit


def _at(env, position, goal):
    """A state of ``env`` (unwrapped) at ``position`` with ``goal``."""
    state = env.reset(jax.random.PRNGKey(0))
    obs = jnp.asarray(np.concatenate([position, goal]), jnp.float32)
    return state.replace(obs=obs, internal=obs)


def test_make_gives_the_spec_time_limit_and_goal_slices():
    env = fnrl.envs.make("goal/point")
    assert "goal/point" in fnrl.envs.list()
    assert isinstance(env, TimeLimit) and env.max_episode_steps == 50
    assert env.spec.observation_shape == (4,) and env.spec.action_shape == (2,) and not env.spec.discrete
    assert env.spec.action_low == (-1.0, -1.0) and env.spec.action_high == (1.0, 1.0)
    achieved, desired = goal_slices(env)  # through the wrappers
    assert (achieved, desired) == (slice(0, 2), slice(2, 4))
    assert goal_slices(fnrl.envs.wrap(env, num_envs=2)) == (achieved, desired)
    assert goal_slices(fnrl.envs.make("pendulum")) is None and goal_slices(fnrl.envs.make("cartpole")) is None
    assert fnrl.envs.make("goal/point(step_size=0.2, radius=0.05)").unwrapped == PointGoal(0.2, 0.05)


def test_reset_draws_position_and_goal_uniformly_in_the_square():
    env = PointGoal()
    states = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 4000))
    obs = np.asarray(states.obs)
    assert obs.dtype == np.float32 and obs.shape == (4000, 4)
    assert np.all(np.abs(obs) <= 1.0)
    np.testing.assert_allclose(obs.mean(0), 0.0, atol=0.05)  # U(-1, 1): mean 0, variance 1/3
    np.testing.assert_allclose(obs.var(0), 1 / 3, atol=0.03)
    np.testing.assert_array_equal(states.internal, states.obs)
    np.testing.assert_array_equal(states.reward, 0.0)
    np.testing.assert_array_equal(states.termination, 0.0)


def test_step_moves_by_the_clipped_velocity_inside_the_square():
    env = PointGoal(step_size=0.1, radius=0.1)
    goal = np.array([0.9, -0.9], np.float32)
    state = env.step(_at(env, [0.0, 0.0], goal), jnp.array([0.5, -1.0]))
    np.testing.assert_allclose(state.obs, [0.05, -0.1, 0.9, -0.9], atol=1e-7)
    assert float(state.reward) == -1.0 and float(state.termination) == 0.0 and float(state.truncation) == 0.0
    # actions beyond [-1, 1] are clipped; positions stay in the square
    state = env.step(_at(env, [0.95, -0.5], goal), jnp.array([3.0, -2.0]))
    np.testing.assert_allclose(state.obs[:2], [1.0, -0.6], atol=1e-7)
    np.testing.assert_array_equal(state.obs[2:], goal)  # the goal never changes


def test_reaching_the_goal_terminates_with_reward_zero():
    env = PointGoal(step_size=0.1, radius=0.1)
    goal = np.array([0.25, 0.0], np.float32)
    state = _at(env, [0.0, 0.0], goal)
    rewards, terminations = [], []
    for _ in range(3):  # at 0.1 the distance is 0.15, at 0.2 it is 0.05: within the radius
        state = env.step(state, jnp.array([1.0, 0.0]))
        rewards.append(float(state.reward)), terminations.append(float(state.termination))
        if terminations[-1]:
            break
    assert rewards == [-1.0, 0.0] and terminations == [0.0, 1.0]


def test_time_limit_truncates_an_episode_that_stays_away_from_the_goal():
    env = fnrl.envs.make("goal/point")
    start = env.reset(jax.random.PRNGKey(1))
    start = start.replace(obs=jnp.array([-1.0, -1.0, 1.0, 1.0]), internal=jnp.array([-1.0, -1.0, 1.0, 1.0]))

    def body(state, _):
        state = env.step(state, jnp.array([-1.0, -1.0]))  # pushing into the corner, away from the goal
        return state, (state.reward, state.termination, state.truncation)

    _, (reward, termination, truncation) = jax.jit(lambda s: jax.lax.scan(body, s, None, 50))(start)
    np.testing.assert_array_equal(reward, -1.0)
    np.testing.assert_array_equal(termination, 0.0)
    np.testing.assert_array_equal(truncation, np.arange(1, 51) == 50)


def test_made_env_resets_and_steps_under_jit_and_vmap():
    env = fnrl.envs.make("goal/point")
    batch = 4

    @jax.jit
    def run(key):
        keys = jax.random.split(key, batch + 1)
        state = jax.vmap(env.reset)(keys[1:])
        return jax.vmap(env.step)(state, env.spec.sample_action(keys[0], (batch,)))

    state = run(jax.random.PRNGKey(3))
    assert state.obs.shape == (batch, 4) and state.obs.dtype == jnp.float32
    for flag in (state.reward, state.termination, state.truncation):
        assert flag.shape == (batch,) and flag.dtype == jnp.float32
    np.testing.assert_array_equal(state.info["steps"], 1)


def test_bad_actions_fail_with_a_message_naming_the_action():
    env = PointGoal()
    with pytest.raises(AssertionError, match=r"goal/point: the action must be a float array of shape \(2,\)"):
        env.step(env.reset(jax.random.PRNGKey(0)), jnp.zeros((1,)))
