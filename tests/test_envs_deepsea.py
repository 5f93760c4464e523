"""Deep Sea (envs/deepsea.py) against bsuite's own implementation (bsuite/environments/deep_sea.py).

The deterministic version is compared step by step: the action mapping, and every observation,
reward (as float32, exactly), termination/discount and bsuite's bad-episode flag and counters of
random episodes, for several sizes and mapping seeds. The stochastic ("windy") version is
compared in distribution: its one-step law from chosen cells (how often "right" moves right, the
reward's noise) and its optimal policy's returns, each against the exact law and against bsuite's
samples. Also: the optimal policy's return 0.99, the names ``deepsea/N``, the wrappers and a
DQN run through the command line.
"""
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bsuite.environments import deep_sea as bsuite_deep_sea
from scipy import stats

import fnrl.envs
from fnrl.cli import main
from fnrl.envs.deepsea import BSUITE_SIZES, DeepSea, DeepSeaState
from fnrl.envs.wrappers import TimeLimit


def _bsuite(size, **kwargs):
    return bsuite_deep_sea.DeepSea(size=size, **kwargs)


@pytest.mark.parametrize("size", [1, 3, 10, 21, 50])
@pytest.mark.parametrize("mapping_seed", [42, 0, 7])
def test_mapping_equals_bsuites(size, mapping_seed):
    ours = DeepSea(size, mapping_seed=mapping_seed).mapping
    np.testing.assert_array_equal(ours, _bsuite(size, mapping_seed=mapping_seed)._action_mapping)
    assert ours.shape == (size, size) and ours.dtype == np.int32


def test_debug_mapping_is_all_right():
    with pytest.warns(UserWarning):
        theirs = _bsuite(4, randomize_actions=False)._action_mapping
    np.testing.assert_array_equal(DeepSea(4, randomize_actions=False).mapping, theirs)


def _bsuite_episodes(size, num_episodes, seed, **kwargs):
    """Episodes of bsuite's DeepSea under a policy that goes right (by bsuite's own mapping) with a
    per-episode probability in {0.5, 0.9, 0.97, 1}: some episodes find the treasure at every size.
    Returns the actions [E, N], observations [E, N + 1, N, N] (the first from reset), rewards,
    discounts and last-step flags [E, N], the per-episode bad flags [E] and bsuite_info()."""
    env = _bsuite(size, **kwargs)
    rng = np.random.default_rng(seed)
    out = {k: [] for k in ("action", "obs", "reward", "discount", "last", "bad")}
    for episode in range(num_episodes):
        p_right = (0.5, 0.9, 0.97, 1.0)[episode % 4]
        timestep = env.reset()
        ep = {"action": [], "obs": [timestep.observation], "reward": [], "discount": [], "last": []}
        for _ in range(size):
            right = int(env._action_mapping[env._row, env._column])
            action = right if rng.random() < p_right else 1 - right
            timestep = env.step(action)
            for k, v in zip(("action", "obs", "reward", "discount", "last"),
                            (action, timestep.observation, timestep.reward, timestep.discount, timestep.last())):
                ep[k].append(v)
        assert timestep.last()
        for k, v in ep.items():
            out[k].append(v)
        out["bad"].append(env._bad_episode)
    return {k: np.asarray(v) for k, v in out.items()}, env.bsuite_info()


@functools.partial(jax.jit, static_argnums=0)
def _episodes(env, keys, actions):
    """Our env from ``reset(keys[e])`` on ``actions[e]`` [E, N]: observations [E, N + 1, N, N],
    rewards, terminations, truncations [E, N] and the final internal state."""

    def episode(key, actions):
        state = env.reset(key)

        def body(state, action):
            state = env.step(state, action)
            return state, (state.obs, state.reward, state.termination, state.truncation)

        last, (obs, reward, termination, truncation) = jax.lax.scan(body, state, actions)
        return jnp.concatenate([state.obs[None], obs]), reward, termination, truncation, last.internal

    return jax.vmap(episode)(keys, actions)


