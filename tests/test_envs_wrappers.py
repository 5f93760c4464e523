"""Wrappers (issue 3): time limit, auto-reset, batching, observation normalisation, action
rescaling, on hand-made episodes whose every flag and statistic is known."""
import functools
import os
import subprocess
import sys
import textwrap

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import fnrl.envs as envs
from fnrl.envs.core import Env, EnvState, Spec
from fnrl.envs.wrappers import (AutoReset, Batch, NormalizeObservation, RescaleAction,
                                TimeLimit, init_stats, merge_stats, normalize, rescale_action, update_stats, wrap)


class Countdown(Env):
    """obs = (steps so far, steps until termination, u ~ U(0, 1) drawn at reset).

    The episode terminates after ``term_at`` steps (drawn from {2, ..., 5} at reset unless
    fixed); the reward of a step is its (scalar, float) action; ``u`` makes every reset's
    initial state distinct, so repeated initial states are visible.
    """

    def __init__(self, term_at=None):
        self.term_at = term_at

    spec = Spec(observation_shape=(3,), action_shape=(), action_low=-2.0, action_high=3.0)

    def reset(self, key):
        k1, k2 = jax.random.split(key)
        term_at = jax.random.randint(k1, (), 2, 6) if self.term_at is None else jnp.asarray(self.term_at)
        internal = {"c": jnp.zeros((), jnp.int32), "term_at": term_at.astype(jnp.int32),
                    "u": jax.random.uniform(k2, ())}
        zero = jnp.zeros((), jnp.float32)
        return EnvState(obs=self._obs(internal), reward=zero, termination=zero, truncation=zero,
                        internal=internal, info={})

    def step(self, state, action):
        internal = {**state.internal, "c": state.internal["c"] + 1}
        return state.replace(obs=self._obs(internal), reward=jnp.asarray(action, jnp.float32),
                             termination=(internal["c"] >= internal["term_at"]).astype(jnp.float32),
                             truncation=jnp.zeros((), jnp.float32), internal=internal)

    @staticmethod
    def _obs(internal):
        return jnp.stack([internal["c"].astype(jnp.float32), internal["term_at"].astype(jnp.float32), internal["u"]])


@functools.partial(jax.jit, static_argnums=0)
def _scan(env, actions, key):
    state = env.reset(key)

    def body(s, a):
        s = env.step(s, a)
        return s, s

    return state, jax.lax.scan(body, state, actions)[1]


def _run(env, actions, key=jax.random.PRNGKey(0)):
    """Resets, then steps through ``actions`` [T, ...] in one jitted scan; returns the initial
    state and the stacked states after each step, as numpy."""
    return jax.tree_util.tree_map(np.asarray, _scan(env, actions, key))


# ---------------------------------------------------------------------------- time limit


@pytest.mark.parametrize("term_at,limit,end_step,terminated", [
    (3, 5, 3, True),    # terminates before the limit
    (10, 4, 4, False),  # truncated by the limit
    (4, 4, 4, True),    # terminates on the last allowed step: a termination, not a truncation
])
def test_auto_reset_single_episode_boundaries(term_at, limit, end_step, terminated):
    env = AutoReset(TimeLimit(Countdown(term_at), limit))
    actions = np.arange(1.0, 2.0 * end_step + 1, dtype=np.float32)  # two full episodes
    first, states = _run(env, actions)
    done_at = {end_step - 1, 2 * end_step - 1}
    for t in range(len(actions)):
        s = jax.tree_util.tree_map(lambda x: x[t], states)
        ended = t in done_at
        assert float(s.termination) == float(ended and terminated), t
        assert float(s.truncation) == float(ended and not terminated), t
        c = (t % end_step) + 1  # step count within its episode after this step
        np.testing.assert_allclose(s.info["final_obs"][:2], [c, term_at])
        episode_actions = actions[t - c + 1: t + 1]
        if ended:
            np.testing.assert_allclose(s.obs[:2], [0, term_at])  # the next episode's first obs
            assert float(s.info["ended_return"]) == float(episode_actions.sum())
            assert int(s.info["ended_length"]) == end_step
            assert float(s.info["episode_return"]) == 0.0 and int(s.info["episode_length"]) == 0
            assert int(s.info["steps"]) == 0  # TimeLimit's counter restarted with the episode
        else:
            np.testing.assert_allclose(s.obs, s.info["final_obs"])
            assert float(s.info["episode_return"]) == float(episode_actions.sum())
            assert int(s.info["episode_length"]) == c
            assert float(s.info["ended_return"]) == 0.0 and int(s.info["ended_length"]) == 0
    # The second episode starts from a fresh draw, not the first episode's initial state.
    assert float(states.obs[end_step - 1, 2]) != float(first.obs[2])


