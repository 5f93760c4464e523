"""fnrl.rollout (issue 3): shapes, agreement with stepping by hand, episode statistics."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnrl.envs as envs
from fnrl.envs.core import Env, EnvState, Spec
from fnrl.envs.wrappers import TimeLimit
from fnrl.rollout import Episodes, episode_metrics, rollout

B, T, OBS = 3, 9, 2


class Drift(Env):
    """obs' = obs + action (2-d); reward = -|obs'|^2; terminates when obs'[0] > 1.5; start ~ U(-1, 1)^2."""

    spec = Spec(observation_shape=(OBS,), action_shape=(OBS,), action_low=-1.0, action_high=1.0)

    def reset(self, key):
        zero = jnp.zeros((), jnp.float32)
        return EnvState(obs=jax.random.uniform(key, (OBS,), minval=-1.0, maxval=1.0), reward=zero,
                        termination=zero, truncation=zero, internal=())

    def step(self, state, action):
        obs = state.obs + action
        return state.replace(obs=obs, reward=-jnp.sum(obs**2), termination=(obs[0] > 1.5).astype(jnp.float32),
                             truncation=jnp.zeros((), jnp.float32))


def policy(params, obs, key):
    """Gaussian around a linear map of the observation; extras as an actor-critic would record."""
    mean = obs @ params["w"]
    noise = jax.random.normal(key, mean.shape)
    return jnp.tanh(mean + 0.5 * noise), {"value": obs.sum(-1), "log_prob": -0.5 * jnp.sum(noise**2, -1)}


PARAMS = {"w": jnp.array([[0.9, 0.0], [0.3, 0.2]])}


@pytest.fixture(scope="module")
def env():
    return envs.wrap(TimeLimit(Drift(), 4), num_envs=B)


@pytest.fixture(scope="module")
def result(env):
    start = env.reset(jax.random.PRNGKey(0))
    run = jax.jit(lambda s, k: rollout(env, policy, PARAMS, s, k, T))
    return start, run(start, jax.random.PRNGKey(1))


def test_shapes_are_time_major(result):
    _, (state, traj, episodes) = result
    chex.assert_shape([traj.obs, traj.action, traj.next_obs], (T, B, OBS))
    chex.assert_shape([traj.reward, traj.termination, traj.truncation, traj.extras["value"],
                       traj.extras["log_prob"], *episodes], (T, B))
    chex.assert_shape(state.obs, (B, OBS))


def test_trajectory_equals_stepping_by_hand(env, result):
    start, (end, traj, episodes) = result
    step, act = jax.jit(env.step), jax.jit(policy)
    state, tol = start, dict(rtol=1e-5, atol=1e-5)
    for t, key in enumerate(jax.random.split(jax.random.PRNGKey(1), T)):
        action, extras = act(PARAMS, state.obs, key)
        nxt = step(state, action)
        np.testing.assert_allclose(traj.obs[t], state.obs, **tol)
        np.testing.assert_allclose(traj.action[t], action, **tol)
        np.testing.assert_allclose(traj.extras["value"][t], extras["value"], **tol)
        np.testing.assert_allclose(traj.extras["log_prob"][t], extras["log_prob"], **tol)
        np.testing.assert_allclose(traj.reward[t], nxt.reward, **tol)
        np.testing.assert_array_equal(traj.termination[t], nxt.termination)
        np.testing.assert_array_equal(traj.truncation[t], nxt.truncation)
        # next_obs is where the step went: obs + action, even where the episode then restarted.
        np.testing.assert_allclose(traj.next_obs[t], state.obs + action, **tol)
        state = nxt
    chex.assert_trees_all_close(end, state, **tol)
    # Episodes really ended (terminations and time-limit truncations) and restarted.
    assert np.any(traj.termination) and np.any(traj.truncation)
    done = np.maximum(traj.termination, traj.truncation)
    np.testing.assert_array_equal(episodes.done, done)
    # Where an episode ended, the next step acts in a fresh first observation, not the final one.
    ended = done[:-1] > 0
    assert not np.any(np.all(np.isclose(traj.obs[1:][ended], traj.next_obs[:-1][ended]), axis=-1))


def test_episode_statistics_match_the_rewards(result):
    start, (_, traj, episodes) = result
    done = np.asarray(episodes.done) > 0
    for b in range(B):
        ret, length = 0.0, 0
        for t in range(T):
            ret, length = ret + float(traj.reward[t, b]), length + 1
            if done[t, b]:
                np.testing.assert_allclose(episodes.episode_return[t, b], ret, rtol=1e-5)
                assert episodes.episode_length[t, b] == length <= 4
                ret, length = 0.0, 0
            else:
                assert episodes.episode_return[t, b] == 0 and episodes.episode_length[t, b] == 0
    metrics = episode_metrics(episodes)
    assert int(metrics["num_episodes"]) == done.sum() > 0
    np.testing.assert_allclose(metrics["episode_return"], np.asarray(episodes.episode_return)[done].mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["episode_length"], np.asarray(episodes.episode_length)[done].mean(), rtol=1e-6)


def test_episode_metrics_without_ended_episodes_is_nan():
    zeros = jnp.zeros((2, 3))
    metrics = episode_metrics(Episodes(zeros, zeros, zeros.astype(jnp.int32)))
    assert int(metrics["num_episodes"]) == 0 and np.isnan(metrics["episode_return"]) and np.isnan(metrics["episode_length"])


def test_bad_inputs_fail_with_one_line_errors(env):
    state = env.reset(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        rollout(env, policy, PARAMS, state, jax.random.PRNGKey(0), 0)
    plain = envs.wrap(Drift(), num_envs=B, auto_reset=False)
    with pytest.raises(ValueError, match="auto_reset=True"):
        rollout(plain, policy, PARAMS, plain.reset(jax.random.PRNGKey(0)), jax.random.PRNGKey(0), 2)


def test_rollout_on_cartpole_counts_steps():
    env = envs.wrap(envs.make("cartpole"), num_envs=2)
    random_policy = lambda params, obs, key: (jax.random.randint(key, obs.shape[:1], 0, 2), {})  # noqa: E731
    state, traj, episodes = jax.jit(lambda s, k: rollout(env, random_policy, None, s, k, 40))(
        env.reset(jax.random.PRNGKey(0)), jax.random.PRNGKey(1))
    assert traj.action.dtype == jnp.int32 and traj.obs.shape == (40, 2, 4)
    # Random cart-pole episodes end well within 40 steps; lengths add up to the steps taken.
    done = np.asarray(episodes.done) > 0
    assert done.any()
    for b in range(2):
        ends = np.flatnonzero(done[:, b])
        np.testing.assert_array_equal(episodes.episode_length[ends, b], np.diff(np.concatenate([[-1], ends])))
    np.testing.assert_array_equal(state.info["episode_length"], 39 - np.array(
        [np.flatnonzero(done[:, b])[-1] for b in range(2)]))
