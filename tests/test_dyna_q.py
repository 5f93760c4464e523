"""Tabular Dyna-Q (fnrl.algorithms.dyna_q): its updates by hand on a 2-state MDP, K = 0 is exactly
tabular Q-learning on the real transitions, and on a deterministic gridworld the greedy policy
reaches the optimal value (exact, by value iteration), sooner with planning than without."""
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import envs
from fnrl.algorithms import dyna_q
from fnrl.envs.tabular import policy_evaluation, value_iteration
from fnrl.types import Trajectory

SPEC = envs.Spec(observation_shape=(2,), num_actions=2)  # two states, two actions
CONFIG = dyna_q.Config(gamma=0.9, learning_rate=0.5)
GRID = "tabular/gridworld(slip=0.0)"  # the default 5 x 5 grid, deterministic: V*(start) = 0.95^7


def _model(*transitions):
    """A model that has seen each ``(s, a, s', r, term, count)``."""
    counts, rewards, terms = (np.zeros((2, 2, 2), np.float32) for _ in range(3))
    for s, a, s_next, r, term, n in transitions:
        counts[s, a, s_next] += n
        rewards[s, a, s_next] += n * r
        terms[s, a, s_next] += n * term
    return dyna_q.Model(jnp.asarray(counts), jnp.asarray(rewards), jnp.asarray(terms))


Q = jnp.array([[0.0, 0.5], [1.0, 2.0]])


def _config(**changes):
    return dataclasses.replace(CONFIG, **changes)


def test_planning_updates_by_hand_on_a_two_state_mdp():
    key = jax.random.PRNGKey(0)
    # Only (0, 1) -> 1 with r = 1 was seen: Q(0, 1) <- 0.5 + 0.5 (1 + 0.9 * 2 - 0.5) = 1.65, then
    # 1.65 + 0.5 (2.8 - 1.65) = 2.225; nothing else changes.
    learner = dyna_q.Learner(Q, _model((0, 1, 1, 1.0, 0.0, 1)))
    for k, value in ((1, 1.65), (2, 2.225)):
        planned = dyna_q.plan(_config(planning_steps=k), learner, key).q
        np.testing.assert_allclose(planned, [[0.0, value], [1.0, 2.0]], rtol=1e-6)
    # A terminal transition does not bootstrap: Q(1, 0) <- 1 + 0.5 (3 - 1) = 2.
    learner = dyna_q.Learner(Q, _model((1, 0, 0, 3.0, 1.0, 1)))
    np.testing.assert_allclose(dyna_q.plan(_config(planning_steps=1), learner, key).q,
                               [[0.0, 0.5], [2.0, 2.0]], rtol=1e-6)
    # An empty model plans nothing; K = 0 plans nothing.
    assert np.array_equal(dyna_q.plan(_config(planning_steps=3), dyna_q.Learner(Q, _model()), key).q, Q)
    assert np.array_equal(dyna_q.plan(_config(planning_steps=0), learner, key).q, Q)


def test_planning_samples_a_seen_state_then_a_seen_action_and_the_next_state_by_counts():
    # Seen: (0, 0) -> 0, (0, 1) -> 0 (once, r = 0) or 1 (3 times, r = 1), (1, 0) -> 1. One planning
    # update per key: state 0 or 1 with probability 1/2 each, then an action taken there uniformly
    # (so (0, 0) and (0, 1) 1/4 each, (1, 0) 1/2), and for (0, 1) s' = 1 with probability 3/4.
    model = _model((0, 0, 0, 0.0, 0.0, 1), (0, 1, 0, 0.0, 0.0, 1), (0, 1, 1, 1.0, 0.0, 3), (1, 0, 1, 0.0, 0.0, 1))
    config = _config(planning_steps=1)
    q = jax.vmap(lambda k: dyna_q.plan(config, dyna_q.Learner(Q, model), k).q)(
        jax.random.split(jax.random.PRNGKey(1), 8000))
    changed = np.asarray(q != Q)
    assert changed.sum(axis=(1, 2)).max() == 1 and not changed[:, 1, 1].any()
    np.testing.assert_allclose(changed.mean(0), [[0.25, 0.25], [0.5, 0.0]], atol=0.02)
    # Q(0, 1) moved to 0.5 + 0.5 (1 + 0.9 * 2 - 0.5) = 1.65 (s' = 1) or 0.5 + 0.5 (0 + 0.9 * 0.5 - 0.5) = 0.475.
    moved = np.asarray(q[:, 0, 1])[changed[:, 0, 1]]
    high, low = np.isclose(moved, 1.65, rtol=1e-6), np.isclose(moved, 0.475, rtol=1e-6)
    assert np.all(high | low)
    np.testing.assert_allclose(np.mean(high), 0.75, atol=0.03)


