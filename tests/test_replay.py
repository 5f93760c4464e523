"""fnrl.replay (issue 5): circular insertion, sampling only filled slots, n-step assembly by hand,
prioritised sampling frequencies, vmap over seeds."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnrl import replay
from fnrl.types import Transition


def transitions(values, obs_dim=2):
    """Transitions whose every field encodes ``values`` (float ``[*batch]``), to trace where they land."""
    values = jnp.asarray(values, jnp.float32)
    obs = jnp.repeat(values[..., None], obs_dim, axis=-1)
    return Transition(obs=obs, action=values.astype(jnp.int32), reward=values, termination=jnp.zeros_like(values),
                      truncation=jnp.zeros_like(values), next_obs=obs + 0.5, extras={"tag": values})


def one(value=0.0):
    return jax.tree_util.tree_map(lambda x: x[0], transitions([value]))


def test_init_allocates_empty_slots():
    state = replay.init(one(), capacity=7)
    chex.assert_shape([state.data.obs, state.data.next_obs], (7, 2))
    chex.assert_shape([state.data.reward, state.data.extras["tag"]], (7,))
    assert state.priority_tree is None  # uniform replay keeps no priorities
    assert state.data.action.dtype == jnp.int32
    assert int(state.size) == int(state.position) == 0 and state.capacity == 7
    chex.assert_shape(replay.init(one(), capacity=7, prioritized=True).priority_tree, (16,))  # 8 leaves


def test_circular_overwrite_order():
    """Capacity 5; insert 3, then 4 (a [2, 2] time-major batch, row-major order): the oldest two are
    overwritten, the write position wraps around."""
    state = replay.init(one(), capacity=5)
    state = jax.jit(replay.insert)(state, transitions([0.0, 1.0, 2.0]))
    assert int(state.size) == 3 and int(state.position) == 3
    state = jax.jit(replay.insert)(state, transitions([[3.0, 4.0], [5.0, 6.0]]))
    np.testing.assert_array_equal(state.data.reward, [5.0, 6.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(state.data.obs[:, 0], [5.0, 6.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(state.data.action, [5, 6, 2, 3, 4])
    assert int(state.size) == 5 and int(state.position) == 2


INSERT = jax.jit(replay.insert)
N_STEP = jax.jit(replay.n_step_transitions, static_argnums=(1, 2))
UPDATE = jax.jit(replay.update_priorities)


@settings(max_examples=30)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=8), st.integers(1, 6))
def test_buffer_holds_the_last_capacity_items_in_fifo_slots(batches, capacity):
    state, stream = replay.init(one(), capacity), []
    for size in batches:
        if size > capacity:
            continue
        values = np.arange(len(stream), len(stream) + size, dtype=np.float32)
        stream += values.tolist()
        state = INSERT(state, transitions(values))
    kept = stream[-capacity:]
    assert int(state.size) == len(kept)
    expected = {len(stream) - len(kept) + j: v for j, v in enumerate(kept)}  # stream index -> value
    for index, value in expected.items():
        assert float(state.data.reward[index % capacity]) == value


def test_sample_draws_only_filled_slots_uniformly():
    state = replay.insert(replay.init(one(), capacity=100), transitions(jnp.arange(10.0) + 1.0))
    batch, indices = jax.jit(replay.sample, static_argnums=2)(state, jax.random.PRNGKey(0), 20_000)
    assert int(indices.max()) <= 9 and int(indices.min()) >= 0
    np.testing.assert_array_equal(batch.reward, np.asarray(indices) + 1.0)  # the rows of those slots
    counts = np.bincount(np.asarray(indices), minlength=10) / 20_000
    np.testing.assert_allclose(counts, 0.1, atol=0.01)


def test_prioritized_sampling_frequencies_and_weights():
    """P(i) = p_i^α / Σ p^α over the filled slots (the empty ones never), and
    w_i = (N P(i))^-β / max w."""
    priorities = jnp.array([1.0, 2.0, 3.0, 4.0])
    alpha, beta = 0.7, 0.5
    state = replay.insert(replay.init(one(), capacity=6, prioritized=True), transitions(jnp.arange(4.0)))
    state = replay.update_priorities(state, jnp.arange(4), priorities, alpha)
    sample = jax.jit(replay.sample_prioritized, static_argnums=2)
    _, indices, weights = sample(state, jax.random.PRNGKey(1), 40_000, beta)
    expected = priorities**alpha / jnp.sum(priorities**alpha)
    counts = np.bincount(np.asarray(indices), minlength=6) / 40_000
    np.testing.assert_allclose(counts[:4], expected, atol=0.01)
    assert counts[4] == counts[5] == 0
    raw = (4 * expected) ** -beta
    np.testing.assert_allclose(weights, raw[np.asarray(indices)] / raw.max(), rtol=1e-5)
    # alpha = 0 is uniform with unit weights.
    state = replay.update_priorities(state, jnp.arange(4), priorities, 0.0)
    _, indices, weights = sample(state, jax.random.PRNGKey(2), 40_000, 1.0)
    np.testing.assert_allclose(np.bincount(np.asarray(indices)) / 40_000, 0.25, atol=0.01)
    np.testing.assert_allclose(weights, 1.0, rtol=1e-6)


def leaves(state):
    """The sum-tree's leaves p_i^α, one per slot."""
    tree = state.priority_tree
    return tree[tree.shape[0] // 2:][: state.capacity]


def test_new_transitions_get_the_largest_priority_so_far():
    state = replay.insert(replay.init(one(), capacity=4, prioritized=True), transitions([0.0, 1.0]))
    np.testing.assert_allclose(leaves(state), [1.0, 1.0, 0.0, 0.0])  # max_priority starts at 1
    state = replay.update_priorities(state, jnp.array([0, 1]), jnp.array([0.25, 9.0]), 0.5)
    state = replay.insert(state, transitions([2.0]))
    np.testing.assert_allclose(leaves(state), [0.5, 3.0, 3.0, 0.0])


@settings(max_examples=30)
@given(st.sampled_from([1, 5, 8, 33]),
       st.lists(st.tuples(st.integers(0, 39), st.floats(0.0, 10.0, width=32, allow_subnormal=False)),
                min_size=6, max_size=6))
def test_sum_tree_keeps_every_node_the_sum_of_its_children(capacity, writes):
    state = replay.init(one(), capacity, prioritized=True)
    state = INSERT(state, transitions(jnp.zeros(capacity)))
    slots = jnp.array([slot % capacity for slot, _ in writes])
    state = UPDATE(state, slots, jnp.array([p for _, p in writes]), 1.0)
    tree, half = np.asarray(state.priority_tree), state.priority_tree.shape[0] // 2
    np.testing.assert_allclose(tree[1:half], tree[2:2 * half:2] + tree[3:2 * half:2], rtol=1e-5, atol=1e-5)
    assert np.all(tree[half + capacity:] == 0)  # leaves past the capacity stay empty: never sampled
    for slot in {s % capacity for s, _ in writes}:  # a repeated slot keeps one of its values
        assert tree[half + slot] in {np.float32(q) for s, q in writes if s % capacity == slot}


def test_prioritized_sampling_never_draws_an_empty_slot():
    state = replay.init(one(), capacity=1000, prioritized=True)
    state = replay.insert(state, transitions(jnp.arange(3.0)))
    state = replay.update_priorities(state, jnp.arange(3), jnp.array([1e-6, 5.0, 1e-6]), 1.0)
    _, indices, weights = replay.sample_prioritized(state, jax.random.PRNGKey(0), 5000, 1.0)
    assert int(indices.max()) <= 2 and np.all(np.isfinite(weights))


def test_vmap_over_seeds_keeps_one_buffer_each():
    def run(key):
        state = replay.init(one(), capacity=8)
        values = jax.random.uniform(key, (3, 2))
        state = replay.insert(state, transitions(values))
        batch, _ = replay.sample(state, key, 5)
        return state, batch, values

    states, batches, values = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(0), 4))
    chex.assert_shape(states.data.obs, (4, 8, 2))
    chex.assert_shape(batches.reward, (4, 5))
    for s in range(4):  # each seed samples only its own values
        assert set(np.asarray(batches.reward[s]).tolist()) <= set(np.asarray(values[s]).ravel().tolist())
        np.testing.assert_array_equal(states.data.reward[s, :6], np.asarray(values[s]).ravel())


