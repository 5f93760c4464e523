"""Hindsight relabelling (fnrl.loops.offline.hindsight_relabel) and goal-conditioned BC
(fnrl.algorithms.gcbc): relabelled goals are goals the same episode achieved later, exactly;
GCBC on a random policy's data reaches the goals of goal/point that BC on the same data and the
random policy itself do not."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import offline_data
from fnrl import datasets
from fnrl.algorithms import bc, gcbc
from fnrl.cli import main
from fnrl.loops import offline
from fnrl.loops.evaluation import evaluate

ACHIEVED, DESIRED = slice(0, 2), slice(2, 4)


def _hand_made():
    """Two episodes (3 and 2 steps) whose achieved goals name their episode and step, (10e + s, s),
    and whose desired goals are (−e − 1, −e − 1)."""
    episodes = []
    for e, length in enumerate((3, 2)):
        obs = np.array([[10 * e + s, s, -e - 1, -e - 1] for s in range(length + 1)], np.float32)
        episodes.append({"observations": obs, "actions": np.zeros((length, 2), np.float32),
                         "rewards": -np.ones(length), "terminations": np.zeros(length, bool),
                         "truncations": np.arange(length) == length - 1})
    return datasets.from_episodes(episodes, "goal/point")


def _draws(dataset, probability, num=400):
    """The relabelled batches of every transition of ``dataset``, ``num`` times: ``[num, size, ...]``."""
    sample = offline.hindsight_relabel(dataset, ACHIEVED, DESIRED, probability)
    data, indices = dataset.device_put(), jnp.arange(dataset.size)
    return jax.vmap(lambda k: sample(data, indices, k))(jax.random.split(jax.random.PRNGKey(0), num))


def test_relabelled_goals_are_goals_the_episode_achieved_later():
    dataset = _hand_made()
    np.testing.assert_array_equal(dataset.episode_ends, [2, 2, 2, 4, 4])
    batches = _draws(dataset, 1.0)
    t = jax.tree_util.tree_map(np.asarray, dataset.transitions)
    # goal ← φ(s_{t'+1}) for t' in {t, ..., T}: the next observations' achieved goals of the episode
    future = {0: [(1, 1), (2, 2), (3, 3)], 1: [(2, 2), (3, 3)], 2: [(3, 3)], 3: [(11, 1), (12, 2)], 4: [(12, 2)]}
    for i, allowed in future.items():
        goals = [tuple(g) for g in np.asarray(batches.obs[:, i, DESIRED]).astype(int).tolist()]
        assert set(goals) == set(allowed), i  # only these, and each of them
        counts = np.array([goals.count(g) for g in allowed])
        np.testing.assert_allclose(counts / len(goals), 1 / len(allowed), atol=0.08)  # uniformly drawn
    np.testing.assert_array_equal(batches.next_obs[..., DESIRED], batches.obs[..., DESIRED])
    # everything else is the transition as recorded
    for name in ("action", "reward", "termination", "truncation"):
        np.testing.assert_array_equal(getattr(batches, name), np.broadcast_to(getattr(t, name),
                                                                              getattr(batches, name).shape))
    np.testing.assert_array_equal(batches.obs[..., ACHIEVED], np.broadcast_to(t.obs[:, ACHIEVED], (400, 5, 2)))
    np.testing.assert_array_equal(batches.next_obs[..., ACHIEVED],
                                  np.broadcast_to(t.next_obs[:, ACHIEVED], (400, 5, 2)))


@pytest.mark.parametrize("probability", [0.0, 0.5])
def test_relabel_probability(probability):
    dataset = _hand_made()
    batches = _draws(dataset, probability)
    recorded = np.asarray(batches.obs[..., DESIRED] < 0).all(-1)  # the recorded goals are negative
    np.testing.assert_allclose(recorded.mean(), 1.0 - probability, atol=0.05)


@pytest.fixture(scope="module")
def random_data(tmp_path_factory):
    # 10,000 steps of uniformly random actions in 4 environments, seed 0 (206 episodes)
    return offline_data.make(tmp_path_factory.mktemp("goal") / "random", "goal/point",
                             offline_data.random_policy("goal/point"), 10_000)


def _returns(train, learner, policy=None):
    """Returns of 500 fresh episodes of ``train``'s greedy policy (or ``policy``)."""
    act = policy or (lambda l, o, k: train.act(l, o, k))
    return np.asarray(evaluate(train.env, act, learner, jax.random.PRNGKey(1), 500, 50, per_episode=True))