def _one_hot(states):
    return jax.nn.one_hot(jnp.asarray(states)[:, None], 2)  # [T, B = 1, 2]


def test_observe_is_q_learning_in_order_with_termination_and_truncation_and_counts_the_model():
    agent = dyna_q.make_agent(CONFIG, SPEC)
    learner = dyna_q.Learner(Q, _model())
    # s a r s' term trunc: a step, a terminal step (no bootstrap), a truncated one (bootstraps
    # from its final state) and the first step again, which sees the updates before it.
    steps = [(0, 1, 1.0, 1, 0.0, 0.0), (1, 0, 3.0, 0, 1.0, 0.0), (1, 1, 0.0, 0, 0.0, 1.0), (0, 1, 1.0, 1, 0.0, 0.0)]
    s, a, r, s_next, term, trunc = (np.array(x) for x in zip(*steps))
    trajectory = Trajectory(obs=_one_hot(s), action=jnp.asarray(a, jnp.int32)[:, None],
                            reward=jnp.asarray(r, jnp.float32)[:, None], termination=jnp.asarray(term, jnp.float32)[:, None],
                            truncation=jnp.asarray(trunc, jnp.float32)[:, None], next_obs=_one_hot(s_next))
    learned, same = agent.observe(learner, trajectory, jax.random.PRNGKey(0))
    assert same is trajectory
    # Q(0,1): 0.5 + 0.5 (1 + 0.9 * 2 - 0.5) = 1.65;  Q(1,0): 1 + 0.5 (3 - 1) = 2;
    # Q(1,1): 2 + 0.5 (0 + 0.9 * max(0, 1.65) - 2) = 1.7425;  Q(0,1): 1.65 + 0.5 (1 + 0.9 * 2 - 1.65) = 2.225.
    np.testing.assert_allclose(learned.q, [[0.0, 2.225], [2.0, 1.7425]], rtol=1e-6)
    counts = np.zeros((2, 2, 2))
    counts[0, 1, 1], counts[1, 0, 0], counts[1, 1, 0] = 2, 1, 1
    np.testing.assert_array_equal(learned.model.counts, counts)
    rewards, terminations = np.zeros((2, 2, 2)), np.zeros((2, 2, 2))
    rewards[0, 1, 1], rewards[1, 0, 0], terminations[1, 0, 0] = 2.0, 3.0, 1.0
    np.testing.assert_array_equal(learned.model.reward_sums, rewards)
    np.testing.assert_array_equal(learned.model.termination_sums, terminations)


def test_acting_greedy_breaks_ties_low_exploring_breaks_them_at_random():
    agent = dyna_q.make_agent(_config(epsilon=0.0), SPEC)
    learner = dyna_q.Learner(jnp.array([[1.0, 1.0], [0.0, 2.0]]), _model())
    obs = jax.nn.one_hot(jnp.array([0, 1]), 2)
    assert agent.act(learner, obs, jax.random.PRNGKey(0), False)[0].tolist() == [0, 1]
    actions = jax.vmap(lambda k: agent.act(learner, obs, k, True)[0])(jax.random.split(jax.random.PRNGKey(0), 2000))
    np.testing.assert_allclose(np.mean(actions[:, 0]), 0.5, atol=0.05)  # a tie in state 0
    assert np.all(actions[:, 1] == 1)