def test_time_limit_without_auto_reset_keeps_flagging():
    env = TimeLimit(Countdown(100), 2)
    _, states = _run(env, jnp.ones(3))
    np.testing.assert_array_equal(states.truncation, [0.0, 1.0, 1.0])
    np.testing.assert_array_equal(states.termination, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="max_episode_steps"):
        TimeLimit(Countdown(), 0)


# ------------------------------------------------------------------ batched auto-reset

B, T = 4, 24


@pytest.fixture(scope="module")
def batched_run():
    env = AutoReset(Batch(TimeLimit(Countdown(), 4), B))
    actions = jax.random.normal(jax.random.PRNGKey(3), (T, B))
    first, states = _run(env, actions, jax.random.PRNGKey(7))
    return env, actions, first, states


def test_batched_auto_reset_matches_episode_by_episode_reenactment(batched_run):
    _, actions, first, states = batched_run
    actions = np.asarray(actions)
    for b in range(B):
        obs = np.asarray(first.obs[b])
        ret, length, starts = 0.0, 0, [obs[2]]
        for t in range(T):
            term_at = obs[1]
            ret, length = ret + actions[t, b], length + 1
            terminated = length >= term_at
            truncated = (length >= 4) and not terminated
            assert states.termination[t, b] == terminated and states.truncation[t, b] == truncated, (t, b)
            np.testing.assert_allclose(states.info["final_obs"][t, b, :2], [length, term_at])
            done = terminated or truncated
            np.testing.assert_allclose(states.info["ended_return"][t, b], ret if done else 0.0, rtol=1e-6)
            assert states.info["ended_length"][t, b] == (length if done else 0)
            obs = np.asarray(states.obs[t, b])
            if done:
                assert obs[0] == 0 and 2 <= obs[1] <= 5
                starts.append(obs[2])
                ret, length = 0.0, 0
            np.testing.assert_allclose(states.info["episode_return"][t, b], ret, rtol=1e-6, atol=1e-6)
        assert len(starts) >= 4  # several episodes per env in 24 steps of episodes <= 4 long
    # Both reset paths ran: one env alone (gathered and scattered) and several (the whole batch).
    num_done = np.sum(np.maximum(states.termination, states.truncation) > 0, axis=1)
    assert 1 in num_done and num_done.max() >= 2
    # Every reset drew a fresh initial state: no two episodes (in any env) start alike.
    all_starts = np.concatenate([np.asarray(first.obs[:, 2]),
                                 np.asarray(states.obs[..., 2])[np.asarray(states.info["episode_length"]) == 0]])
    assert len(np.unique(all_starts)) == len(all_starts)


def test_auto_reset_key_advances_only_when_an_episode_ends(batched_run):
    _, _, first, states = batched_run
    keys = np.concatenate([np.asarray(first.info["reset_key"])[None], np.asarray(states.info["reset_key"])])
    changed = np.any(keys[1:] != keys[:-1], axis=-1)
    any_done = np.any(np.maximum(states.termination, states.truncation) > 0, axis=-1)
    np.testing.assert_array_equal(changed, any_done)
    assert not np.all(any_done)  # the run has steps where the reset is skipped


def test_auto_reset_under_outer_vmap_equals_separate_runs():
    env = AutoReset(Batch(TimeLimit(Countdown(), 3), 2))
    actions = jnp.ones((7, 2))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    together = jax.jit(jax.vmap(lambda k: _scan(env, actions, k)))(keys)
    for i, k in enumerate(keys):
        chex.assert_trees_all_close(jax.tree_util.tree_map(lambda x: x[i], together), _run(env, actions, k))


def test_batch_checks_the_action_batch():
    env = Batch(Countdown(), 3)
    state = env.reset(jax.random.PRNGKey(0))
    assert state.obs.shape == (3, 3)
    with pytest.raises(AssertionError, match="leading axis of 3"):
        env.step(state, jnp.ones(2))
    with pytest.raises(ValueError, match="num_envs"):
        Batch(Countdown(), 0)
    with pytest.raises(ValueError, match="partial_fraction"):
        AutoReset(env, partial_fraction=2.0)


# ------------------------------------------------------------------------- rescaling


def test_rescale_action_maps_unit_box_to_bounds_and_clips():
    low, high = jnp.array([-2.0, 0.0]), jnp.array([3.0, 1.0])
    np.testing.assert_allclose(rescale_action(jnp.array([-1.0, -1.0]), low, high), low)
    np.testing.assert_allclose(rescale_action(jnp.array([1.0, 1.0]), low, high), high)
    np.testing.assert_allclose(rescale_action(jnp.array([0.0, 0.5]), low, high), [0.5, 0.75])
    np.testing.assert_allclose(rescale_action(jnp.array([-7.0, 4.0]), low, high), [-2.0, 1.0])  # clipped
    grad = jax.grad(lambda a: rescale_action(a, low, high).sum())(jnp.array([0.2, 3.0]))
    np.testing.assert_allclose(grad, [2.5, 0.0])  # (high - low) / 2 inside the box, 0 outside