# (size, mapping_seed, randomize_actions)
CASES = [(1, 42, True), (2, 42, True), (5, 0, True), (10, 42, True), (10, 3, False), (23, 7, True),
         (50, 42, True)]


@pytest.mark.filterwarnings("ignore:Environment is in debug mode")
@pytest.mark.parametrize("size,mapping_seed,randomize", CASES)
def test_every_step_matches_bsuite(size, mapping_seed, randomize):
    theirs, info = _bsuite_episodes(size, 40, seed=size, mapping_seed=mapping_seed, randomize_actions=randomize)
    env = DeepSea(size, mapping_seed=mapping_seed, randomize_actions=randomize)
    keys = jax.random.split(jax.random.PRNGKey(0), len(theirs["action"]))
    obs, reward, termination, truncation, internal = _episodes(env, keys, jnp.asarray(theirs["action"], jnp.int32))
    np.testing.assert_array_equal(obs, theirs["obs"])
    np.testing.assert_array_equal(reward, theirs["reward"].astype(np.float32))
    np.testing.assert_array_equal(termination, (theirs["discount"] == 0).astype(np.float32))
    np.testing.assert_array_equal(termination, theirs["last"].astype(np.float32))
    np.testing.assert_array_equal(truncation, 0.0)
    np.testing.assert_array_equal(internal.bad_episode, theirs["bad"])
    found = np.asarray(reward[:, -1] > 0.5)  # the treasure is only ever paid on the last step
    assert int(np.sum(internal.bad_episode)) == info["total_bad_episodes"]
    assert int(np.sum(found)) == info["denoised_return"]
    assert 0 < info["denoised_return"] < len(found), "the episodes must include treasures and misses"
    # As the module docstring says: bad episodes are exactly those with return below 0.5.
    np.testing.assert_array_equal(internal.bad_episode, np.sum(reward, axis=1) < 0.5)
    np.testing.assert_array_equal(internal.bad_episode, ~found)


@pytest.mark.parametrize("size", [1, 10, 50])
def test_optimal_policy_returns_099(size):
    env = DeepSea(size)

    def body(state, _):
        state = env.step(state, env.right_action(state))
        return state, state.reward

    _, rewards = jax.jit(lambda key: jax.lax.scan(body, env.reset(key), None, length=size))(jax.random.PRNGKey(0))
    assert env.optimal_return == pytest.approx(0.99) == _bsuite(size, mapping_seed=42)._optimal_return
    np.testing.assert_allclose(np.sum(rewards), 0.99, rtol=1e-6)
    np.testing.assert_allclose(rewards[:-1], -0.01 / size, rtol=1e-6)


def test_an_ended_episode_is_absorbing():
    env = DeepSea(3)
    state = env.reset(jax.random.PRNGKey(0))
    for _ in range(5):
        state = env.step(state, jnp.int32(0))
    np.testing.assert_array_equal(state.obs, np.zeros((3, 3)))
    assert float(state.reward) == 0.0 and float(state.termination) == 1.0 and int(state.internal.row) == 3


# --------------------------------------------------------------------------- stochastic version

N = 4
K = 4000  # samples per cell and action
# Cells (row, column) covering the start, the diagonal, the noisy end cells and a quiet one.
CELLS = [(0, 0), (2, 2), (2, 1), (3, 0), (3, 3), (3, 1)]


def _bsuite_step_samples(row, column, right, seed):
    """K one-step samples of bsuite's stochastic DeepSea from (row, column): next column, reward, bad."""
    env = _bsuite(N, deterministic=False, mapping_seed=42, seed=seed)
    action = int(env._action_mapping[row, column]) if right else 1 - int(env._action_mapping[row, column])
    columns, rewards, bad = [], [], []
    for _ in range(K):
        env._reset()
        env._row, env._column = row, column
        timestep = env._step(action)
        columns.append(env._column)
        rewards.append(timestep.reward)
        bad.append(env._bad_episode)
    return np.asarray(columns), np.asarray(rewards), np.asarray(bad)