def test_gcbc_on_random_data_reaches_goals_that_bc_and_the_random_policy_miss(random_data):
    # Seed 0, measured: GCBC succeeds in 98.6% of episodes (mean return −18.1), BC on the same
    # data without relabelling in 2.8% (−49.1), the uniformly random policy in 8.0% (−47.8); in the
    # dataset itself 5.3% of the 206 random episodes reach their goal.
    common = dict(env="goal/point", dataset=random_data.path, total_steps=1000, num_evals=2, eval_episodes=16,
                  hidden_sizes=(64, 64))
    results = {}
    for name, module, config in [("gcbc", gcbc, gcbc.Config(**common)), ("bc", bc, bc.Config(**common))]:
        train = module.make_train(config)
        learner, _ = jax.jit(train)(jax.random.PRNGKey(0))
        results[name] = _returns(train, learner)
    spec = train.env.spec
    results["random"] = _returns(train, None, lambda l, o, k: (spec.sample_action(k, o.shape[:1]), {}))
    success = {name: float(np.mean(r > -49.5)) for name, r in results.items()}  # −50: the goal was not reached
    assert success["gcbc"] >= 0.8, success
    assert success["bc"] <= 0.15 and success["random"] <= 0.15, success
    assert results["gcbc"].mean() >= -30.0 and results["gcbc"].mean() > results["bc"].mean() + 15, success


def test_without_relabelling_gcbc_is_bc(random_data):
    common = dict(env="goal/point", dataset=random_data.path, total_steps=20, num_evals=1, eval_episodes=2,
                  hidden_sizes=(16,), batch_size=32)
    a, _ = jax.jit(gcbc.make_train(gcbc.Config(**common, relabel_probability=0.0)))(jax.random.PRNGKey(0))
    b, _ = jax.jit(bc.make_train(bc.Config(**common)))(jax.random.PRNGKey(0))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_gcbc_refuses_environments_without_goals(random_data):
    with pytest.raises(ValueError, match=r"^gcbc needs a goal-conditioned environment .*; pendulum is not$"):
        gcbc.make_train(gcbc.Config(env="pendulum", dataset=random_data.path))
    with pytest.raises(ValueError, match=r"^gcbc needs a continuous-action environment; cartpole has discrete"):
        gcbc.make_train(gcbc.Config(env="cartpole", dataset=random_data.path))
    with pytest.raises(ValueError, match="relabel_probability"):
        gcbc.Config(relabel_probability=1.5)


def test_cli_collects_random_data_and_trains_gcbc(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "run"
    assert main(["collect", "--env", "goal/point", "--policy", "random", "--steps", "500", "--out", str(data)]) == 0
    assert main(["train", "gcbc", "--dataset", str(data), "--steps", "32", "--out", str(out),
                 "--set", "num_evals=1", "--set", "eval_episodes=2", "--set", "hidden_sizes=16,16"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "gcbc" and summary["env"] == "goal/point" and summary["steps"] == 32
    assert summary["config"]["relabel_probability"] == 1.0 and -50.0 <= summary["episode_return"] <= 0.0
    # on an environment without goals: one line, and no run directory
    pendulum = tmp_path / "pendulum"
    assert main(["collect", "--env", "pendulum", "--policy", "random", "--steps", "200", "--out", str(pendulum)]) == 0
    capsys.readouterr()
    assert main(["train", "gcbc", "--dataset", str(pendulum), "--steps", "32", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["fnrl: error: gcbc needs a goal-conditioned environment (observations holding an achieved and a "
                   "desired goal: goal/point); pendulum is not"]
    assert not (tmp_path / "bad").exists()
