"""Off-policy algorithms (issue 5): the shared replay loop, DQN/DDPG/TD3/SAC under jit and vmap,
learning within a stated budget, and the CLI contract."""
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnrl import algorithms
from fnrl.agent import Agent, UpdateOutput
from fnrl.loops import offpolicy
from fnrl.algorithms import dqn, sac
from fnrl.cli import main
from fnrl.config import ConfigError
from fnrl.envs.core import Env, EnvState, Spec
from fnrl.envs.wrappers import TimeLimit
from fnrl.types import Transition

GAMMA, N, END, LIMIT = 0.5, 3, 4, 6


class Counter(Env):
    """obs = (t, kind): t counts the steps of the episode, kind ~ Bernoulli(½) at reset.
    Reward t + 1; episodes of kind 1 terminate on reaching t = END, the others are truncated at
    t = LIMIT by the time limit. The action is ignored."""

    spec = Spec(observation_shape=(2,), num_actions=2)

    def reset(self, key):
        zero = jnp.zeros((), jnp.float32)
        kind = jax.random.bernoulli(key).astype(jnp.float32)
        return EnvState(obs=jnp.stack([zero, kind]), reward=zero, termination=zero, truncation=zero, internal=())

    def step(self, state, action):
        t, kind = state.obs[0] + 1.0, state.obs[1]
        return state.replace(obs=jnp.stack([t, kind]), reward=t, termination=kind * (t == END),
                             truncation=jnp.zeros((), jnp.float32))


def expected_window(t, kind):
    """The n-step transition that starts at step t of an episode of the given kind."""
    end = END if kind else LIMIT
    m = min(N, end - t)
    return (sum(GAMMA**k * (t + k + 1) for k in range(m)), m, t + m,
            float(kind and t + m == END), float(not kind and t + m == LIMIT))


def test_loop_replays_every_n_step_window_across_iterations():
    """With one step per iteration (< n), every window spans iterations; the last sampled batch
    must hold exactly the n-step transitions of the episodes, cut at terminations and truncations."""
    config = offpolicy.OffPolicyConfig(total_steps=120, num_envs=3, rollout_length=1, batch_size=64,
                                       buffer_size=200, learning_starts=9, n_step=N, gamma=GAMMA, num_evals=2,
                                       eval_episodes=2)
    env = TimeLimit(Counter(), LIMIT)
    empty = Transition(obs=jnp.zeros((64, 2)), action=jnp.zeros(64, jnp.int32), reward=jnp.zeros(64),
                       termination=jnp.zeros(64), truncation=jnp.zeros(64), next_obs=jnp.zeros((64, 2)),
                       extras={"n_steps": jnp.zeros(64, jnp.int32)})
    train = offpolicy.make_train(config, env, Agent(
        init=lambda key, obs: empty,
        act=lambda learner, obs, key, explore: (jnp.zeros(obs.shape[0], jnp.int32), {}),
        update=lambda learner, batch, key: UpdateOutput(batch._replace(extras={"n_steps": batch.extras["n_steps"]}),
                                                        {})))
    batch, metrics = jax.jit(train)(jax.random.PRNGKey(0))
    # 3 warm-up steps × 3 envs, then 19 iterations of 1 step × 3 envs per evaluation.
    np.testing.assert_array_equal(metrics["step"], [9 + 19 * 3, 9 + 38 * 3])
    assert metrics["step"][-1] >= config.total_steps
    for i in range(64):
        t, kind = (int(v) for v in batch.obs[i])
        ret, m, next_t, term, trunc = expected_window(t, kind)
        assert float(batch.reward[i]) == pytest.approx(ret)
        assert int(batch.extras["n_steps"][i]) == m and int(batch.next_obs[i, 0]) == next_t
        assert float(batch.termination[i]) == term and float(batch.truncation[i]) == trunc


TINY = dict(total_steps=200, num_envs=2, batch_size=8, buffer_size=64, learning_starts=16, num_evals=2,
            eval_episodes=2, hidden_sizes=(8,))