@functools.partial(jax.jit, static_argnums=0)
def _our_step_samples(env, row, column, right, keys):
    def one(key):
        state = env.reset(key)
        state = state.replace(internal=DeepSeaState(row, column, jnp.zeros((), bool), key))
        action = jnp.where(right, env.right_action(state), 1 - env.right_action(state))
        next_state = env.step(state, action)
        return next_state.internal.column, next_state.reward, next_state.internal.bad_episode

    return jax.vmap(one)(keys)


@pytest.mark.parametrize("row,column", CELLS)
def test_stochastic_step_law_matches_bsuite(row, column):
    """From each cell: "right" moves right w.p. 1 − 1/N and stays w.p. 1/N, "left" moves left;
    the reward is N(base, 1) in the last row's end cells and exactly base elsewhere."""
    env = DeepSea(N, deterministic=False)
    keys = jax.random.split(jax.random.PRNGKey(row * N + column), K)
    for right in (True, False):
        ours = [np.asarray(x) for x in _our_step_samples(env, jnp.int32(row), jnp.int32(column), right, keys)]
        theirs = _bsuite_step_samples(row, column, right, seed=row * N + column)
        if right:  # next column -> probability
            law = {min(column + 1, N - 1): 1 - 1 / N, column: 1 / N} if column < N - 1 else {column: 1.0}
        else:
            law = {max(column - 1, 0): 1.0}
        base = (1.0 * (column == N - 1) - 0.01 / N) if right else 0.0
        noisy = row == N - 1 and column in (0, N - 1)
        for columns, reward, bad in (ours, theirs):
            assert set(np.unique(columns)) <= set(law), (right, np.unique(columns))
            for value, p in law.items():
                assert abs(np.mean(columns == value) - p) <= 5 * np.sqrt(p * (1 - p) / K), (right, value)
            np.testing.assert_array_equal(bad, np.full(K, not right and row == column))
            if noisy:
                assert abs(np.mean(reward) - base) <= 5 / np.sqrt(K)
                assert abs(np.std(reward) - 1.0) <= 0.05
            else:
                np.testing.assert_allclose(reward, base, rtol=1e-6)
        if noisy:
            assert stats.ks_2samp(ours[1], theirs[1]).pvalue > 1e-3


def test_stochastic_optimal_returns_match_bsuite():
    """Always "right": the treasure is reached with probability (1 − 1/N)^(N − 1) (bsuite's
    optimal return, plus the move costs); the return distributions agree (two-sample KS)."""
    env, episodes = DeepSea(N, deterministic=False), 3000

    def episode(key):
        def body(state, _):
            state = env.step(state, env.right_action(state))
            return state, state.reward

        return jnp.sum(jax.lax.scan(body, env.reset(key), None, length=N)[1])

    ours = np.asarray(jax.jit(jax.vmap(episode))(jax.random.split(jax.random.PRNGKey(1), episodes)))
    bsuite_env = _bsuite(N, deterministic=False, mapping_seed=42, seed=1)
    theirs = []
    for _ in range(episodes):
        bsuite_env.reset()
        total = 0.0
        for _ in range(N):
            total += bsuite_env.step(int(bsuite_env._action_mapping[bsuite_env._row, bsuite_env._column])).reward
        theirs.append(total)
    assert env.optimal_return == pytest.approx(bsuite_env._optimal_return) == pytest.approx((1 - 1 / N) ** (N - 1) - 0.01)
    for returns in (ours, np.asarray(theirs)):
        assert abs(np.mean(returns) - env.optimal_return) <= 5 * np.std(returns) / np.sqrt(episodes)
    # Rounded: a float32 return of -0.01 is not bsuite's float64 -0.01, and ~56% of them are exactly that.
    assert stats.ks_2samp(np.round(np.float64(ours), 5), np.round(theirs, 5)).pvalue > 1e-3


# --------------------------------------------------------------------------- names, wrappers, training