@given(st.lists(st.floats(-10, 10, width=32), min_size=1, max_size=6))
@settings(max_examples=25, deadline=None)
def test_rescale_action_stays_in_bounds(values):
    a = jnp.asarray(values, jnp.float32)
    out = np.asarray(rescale_action(a, -2.0, 3.0))
    assert np.all(out >= -2.0) and np.all(out <= 3.0)


def test_rescale_action_wrapper_feeds_the_env_rescaled_actions():
    env = RescaleAction(Countdown(10))
    assert (env.spec.action_low, env.spec.action_high) == (-1.0, 1.0)
    state = env.step(env.reset(jax.random.PRNGKey(0)), jnp.asarray(1.5))
    assert float(state.reward) == 3.0  # +1.5 clipped to +1 -> the env's upper bound
    discrete = Countdown()
    discrete.spec = Spec(observation_shape=(3,), num_actions=2)
    with pytest.raises(ValueError, match="continuous"):
        RescaleAction(discrete)
    unbounded = Countdown()
    unbounded.spec = Spec(observation_shape=(3,), action_shape=(), action_low=-jnp.inf, action_high=jnp.inf)
    with pytest.raises(ValueError, match="finite bounds"):
        RescaleAction(unbounded)


# -------------------------------------------------------------- running statistics


def _assert_stats_equal(stats, data):
    data = np.asarray(data, np.float64).reshape((-1,) + stats.mean.shape)
    assert float(stats.count) == len(data)
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-4, atol=1e-5)


_jit_update = jax.jit(update_stats)


@given(st.lists(st.integers(1, 9), min_size=1, max_size=5), st.integers(0, 2**31 - 1))
@settings(max_examples=20, deadline=None)
def test_update_stats_in_chunks_equals_numpy_on_everything(chunk_sizes, seed):
    data = 3.0 + 2.0 * np.random.default_rng(seed).standard_normal((sum(chunk_sizes), 2), np.float32)
    stats, start = init_stats((2,)), 0
    for n in chunk_sizes:
        stats = _jit_update(stats, data[start:start + n])
        start += n
    _assert_stats_equal(stats, data)


def test_merge_stats_over_a_named_axis_equals_stats_of_the_concatenation():
    rng = np.random.default_rng(0)
    # 3 "devices" hold different data (shifted, scaled) and different counts: 2, 3 and 4 rows.
    chunks = [rng.standard_normal((i + 2, 2)).astype(np.float32) * [1.0, 4.0] + [0.0, i] for i in range(3)]
    per_device = [_jit_update(init_stats((2,)), c) for c in chunks]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *per_device)
    merged = jax.jit(jax.vmap(lambda s: merge_stats(s, "devices"), axis_name="devices"))(stacked)
    for i in range(3):
        _assert_stats_equal(jax.tree_util.tree_map(lambda x: x[i], merged), np.concatenate(chunks))


def test_update_stats_across_devices_keeps_every_device_identical():
    data = np.random.default_rng(1).standard_normal((2, 3, 4, 2)).astype(np.float32)  # [device, update, batch, feature]

    @jax.jit
    @functools.partial(jax.vmap, axis_name="devices")
    def device(chunks):
        stats = init_stats((2,))
        for chunk in chunks:
            stats = update_stats(stats, chunk, axis_name="devices")
        return stats

    stats = device(data)
    for d in range(2):
        _assert_stats_equal(jax.tree_util.tree_map(lambda x: x[d], stats), data.transpose(1, 0, 2, 3))


def test_normalize_and_its_errors():
    stats = update_stats(init_stats((2,)), jnp.array([[0.0, 1.0], [2.0, 5.0]]))
    np.testing.assert_allclose(normalize(stats, jnp.array([2.0, 1.0]), eps=0.0), [1.0, -1.0])
    np.testing.assert_allclose(normalize(stats, jnp.array([102.0, 1.0]), eps=0.0, clip=5.0), [5.0, -1.0])
    np.testing.assert_allclose(normalize(init_stats((2,)), jnp.array([3.0, -4.0]), eps=0.0), [3.0, -4.0])
    with pytest.raises(ValueError, match="update_stats: `batch` of shape"):
        update_stats(stats, jnp.ones((4, 3)))
    with pytest.raises(ValueError, match="normalize: `x` of shape"):
        normalize(stats, jnp.ones(3))
    with pytest.raises(TypeError, match="RunningStats"):
        normalize((1.0, 0.0, 1.0), jnp.ones(2))