@pytest.mark.parametrize("name, env, extra", [
    ("dqn", "cartpole", dict(prioritized=True, n_step=3)),
    ("ddpg", "pendulum", dict(updates_per_rollout=2)),
    ("td3", "pendulum", dict(prioritized=True, n_step=2, rollout_length=3)),
])
def test_every_algorithm_trains_seeds_under_vmap_with_finite_metrics(name, env, extra):
    """(SAC: in :func:`test_sac_learns_pendulum_for_two_seeds_at_once`.)"""
    module = algorithms.get(name)
    config = module.Config(env=env, **TINY, **extra)
    learner, metrics = jax.jit(jax.vmap(module.make_train(config)))(jax.random.split(jax.random.PRNGKey(0), 2))
    check_run(config, learner, metrics)


def check_run(config, learner, metrics):
    """Two seeds' runs: per-evaluation metrics, the full budget, finite values, distinct learners."""
    chex.assert_shape([metrics["step"], metrics["episode_return"]], (2, config.num_evals))
    assert metrics["step"][0, -1] >= config.total_steps
    for key, value in metrics.items():
        if key != "train_episode_return":  # NaN when no exploring episode ended (pendulum: 200 steps)
            assert np.all(np.isfinite(np.asarray(value))), key
    for leaf in jax.tree_util.tree_leaves(learner):
        assert np.all(np.isfinite(np.asarray(leaf)))
    # Seeds differ: one program trained two independent learners.
    floats = [x for x in jax.tree_util.tree_leaves(learner) if jnp.issubdtype(x.dtype, jnp.floating) and x[0].size > 1]
    assert not np.allclose(floats[0][0], floats[0][1])


def test_sac_learns_pendulum_for_two_seeds_at_once():
    """SAC (defaults: 4 envs, 1 update per 4 steps, 64×64 networks), seeds 0 and 1 vmapped in
    one program, each reach a mean evaluation return >= -300 within 24k steps (measured: -178 and
    -213; a random policy scores about -1300; the 5-seed experiment in
    experiments/results/offpolicy_pendulum reports the whole curve)."""
    config = sac.Config(env="pendulum", total_steps=24_000, num_evals=4, eval_episodes=8)
    learner, metrics = jax.jit(jax.vmap(sac.make_train(config)))(jax.random.split(jax.random.PRNGKey(0), 2))
    check_run(config, learner, metrics)
    assert np.all(metrics["episode_return"][:, -1] >= -300.0), metrics["episode_return"]


def test_dqn_learns_cartpole_through_the_cli(tmp_path):
    """`fnrl train dqn` (defaults: double Q, 3-step; seed 0) reaches a mean greedy evaluation
    return >= 400 on cartpole within 150k steps (measured: 461; a random policy scores about 22;
    the 5-seed experiment in experiments/results/offpolicy_cartpole runs 500k), and writes the
    run contract."""
    out = tmp_path / "run"
    argv = ["train", "dqn", "--env", "cartpole", "--steps", "150000", "--seed", "0", "--out", str(out),
            "--set", "num_evals=4", "--set", "eval_episodes=8"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[-1]["step"] >= 150_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "dqn" and summary["config"]["double_q"] and summary["config"]["n_step"] == 3
    assert summary["episode_return"] >= 400.0, [r["episode_return"] for r in rows]


@pytest.mark.parametrize("algo, env, kind", [("dqn", "pendulum", "continuous"), ("sac", "cartpole", "discrete"),
                                              ("td3", "cartpole", "discrete"), ("ddpg", "cartpole", "discrete")])
def test_cli_refuses_an_algorithm_on_the_wrong_action_space(tmp_path, capsys, algo, env, kind):
    out = tmp_path / "run"
    assert main(["train", algo, "--env", env, "--steps", "1000", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{env} has {kind} actions" in err, err
    assert not out.exists()


@pytest.mark.parametrize("changes, field", [
    (dict(buffer_size=100, learning_starts=1000), "buffer_size"),
    (dict(n_step=0), "n_step"),
    (dict(priority_beta=1.5), "priority_beta"),
    (dict(loss="l1"), "loss"),
    (dict(exploration_fraction=0.0), "exploration_fraction"),
])
def test_invalid_config_names_the_field(changes, field):
    with pytest.raises(ConfigError, match=f"invalid {field}="):
        dqn.Config(**changes)