def test_n_step_assembly_by_hand():
    """T=6, n=3, γ=0.5, one env. Episode A ends by termination at t=1; episode B runs t=2..4 and
    is truncated at t=4 (its final obs 14 is bootstrapped, not the next episode's first obs);
    episode C starts at t=5."""
    reward = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    term = jnp.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    trunc = jnp.array([0.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    obs = jnp.arange(6.0)[:, None]
    next_obs = (jnp.arange(6.0) + 10.0)[:, None]  # s'_t = 10 + t (the final obs where an episode ends)
    traj = Transition(obs=obs, action=jnp.arange(6), reward=reward, termination=term, truncation=trunc,
                      next_obs=next_obs, extras={"log_prob": -jnp.arange(6.0)})
    out = jax.jit(replay.n_step_transitions, static_argnums=1)(traj, 3, 0.5)
    # t=0: 1 + .5*2 (terminated at t=1)              m=2, term, next 11
    # t=1: 2                                          m=1, term, next 11
    # t=2: 3 + .5*4 + .25*5 (truncated at t=4)        m=3, trunc, next 14
    # t=3: 4 + .5*5 (truncated at t=4)                m=2, trunc, next 14
    np.testing.assert_allclose(out.reward, [2.0, 2.0, 6.25, 6.5])
    np.testing.assert_array_equal(out.extras["n_steps"], [2, 1, 3, 2])
    np.testing.assert_array_equal(out.termination, [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(out.truncation, [0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(out.next_obs[:, 0], [11.0, 11.0, 14.0, 14.0])
    np.testing.assert_array_equal(out.obs[:, 0], [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out.action, [0, 1, 2, 3])
    np.testing.assert_array_equal(out.extras["log_prob"], [0.0, -1.0, -2.0, -3.0])
    # The bootstrap weight γ^m (1 − term): 0 after a termination, γ^m after a truncation.
    np.testing.assert_allclose(0.5 ** out.extras["n_steps"] * (1 - out.termination), [0.0, 0.0, 0.125, 0.25])


@settings(max_examples=30)
@given(st.integers(1, 5), st.integers(0, 10_000))
def test_n_step_matches_the_estimator_and_is_identity_for_n_1(n, seed):
    """With next values V(s') = c·s', G + γ^m (1 − term) V(s'_{t+m−1}) is the n-step return of
    :func:`fnrl.estimators.n_step_returns` (a different implementation); n=1 returns the steps."""
    from fnrl.estimators import n_step_returns

    T, B, gamma = 9, 3, 0.9
    k = jax.random.split(jax.random.PRNGKey(seed), 4)
    done = jax.random.bernoulli(k[0], 0.3, (T, B)).astype(jnp.float32)
    is_term = jax.random.bernoulli(k[1], 0.5, (T, B)).astype(jnp.float32)
    traj = Transition(obs=jax.random.normal(k[2], (T, B, 1)), action=jnp.zeros((T, B), jnp.int32),
                      reward=jax.random.normal(k[3], (T, B)), termination=done * is_term,
                      truncation=done * (1 - is_term), next_obs=jax.random.normal(k[2], (T, B, 1)) + 3.0)
    out = N_STEP(traj, n, gamma)
    values = 2.0 * traj.next_obs[..., 0]
    expected = n_step_returns(traj.reward, values, traj.termination, traj.truncation, gamma, n)[: T - n + 1]
    got = out.reward + gamma ** out.extras["n_steps"] * (1 - out.termination) * 2.0 * out.next_obs[..., 0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if n == 1:
        for field in ("obs", "action", "reward", "termination", "truncation", "next_obs"):
            np.testing.assert_array_equal(getattr(out, field), getattr(traj, field))


def test_bad_input_names_the_argument():
    state = replay.init(one(), capacity=3)
    with pytest.raises(ValueError, match="capacity"):
        replay.init(one(), capacity=0)
    with pytest.raises(ValueError, match="cannot insert 4 transitions into a buffer of capacity 3"):
        replay.insert(state, transitions(jnp.arange(4.0)))
    with pytest.raises(ValueError, match="every leaf of `transitions`"):
        replay.insert(state, transitions(jnp.arange(2.0), obs_dim=3))
    with pytest.raises(ValueError, match="batch_size"):
        replay.sample(state, jax.random.PRNGKey(0), 0)
    with pytest.raises(ValueError, match="prioritized=True"):
        replay.sample_prioritized(state, jax.random.PRNGKey(0), 2, 0.4)
    prioritized = replay.init(one(), capacity=3, prioritized=True)
    with pytest.raises(ValueError, match="beta"):
        replay.sample_prioritized(prioritized, jax.random.PRNGKey(0), 2, 1.5)
    with pytest.raises(AssertionError, match="indices"):
        replay.update_priorities(prioritized, jnp.zeros((2, 2), jnp.int32), jnp.ones((2, 2)), 0.6)
    traj = transitions(jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="no full 3-step window"):
        replay.n_step_transitions(traj, 3, 0.9)
    with pytest.raises(ValueError, match="`n`"):
        replay.n_step_transitions(traj, 0, 0.9)