PMAP_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    import fnrl.envs as envs
    from fnrl.envs.wrappers import init_stats, update_stats
    assert jax.device_count() == 2, jax.devices()
    data = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 3)) + jnp.arange(2.0)[:, None, None]
    stats = jax.pmap(lambda x: update_stats(init_stats((3,)), x, axis_name="d"), axis_name="d")(data)
    flat = np.asarray(data).reshape(-1, 3)
    for d in range(2):
        assert float(stats.count[d]) == 12
        np.testing.assert_allclose(stats.mean[d], flat.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.var[d], flat.var(0), rtol=1e-5, atol=1e-6)

    # The whole stack under pmap: each device steps its own 3 cart-poles; the statistics are shared.
    env = envs.wrap(envs.make("cartpole"), num_envs=3, normalize_obs=True, axis_name="d")
    def run(key):
        state = env.reset(key)
        seen = [state.info["raw_obs"]["obs"]]
        for _ in range(4):
            state = env.step(state, jnp.ones(3, jnp.int32))
            seen.append(state.info["raw_obs"]["obs"])
        return state, jnp.stack(seen)
    state, seen = jax.pmap(run, axis_name="d")(jax.random.split(jax.random.PRNGKey(1), 2))
    seen = np.asarray(seen).reshape(-1, 4)
    for d in range(2):
        assert float(state.info["obs_stats"].count[d]) == len(seen) == 30
        np.testing.assert_allclose(state.info["obs_stats"].mean[d], seen.mean(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(state.info["obs_stats"].var[d], seen.var(0), rtol=1e-4, atol=1e-7)
    assert not np.allclose(state.obs[0], state.obs[1])  # the devices' environments differ
    print("ok")
""")


def test_update_stats_under_pmap_on_two_host_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", PMAP_SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


# ------------------------------------------------------------ observation normalisation


@pytest.fixture(scope="module")
def normalized_run():
    env = NormalizeObservation(AutoReset(Batch(TimeLimit(Countdown(), 4), 3)), clip=None)
    first, states = _run(env, jnp.ones((9, 3)), jax.random.PRNGKey(2))
    return env, first, states


def test_normalized_stats_equal_numpy_of_every_observation_seen(normalized_run):
    env, first, states = normalized_run
    raw = states.info["raw_obs"]["obs"]  # [T, B, 3]: what each step returned before normalising
    seen = np.concatenate([np.asarray(first.info["raw_obs"]["obs"]), np.asarray(raw).reshape(-1, 3)])
    for t in range(raw.shape[0]):
        stats_t = jax.tree_util.tree_map(lambda x: x[t], states.info["obs_stats"])
        _assert_stats_equal(stats_t, seen[: 3 * (t + 2)])
        np.testing.assert_allclose(states.obs[t], normalize(stats_t, raw[t]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(states.info["final_obs"][t],
                                   normalize(stats_t, states.info["raw_obs"]["final_obs"][t]), rtol=1e-5, atol=1e-5)
    # The inner environment still saw its own raw observations: Countdown's step count is intact.
    np.testing.assert_array_equal(states.info["raw_obs"]["final_obs"][:, :, 0] >= 1, True)


def test_frozen_normalization_and_with_stats(normalized_run):
    env, _, states = normalized_run
    trained = jax.tree_util.tree_map(lambda x: x[-1], states.info["obs_stats"])
    frozen = NormalizeObservation(env.env, update=False, clip=None)

    @jax.jit
    def evaluate(key):
        start = frozen.with_stats(frozen.reset(key), trained)
        return start, jax.lax.fori_loop(0, 3, lambda _, s: frozen.step(s, jnp.ones(3)), start)

    for state in evaluate(jax.random.PRNGKey(5)):
        chex.assert_trees_all_equal(state.info["obs_stats"], trained)
        np.testing.assert_allclose(state.obs, normalize(trained, state.info["raw_obs"]["obs"]), rtol=1e-6)
        np.testing.assert_allclose(state.info["final_obs"], normalize(trained, state.info["raw_obs"]["final_obs"]),
                                   rtol=1e-6)


# ------------------------------------------------------------------------------ wrap


def test_wrap_composes_the_documented_order():
    env = wrap(Countdown(), num_envs=2, normalize_obs=True)
    layers = [type(env).__name__]
    while isinstance(env, envs.Wrapper):
        env = env.env
        layers.append(type(env).__name__)
    assert layers == ["NormalizeObservation", "AutoReset", "Batch", "RescaleAction", "Countdown"]
    discrete = Countdown()
    discrete.spec = Spec(observation_shape=(3,), num_actions=2)
    assert type(wrap(discrete, num_envs=2).env.env) is Countdown  # no rescaling for discrete actions
    assert type(wrap(Countdown(), rescale_actions=False, auto_reset=False)) is Countdown
