"""Bandits (envs/bandit.py): reward distributions by Monte Carlo through reset/step under
jit + vmap, the optimal arm, and the expected regret."""
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import fnrl.envs
from fnrl.envs import bandit as B

MEANS = (0.1, 0.7, 0.4, 0.65)
PULLS = 20_000  # per arm


@pytest.fixture(scope="module", params=["bandit/bernoulli", "bandit/gaussian"])
def pulls(request):
    """``PULLS`` one-step episodes of every arm of a made bandit, under jit + vmap."""
    env = fnrl.envs.make(request.param, means=MEANS, **({"stddev": 2.0} if "gaussian" in request.param else {}))

    @jax.jit
    def pull_all(key):
        def pull(key, arm):
            state = env.reset(key)
            state = state.replace(info={"tag": arm})
            return state, env.step(state, arm)

        keys = jax.random.split(key, (len(MEANS), PULLS))
        arms = jnp.broadcast_to(jnp.arange(len(MEANS))[:, None], (len(MEANS), PULLS))
        return jax.vmap(jax.vmap(pull))(keys, arms)

    first, after = pull_all(jax.random.PRNGKey(0))
    return request.param, env, first, after


def test_rewards_have_the_arm_distributions(pulls):
    name, env, _, after = pulls
    rewards = np.asarray(after.reward, np.float64)  # [arm, pull]
    means = np.asarray(MEANS)
    if name == "bandit/bernoulli":
        assert set(np.unique(rewards)) <= {0.0, 1.0}
        std = np.sqrt(means * (1 - means))
    else:
        std = np.full_like(means, env.stddev)
        # The sample standard deviation of a Gaussian has standard error σ / √(2n).
        np.testing.assert_allclose(rewards.std(1, ddof=1), std, atol=4 * 2.0 / np.sqrt(2 * PULLS))
    assert np.all(np.abs(rewards.mean(1) - means) <= 4 * std / np.sqrt(PULLS))


def test_one_step_episodes(pulls):
    _, env, first, after = pulls
    assert env.unwrapped is env  # no time limit: every step terminates
    np.testing.assert_array_equal(first.obs, 0.0)
    np.testing.assert_array_equal(after.obs, 0.0)
    assert after.obs.shape[-1:] == env.spec.observation_shape == (1,)
    np.testing.assert_array_equal(after.termination, 1.0)
    np.testing.assert_array_equal(after.truncation, 0.0)
    np.testing.assert_array_equal(after.info["tag"], first.info["tag"])  # info carried unchanged
    assert env.spec.num_actions == len(MEANS) and env.spec.discrete


def test_optimal_arm_and_regret_closed_forms():
    env = B.BernoulliBandit(means=MEANS)
    assert env.optimal_arm == 1 and env.optimal_mean == pytest.approx(0.7)
    steps = 50
    # Pulling arm a for T steps costs T · (μ* − μ_a); a batch of all arms at once ([T, k] actions).
    actions = jnp.broadcast_to(jnp.arange(len(MEANS)), (steps, len(MEANS)))
    np.testing.assert_allclose(env.regret(actions), steps * (0.7 - np.asarray(MEANS)), rtol=1e-6)
    assert float(B.regret(env.means, jnp.full((steps,), env.optimal_arm))) == 0.0


_regret = jax.jit(B.regret)


@settings(max_examples=40, deadline=None)
@given(means=st.lists(st.floats(-5, 5) | st.sampled_from([0.0, 1.0]), min_size=5, max_size=5),
       actions=st.lists(st.integers(0, 4), min_size=30, max_size=30))
def test_regret_is_counts_times_gaps(means, actions):
    """Σ_t (μ* − μ_{a_t}) = Σ_a N_a Δ_a (Lai & Robbins 1985), ≥ 0, and 0 iff only optimal arms
    were pulled (ties included). Fixed shapes [k=5], [T=30]: one compilation."""
    means, actions = np.asarray(means, np.float32), np.asarray(actions, np.int32)
    gaps = means.max() - means
    expected = np.bincount(actions, minlength=len(means)) @ gaps
    value = float(_regret(means, actions))
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-4)
    assert value >= 0 and (value == 0) == bool(np.all(gaps[actions] == 0))


def test_drawn_means_follow_the_seed():
    a, b, c = B.BernoulliBandit(seed=0), B.BernoulliBandit(seed=0), B.BernoulliBandit(seed=1)
    np.testing.assert_array_equal(a.means, b.means)
    assert a.means.shape == (10,) and not np.array_equal(a.means, c.means)
    assert np.all((a.means >= 0) & (a.means <= 1))
    g = B.GaussianBandit(num_arms=1000, seed=3)
    assert abs(float(g.means.mean())) < 4 / np.sqrt(1000) and abs(float(g.means.std()) - 1) < 0.1
    assert g.optimal_mean == float(g.means.max()) and g.means[g.optimal_arm] == g.means.max()


def test_bad_input_fails_with_one_line_errors():
    with pytest.raises(ValueError, match="means must be probabilities"):
        B.BernoulliBandit(means=(0.5, 1.5))
    with pytest.raises(ValueError, match="num_arms=3 but 2 means were given"):
        B.GaussianBandit(means=(0.0, 1.0), num_arms=3)
    with pytest.raises(ValueError, match="stddev must be positive"):
        B.GaussianBandit(stddev=0.0)
    with pytest.raises(AssertionError, match="actions must be integer arm indices"):
        B.regret(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(AssertionError, match="means must be the arm means"):
        B.regret(jnp.zeros((2, 3)), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match="time-major"):
        B.regret(jnp.zeros(3), jnp.int32(1))
    env = B.GaussianBandit()
    with pytest.raises(AssertionError, match="bandit/gaussian: the action must be an int32 scalar"):
        env.step(env.reset(jax.random.PRNGKey(0)), jnp.zeros(2, jnp.int32))
