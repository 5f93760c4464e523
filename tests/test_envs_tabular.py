"""Tabular MDPs (envs/tabular.py): exact solvers against closed forms, the Bellman equations,
Monte-Carlo rollouts of the environment itself (reset/step under jit + vmap) and properties of
random MDPs."""
import collections
import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import fnrl.envs
from fnrl.envs import tabular as T

ENVS = {
    "random_mdp": lambda: T.random_mdp(num_states=6, num_actions=3, discount=0.9, seed=1),
    "chain": lambda: T.chain(discount=0.9),
    "gridworld": lambda: T.gridworld(discount=0.9),
}


def _random_policy(seed, num_states, num_actions, batch=()):
    """π(·|s) ~ Dirichlet(1) for every state (numpy: test inputs cost no compilation)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(num_actions), size=batch + (num_states,)).astype(np.float32)


def _test_policy(env, seed):
    """Half optimal, half random: reaches the rewarding states often enough that Monte-Carlo
    returns are not dominated by rare events (their sample standard error is then reliable)."""
    num_states, num_actions = env.spec.observation_shape[0], env.spec.num_actions
    return 0.5 * np.asarray(_value_iteration(env.mdp).policy) + 0.5 * _random_policy(seed, num_states, num_actions)


@functools.partial(jax.jit, static_argnums=(0, 6, 7))
def _monte_carlo(env, use_reset, start, first_policy, policy, key, num_episodes, horizon):
    """Rolls ``env`` out (reset/step under jit + vmap) and returns per episode s_0, a_0, the
    discounted return Σ_t γ^t r_t and the discounted visitation (1 − γ) Σ_t γ^t onehot(s_t).

    s_0 comes from ``env.reset`` if ``use_reset`` else from ``start`` [S] (set through
    ``state.internal = (s, key)``); a_0 ~ first_policy(s_0), then a_t ~ policy(s_t). The
    arguments are traced, so each environment compiles this once.
    """
    gamma = env.mdp.discount

    def episode(key):
        k_reset, k_start, k_first, key = jax.random.split(key, 4)
        state = env.reset(k_reset)
        s0 = jnp.where(use_reset, jnp.argmax(state.obs), jax.random.categorical(k_start, jnp.log(start)))
        state = state.replace(obs=jax.nn.one_hot(s0, start.shape[0]), internal=(s0, state.internal[1]))
        a0 = jax.random.categorical(k_first, jnp.log(first_policy[s0])).astype(jnp.int32)

        def body(carry, key):
            state, action, discount, ret, visits = carry
            next_state = env.step(state, action)
            next_action = jax.random.categorical(key, jnp.log(policy[jnp.argmax(next_state.obs)])).astype(jnp.int32)
            ret, visits = ret + discount * next_state.reward, visits + discount * state.obs
            return (next_state, next_action, discount * gamma, ret, visits), None

        init = (state, a0, jnp.float32(1), jnp.float32(0), jnp.zeros_like(state.obs))
        (_, _, _, ret, visits), _ = jax.lax.scan(body, init, jax.random.split(key, horizon))
        return s0, a0, ret, (1 - gamma) * visits

    return jax.vmap(episode)(jax.random.split(key, num_episodes))


def _assert_mc_means(samples, expected, num_se=4.0):
    """Each 1-D array of ``samples`` has its mean within ``num_se`` standard errors of the
    matching entry of ``expected`` (plus float32 slack)."""
    expected = np.ravel(expected)
    assert len(samples) == len(expected)
    for i, (x, value) in enumerate(zip(samples, expected)):
        se = np.std(x, ddof=1) / np.sqrt(len(x))
        assert abs(np.mean(x) - value) <= num_se * se + 1e-5 * (1 + abs(value)), (i, np.mean(x), value, se)


def _bellman_q(mdp, v):
    """r(s, a) + γ Σ_s' P(s'|s, a) v(s'), in numpy float64."""
    p, r = np.asarray(mdp.transitions, np.float64), np.asarray(mdp.rewards, np.float64)
    if r.ndim == 3:
        r = np.sum(p * r, -1)
    return r + float(mdp.discount) * p @ np.asarray(v, np.float64)


# Jitted once per module (and per shape), shared by the tests below.
_value_iteration = jax.jit(T.value_iteration)
_policy_evaluation = jax.jit(T.policy_evaluation)
_state_occupancy = jax.jit(T.state_occupancy)
_evaluate_policies = jax.jit(jax.vmap(T.policy_evaluation, (None, 0)))


@pytest.fixture(scope="module", params=sorted(ENVS))
def env(request):
    return ENVS[request.param]()


def _rollouts(env, use_reset, start, first_policy, policy, seed):
    num_states, num_actions = policy.shape
    horizon = int(np.ceil(np.log(1e-6) / np.log(float(env.mdp.discount))))  # γ^H ≤ 1e-6
    out = _monte_carlo(env, use_reset, start, first_policy, policy, jax.random.PRNGKey(seed),
                       400 * num_states * num_actions, horizon)
    return tuple(map(np.asarray, out))


def test_q_values_match_monte_carlo_from_every_state_action(env):
    """Q^π(s, a) from the linear solve = mean discounted return after starting in s (uniform),
    taking a (uniform), then following a stochastic π: within 4 standard errors for every (s, a)."""
    num_states, num_actions = env.spec.observation_shape[0], env.spec.num_actions
    policy = _test_policy(env, seed=0)
    uniform_states = jnp.full(num_states, 1 / num_states, jnp.float32)
    uniform_actions = jnp.full((num_states, num_actions), 1 / num_actions, jnp.float32)
    s0, a0, returns, _ = _rollouts(env, False, uniform_states, uniform_actions, policy, seed=1)
    q = np.asarray(_policy_evaluation(env.mdp, policy).q)
    group = s0 * num_actions + a0
    _assert_mc_means([returns[group == g] for g in range(q.size)], q)


def test_value_and_occupancy_match_monte_carlo_from_the_initial_distribution(env):
    """Episodes from the env's own reset (μ₀) under π: mean return = μ₀ᵀV^π and mean discounted
    visitation = d^π, within 4 standard errors; d^π is a distribution."""
    policy = _test_policy(env, seed=2)
    _, _, returns, visits = _rollouts(env, True, env.mdp.initial, policy, policy, seed=3)
    v = _policy_evaluation(env.mdp, policy).v
    d = np.asarray(_state_occupancy(env.mdp, policy))
    _assert_mc_means([returns], env.mdp.initial @ v)
    _assert_mc_means(list(visits.T), d)
    np.testing.assert_allclose(d.sum(), 1.0, rtol=1e-5)
    assert np.all(d >= -1e-7)


def test_value_iteration_is_optimal(env):
    """V* satisfies the Bellman optimality equation, its greedy policy attains it, and no random
    policy (stochastic, 64 of them) beats it in any state."""
    mdp = env.mdp
    solution = _value_iteration(mdp)
    scale = 1 + np.abs(solution.v).max()
    np.testing.assert_allclose(solution.q, _bellman_q(mdp, solution.v), atol=1e-5 * scale)
    np.testing.assert_allclose(solution.v, _bellman_q(mdp, solution.v).max(-1), atol=1e-5 * scale)
    # The policy is deterministic and greedy (its action attains max_a Q*, up to ties).
    np.testing.assert_array_equal(solution.policy.max(-1), 1.0)
    np.testing.assert_allclose(jnp.sum(solution.policy * solution.q, -1), solution.v, atol=1e-5 * scale)
    num_states, num_actions = solution.q.shape
    policies = _random_policy(4, num_states, num_actions, batch=(64,))
    assert np.all(_evaluate_policies(mdp, policies).v <= solution.v + 1e-5 * scale)


def test_chain_optimal_policy_is_always_forward():
    """Strens (2000): with slip 0.2 and γ = 0.99 the optimal policy is to always move forward."""
    solution = _value_iteration(T.chain().mdp)
    np.testing.assert_array_equal(np.argmax(solution.policy, -1), 1)


@pytest.mark.parametrize("num_states,gamma", [(2, 0.5), (5, 0.9), (7, 0.99)])
def test_chain_closed_forms_without_slip(num_states, gamma):
    """slip = 0: always-forward V(s) = γ^(n−1−s) L / (1−γ); always-back V(s) = small / (1−γ)."""
    mdp = T.chain(num_states=num_states, slip=0.0, discount=gamma).mdp
    s = np.arange(num_states)
    forward = _policy_evaluation(mdp, jnp.tile(jnp.array([0.0, 1.0]), (num_states, 1)))
    back = _policy_evaluation(mdp, jnp.tile(jnp.array([1.0, 0.0]), (num_states, 1)))
    np.testing.assert_allclose(forward.v, gamma ** (num_states - 1 - s) * 10.0 / (1 - gamma), rtol=1e-4)
    np.testing.assert_allclose(back.v, np.full(num_states, 2.0 / (1 - gamma)), rtol=1e-4)
    # Q^π(s, a) = r(s, a) + γ V^π(s'): going back from anywhere under "always back".
    np.testing.assert_allclose(back.q[:, 0], 2.0 + gamma * back.v[0], rtol=1e-4)


def _shortest_distances(layout):
    """Breadth-first search from the goals over free cells; distances in row-major free-cell order."""
    cells = [(r, c) for r, row in enumerate(layout) for c, ch in enumerate(row) if ch != "#"]
    free = set(cells)
    dist = {cell: 0 for cell in cells if layout[cell[0]][cell[1]] == "G"}
    queue = collections.deque(dist)
    while queue:
        r, c = queue.popleft()
        for nxt in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if nxt in free and nxt not in dist:
                dist[nxt] = dist[(r, c)] + 1
                queue.append(nxt)
    return np.array([dist[cell] for cell in cells])


@pytest.mark.parametrize("layout", [T.DEFAULT_GRID, ("S..#", ".#..", "...G"), ("SG",), T.DYNA_MAZE])
def test_deterministic_gridworld_values_are_discounted_distances(layout):
    """slip = 0, reward 1 on reaching the goal: V*(s) = γ^(d(s) − 1), V*(goal) = 0."""
    gamma = 0.9
    solution = _value_iteration(T.gridworld(layout, slip=0.0, discount=gamma).mdp)
    d = _shortest_distances(layout)
    # atol: V(goal) = 0 comes out of a float32 linear solve (-1.3e-7 for the Dyna maze's 47 states).
    np.testing.assert_allclose(solution.v, np.where(d == 0, 0.0, gamma ** (d - 1.0)), rtol=1e-5, atol=1e-6)


def test_the_dyna_maze_is_fourteen_steps_from_start_to_goal():
    env = fnrl.envs.make("tabular/dyna_maze")
    assert env.unwrapped.name == "tabular/dyna_maze" and float(env.mdp.discount) == np.float32(0.95)
    start = int(np.argmax(env.mdp.initial))
    assert _shortest_distances(T.DYNA_MAZE)[start] == 14
    # It can be made while tracing, as every member of a sweep (`fnrl train --seeds`) makes its own.
    assert jax.eval_shape(lambda: fnrl.envs.make("tabular/dyna_maze").mdp.initial).shape == (47,)


def test_terminal_state_flags_and_absorbs():
    env = T.gridworld(("SG",), slip=0.0)
    step = jax.jit(env.step)
    state = env.reset(jax.random.PRNGKey(0))
    state = state.replace(info={"carried": jnp.int32(7)})
    np.testing.assert_array_equal(state.obs, [1.0, 0.0])
    rewards, flags, obs = [], [], []
    for action in (1, 1, 3):  # right into the goal, then keep acting: nothing moves
        state = step(state, jnp.int32(action))
        rewards.append(float(state.reward))
        flags.append(float(state.termination))
        obs.append(np.asarray(state.obs))
    assert rewards == [1.0, 0.0, 0.0] and flags == [1.0, 1.0, 1.0]
    np.testing.assert_array_equal(obs, [[0.0, 1.0]] * 3)
    assert int(state.info["carried"]) == 7 and float(state.truncation) == 0.0


def test_rewards_given_as_r_s_a_are_paid_as_given():
    mdp = T.random_mdp(num_states=3, num_actions=2).mdp
    rewards = np.arange(6, dtype=np.float32).reshape(3, 2)
    env = T.TabularEnv(mdp._replace(rewards=rewards))
    keys = jax.random.split(jax.random.PRNGKey(0), 60)
    actions = jnp.arange(60, dtype=jnp.int32) % 2

    @jax.jit
    def step(keys, actions):
        state = jax.vmap(env.reset)(keys)
        return state, jax.vmap(env.step)(state, actions)

    before, after = step(keys, actions)
    np.testing.assert_array_equal(after.reward, rewards[np.argmax(before.obs, -1), actions])


# --- properties of random MDPs -------------------------------------------------------------

@jax.jit
def _solve_all(mdp, policy):
    return T.value_iteration(mdp), T.policy_evaluation(mdp, policy), T.state_occupancy(mdp, policy)


@settings(max_examples=30, deadline=None)
@given(
    shape=st.sampled_from([(1, 2), (4, 3)]),
    reward_rank=st.sampled_from([2, 3]),
    gamma=st.floats(0.0, 0.97),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_mdp_identities(shape, reward_rank, gamma, seed):
    """For any MDP and policy: d^π is a distribution; μ₀ᵀV^π = Σ_s d^π(s) r_π(s) / (1 − γ);
    Σ_a π(a|s) Q^π(s, a) = V^π(s); V^π ≤ V* = max_a Q*."""
    num_states, num_actions = shape
    rng = np.random.default_rng(seed)
    mdp = T.MDP(
        transitions=jnp.asarray(rng.dirichlet(np.full(num_states, 0.5), (num_states, num_actions)), jnp.float32),
        rewards=jnp.asarray(rng.normal(size=(num_states, num_actions, num_states)[:reward_rank]), jnp.float32),
        initial=jnp.asarray(rng.dirichlet(np.ones(num_states)), jnp.float32),
        discount=jnp.float32(gamma),
        terminal=jnp.zeros(num_states, bool),
    )
    policy = jnp.asarray(rng.dirichlet(np.ones(num_actions), num_states), jnp.float32)
    optimal, evaluation, d = _solve_all(mdp, policy)
    scale = 1 / (1 - gamma)
    np.testing.assert_allclose(d.sum(), 1.0, rtol=1e-5)
    assert np.all(d >= -1e-6)
    r = mdp.rewards if reward_rank == 2 else jnp.sum(mdp.transitions * mdp.rewards, -1)
    r_pi = jnp.sum(policy * r, -1)
    np.testing.assert_allclose(mdp.initial @ evaluation.v, d @ r_pi / (1 - gamma), atol=1e-4 * scale)
    np.testing.assert_allclose(jnp.sum(policy * evaluation.q, -1), evaluation.v, atol=1e-4 * scale)
    np.testing.assert_allclose(optimal.v, optimal.q.max(-1), atol=1e-4 * scale)
    assert np.all(evaluation.v <= optimal.v + 1e-4 * scale)


# --- registry, specs and errors -------------------------------------------------------------

@pytest.mark.parametrize("name,num_states,num_actions,limit", [
    ("tabular/random_mdp", 10, 3, 100),
    ("tabular/chain", 5, 2, 1000),
    ("tabular/gridworld", 20, 4, 100),
    ("tabular/dyna_maze", 47, 4, 2000),
])
def test_make_gives_spec_mdp_and_one_hot_observations(name, num_states, num_actions, limit):
    env = fnrl.envs.make(name)
    assert env.spec.observation_shape == (num_states,) and env.spec.num_actions == num_actions
    assert env.max_episode_steps == limit
    assert env.mdp.transitions.shape == (num_states, num_actions, num_states)  # through the wrapper
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 3))
    assert states.obs.dtype == jnp.float32 and states.obs.shape == (3, num_states)
    np.testing.assert_array_equal(states.obs.sum(-1), 1.0)
    states = jax.jit(jax.vmap(env.step))(states, jnp.zeros(3, jnp.int32))
    np.testing.assert_array_equal(states.obs.sum(-1), 1.0)
    np.testing.assert_array_equal(states.info["steps"], 1)