@functools.cache
def _run(planning_steps: int, steps: int = 1500):
    """Dyna-Q with ``planning_steps`` on GRID from PRNGKey(0), chunk by chunk: the final carry, and
    the environment steps and the exact value V^π(start) of the greedy policy after each chunk."""
    config = dyna_q.Config(env=GRID, total_steps=steps, planning_steps=planning_steps, num_evals=50,
                           buffer_size=steps)
    train = dyna_q.make_train(config)
    mdp = envs.make(GRID).unwrapped.mdp
    advance = jax.jit(train.advance)

    @jax.jit
    def greedy_value(q):
        return policy_evaluation(mdp, jax.nn.one_hot(jnp.argmax(q, axis=-1), q.shape[1])).v @ mdp.initial

    carry, values = train.init(jax.random.PRNGKey(0)), []
    for _ in range(train.num_chunks):
        carry, _ = advance(carry)
        values.append(float(greedy_value(carry.learner.q)))
    return carry, train.step(np.arange(1, train.num_chunks + 1)), np.array(values)


def _steps_to_optimal(planning_steps: int) -> int:
    mdp = envs.make(GRID).unwrapped.mdp
    optimal = float(value_iteration(mdp).v @ mdp.initial)
    _, steps, values = _run(planning_steps)
    reached = np.flatnonzero(values >= optimal - 1e-5)
    return int(steps[reached[0]]) if reached.size else np.inf


def test_without_planning_it_is_exactly_tabular_q_learning_on_the_real_transitions():
    carry, _, _ = _run(0)
    buffer = carry.data
    size = int(buffer.size)
    assert size == 1500
    t = jax.tree_util.tree_map(lambda x: np.asarray(x[:size]), buffer.data)
    s, s_next = t.obs.argmax(-1), t.next_obs.argmax(-1)
    assert t.termination.sum() > 0 and t.truncation.sum() > 0  # both kinds of episode end happened
    q = np.zeros(carry.learner.q.shape, np.float32)
    for i in range(size):  # Watkins's update, in numpy, in the order the steps were taken
        target = t.reward[i] + np.float32(0.95) * (1 - t.termination[i]) * q[s_next[i]].max()
        q[s[i], t.action[i]] += np.float32(0.1) * (target - q[s[i], t.action[i]])
    np.testing.assert_allclose(carry.learner.q, q, rtol=1e-5, atol=1e-6)
    counts = np.zeros(carry.learner.model.counts.shape)
    np.add.at(counts, (s, t.action, s_next), 1)
    np.testing.assert_array_equal(carry.learner.model.counts, counts)


def test_the_greedy_policy_reaches_the_optimal_value_and_planning_gets_there_in_fewer_real_steps():
    # PRNGKey(0), checked every 15 steps: first optimal at 660 steps with K = 0, 135 with K = 5 (the
    # default), 120 with K = 20.
    with_default = _steps_to_optimal(5)
    assert with_default <= 500
    assert _steps_to_optimal(20) < _steps_to_optimal(0) <= 1500
    _, _, values = _run(5)
    mdp = envs.make(GRID).unwrapped.mdp
    np.testing.assert_allclose(values[-1], 0.95 ** 7, rtol=1e-5)  # and stays optimal to the end
    np.testing.assert_allclose(float(value_iteration(mdp).v @ mdp.initial), 0.95 ** 7, rtol=1e-5)


def test_refuses_a_non_tabular_environment_and_a_bonus_in_one_line():
    with pytest.raises(ValueError, match=r"^dyna_q needs a tabular environment \(one-hot states, discrete "
                                         r"actions: tabular/\*, deepsea/\*\); cartpole is not$"):
        dyna_q.make_train(dyna_q.Config(env="cartpole"))
    with pytest.raises(ValueError, match=r"^dyna_q takes no exploration bonus \(bonus=count\)"):
        dyna_q.make_train(dyna_q.Config(bonus="count"))