def test_names():
    env = fnrl.envs.make("deepsea/20")
    assert isinstance(env, DeepSea) and not isinstance(env, TimeLimit)  # episodes end after N steps
    assert env == DeepSea(20, mapping_seed=42) and env.name == "deepsea/20" and env.spec.observation_shape == (20, 20)
    assert fnrl.envs.make("deepsea/7") == DeepSea(7)  # not listed, built on demand
    assert fnrl.envs.make("deepsea/20(mapping_seed=3, deterministic=False)") == DeepSea(20, False, mapping_seed=3)
    np.testing.assert_array_equal(fnrl.envs.make("deepsea/20(mapping_seed=3)").mapping,
                                  np.random.RandomState(3).binomial(1, 0.5, [20, 20]))
    assert {f"deepsea/{n}" for n in BSUITE_SIZES} <= set(fnrl.envs.list())
    assert BSUITE_SIZES == tuple(s["size"] for s in bsuite_deep_sea.sweep.SETTINGS)
    assert all(s["mapping_seed"] == 42 for s in bsuite_deep_sea.sweep.SETTINGS)


@pytest.mark.parametrize("name,message", [
    ("deepsea/0", r"^environment 'deepsea/0': deepsea/N needs a positive integer N"),
    ("deepsea/x", r"^environment 'deepsea/x': deepsea/N needs a positive integer N"),
    ("deepsea/-3", r"^environment 'deepsea/-3': deepsea/N needs a positive integer N"),
    ("deepsea", r"^unknown environment 'deepsea': did you mean deepsea/"),
    ("deepsea/20(size=3)", r"^environment 'deepsea/20': .*'size'"),
    ("deepsea/20(mapping_seed=-1)", r"^deepsea: mapping_seed must be an integer"),
    ("deepsea/20(deterministic=0)", r"^deepsea: deterministic must be True or False"),
])
def test_bad_names_are_one_line(name, message):
    with pytest.raises(ValueError, match=message) as error:
        fnrl.envs.make(name)
    assert "\n" not in str(error.value)


def test_wrapped_batch_auto_resets_after_n_steps():
    """Through the training stack the episode ends at step N with its return and length, and
    the next step starts afresh; the final observation is bsuite's all-zero one."""
    size, num_envs = 6, 8
    env = fnrl.envs.wrap(fnrl.envs.make(f"deepsea/{size}"), num_envs=num_envs)

    def body(state, t):
        optimal = env.right_action(state)  # reaches DeepSea through the wrappers; batched
        action = jnp.where(jnp.arange(num_envs) % 2 == 0, optimal, 1 - optimal)  # even envs optimal, odd ones never right
        state = env.step(state, action.astype(jnp.int32))
        return state, (state.termination, state.info["ended_return"], state.info["ended_length"],
                       state.info["final_obs"], state.obs)

    _, (termination, ended_return, ended_length, final_obs, obs) = jax.jit(
        lambda key: jax.lax.scan(body, env.reset(key), jnp.arange(2 * size)))(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(termination, np.tile((np.arange(2 * size) % size == size - 1)[:, None], num_envs))
    ends = np.array([size - 1, 2 * size - 1])
    np.testing.assert_allclose(ended_return[ends][:, 0::2], 0.99, rtol=1e-6)
    np.testing.assert_array_equal(ended_return[ends][:, 1::2], 0.0)  # "left" never costs
    np.testing.assert_array_equal(ended_length[ends], size)
    np.testing.assert_array_equal(final_obs[ends], 0.0)
    start = np.zeros((size, size), np.float32)
    start[0, 0] = 1.0
    np.testing.assert_array_equal(obs[ends], np.broadcast_to(start, (2, num_envs, size, size)))


def test_dqn_trains_on_deepsea_through_the_command_line(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "dqn", "--env", "deepsea/5", "--steps", "600", "--seed", "0", "--out", str(out)]
    for setting in ("num_envs=4", "learning_starts=100", "batch_size=16", "buffer_size=1000", "num_evals=2",
                    "eval_episodes=2", "hidden_sizes=16,16"):
        argv += ["--set", setting]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "deepsea/5" and -0.01 - 1e-6 <= summary["episode_return"] <= 0.99 + 1e-6