def test_bad_mdps_fail_with_one_line_errors():
    good = T.random_mdp(num_states=3, num_actions=2).mdp
    cases = [
        (good._replace(transitions=good.transitions * 2), "row P\\[s, a, :\\] summing to 1"),
        (good._replace(initial=jnp.array([0.5, 0.5, 0.5])), "mdp.initial must be a probability vector"),
        (good._replace(discount=1.0), "mdp.discount must be in \\[0, 1\\)"),
        (good._replace(terminal=jnp.array([True, False, False])), "terminal states must be absorbing"),
    ]
    for mdp, message in cases:
        with pytest.raises(ValueError, match=message):
            T.TabularEnv(mdp)
    with pytest.raises(AssertionError, match="mdp.transitions must be"):
        T.policy_evaluation(good._replace(transitions=good.transitions[0]), jnp.ones((3, 2)) / 2)
    with pytest.raises(AssertionError, match="policy must be"):
        T.state_occupancy(good, jnp.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="gridworld layout"):
        T.gridworld(("S.", "..G"))
    with pytest.raises(ValueError, match="num_states >= 2"):
        T.chain(num_states=1)
    env = T.chain()
    with pytest.raises(AssertionError, match="tabular/chain: the action must be an int32 scalar"):
        env.step(env.reset(jax.random.PRNGKey(0)), jnp.float32(1))
