"""Offline-to-online fine-tuning (fnrl.finetune, `fnrl train ALGO --finetune RUN_DIR`): the online
run starts from exactly the offline run's learner with the offline dataset in its replay buffer,
keeps learning online, and is a run like any other on the command line (stop, resume bit-exactly,
eval, plot); bad input is one line and exit code 2 before anything is compiled or written."""
import json

import jax
import numpy as np
import pytest

import offline_data
from fnrl import datasets, finetune, runner, runs
from fnrl.cli import main
from fnrl.loops.evaluation import episode_limit, evaluate
from test_cli_matrix import _rows, stop_resume_bit_exact

TINY = ["--set", "num_evals=2", "--set", "eval_episodes=2", "--set", "hidden_sizes=16,16"]


@pytest.fixture(scope="module")
def offline_runs(tmp_path_factory):
    """A pendulum dataset of a noisy scripted expert, and short offline runs on it, made when first needed."""
    root, made = tmp_path_factory.mktemp("finetune"), {}

    def get(name):
        if name not in made:
            if name == "data":
                made[name] = offline_data.make(root / "data", "pendulum", offline_data.expert("pendulum", eps=0.5),
                                               4000).path
            else:
                algo, steps, more = {"iql": ("iql", 200, TINY), "cql": ("cql", 50, TINY),
                                     "awac": ("awac", 1000, ["--set", "num_evals=1", "--set", "eval_episodes=16",
                                                             "--set", "hidden_sizes=64,64"])}[name]
                assert main(["train", algo, "--dataset", get("data"), "--steps", str(steps), "--seed", "0",
                             "--out", str(root / name)] + more) == 0
                made[name] = str(root / name)
        return made[name]

    return get


def _leaves_equal(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_starts_from_the_offline_learner_with_the_dataset_in_the_buffer(offline_runs):
    source = offline_runs("iql")
    off_train, off_carry, off_config = runs.load(source)
    config = finetune.config(source, total_steps=64, num_evals=1, buffer_size=5000)
    assert (config.algo, config.env, config.hidden_sizes, config.batch_size) == ("iql", "pendulum", (16, 16), 256)
    train = finetune.make_train(config)
    carry = jax.jit(train.init)(jax.random.PRNGKey(1))
    _leaves_equal(carry.learner, off_carry.learner)  # parameters, optimiser states, all of it

    # The first evaluation's policy is the offline run's final one: same key, same return.
    key, limit = jax.random.PRNGKey(7), episode_limit(train.env)
    returns = [float(jax.jit(lambda c, t=t: evaluate(t.env, t.act, c.learner, key, 4, limit))(c))
               for t, c in ((off_train, off_carry), (train, carry))]
    assert returns[0] == returns[1]

    # The buffer holds the dataset, oldest first, then the warm-up's n_step steps per environment.
    dataset = datasets.load(off_config.dataset)
    buffer = carry.data.buffer
    assert int(buffer.size) == dataset.size + config.warmup_transitions == 4004
    stored = jax.tree_util.tree_map(lambda x: np.asarray(x[:dataset.size]), buffer.data)
    for field in ("obs", "action", "reward", "termination", "truncation", "next_obs"):
        np.testing.assert_array_equal(getattr(stored, field), getattr(dataset.transitions, field))
    np.testing.assert_array_equal(stored.extras["n_steps"], 1)


def test_sac_starts_from_a_continuous_cql_learner_and_refuses_others(offline_runs):
    source = offline_runs("cql")
    _, off_carry, _ = runs.load(source)
    carry = jax.jit(finetune.make_train(finetune.config(source, "sac", total_steps=64, num_evals=1,
                                                        buffer_size=5000)).init)(jax.random.PRNGKey(0))
    _leaves_equal(carry.learner, off_carry.learner.agent)  # SAC's learner inside CQL's
    with pytest.raises(runs.RunError, match="an offline iql run, and sac --finetune starts from a cql run's learner"):
        finetune.make_train(finetune.config(offline_runs("iql"), "sac"))


# Measured (seed 0): AWAC, 1000 offline updates on 4000 steps of the scripted expert with ε = 0.5
# (dataset mean return about -430), then 2000 online steps (4 environments, 4 updates per
# step of them: one update per environment step); returns over 16 evaluation episodes.
ONLINE_GAIN = 250.0


def test_awac_keeps_learning_online(offline_runs):
    source = offline_runs("awac")
    offline_return = json.loads(open(f"{source}/summary.json").read())["episode_return"]
    config = finetune.config(source, total_steps=2000, num_evals=2, num_envs=4, updates_per_rollout=4,
                             buffer_size=10_000)
    rows = runner.run(finetune.make_train(config), jax.random.PRNGKey(0), say=lambda _: None).rows
    online = rows[-1]["episode_return"]
    assert online > offline_return + ONLINE_GAIN, (offline_return, [r["episode_return"] for r in rows])


def test_cli_finetune_stop_resume_eval_plot(offline_runs, tmp_path, monkeypatch, capsys):
    source = offline_runs("iql")
    argv = ["train", "iql", "--finetune", source, "--steps", "256", "--seed", "3", "--set", "num_evals=2",
            "--set", "eval_episodes=2", "--set", "buffer_size=5000", "--set", "learning_starts=16"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(argv + ["--out", str(whole)]) == 0
    run = json.loads((whole / "config.json").read_text())
    assert run["algo"] == "iql" and run["finetune"] == source and run["config"]["source"] == source
    assert len(_rows(whole)) == 2 and _rows(whole)[0]["step"] == 16 + 120
    stop_resume_bit_exact(argv, whole, cut, monkeypatch, capsys)

    capsys.readouterr()
    assert main(["eval", str(cut), "--episodes", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["env"] == "pendulum" and np.isfinite(result["episode_return"])
    figure = tmp_path / "curves.png"
    assert main(["plot", source, str(whole), str(cut), "--out", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code = main(["collect", "--replay", str(whole), "--out", str(tmp_path / "replay")])
    assert code == 2 and "starts with its offline dataset" in capsys.readouterr().err


def _fake_run(path, algo, **config):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"algo": algo, "env": "pendulum", "seed": 0,
                                                  "config": {"env": "pendulum", **config}}))
    return str(path)


@pytest.mark.parametrize("argv, message", [
    (["train", "iql", "--finetune", "{tmp}/nowhere"], "holds no run"),
    (["train", "iql", "--finetune", "{online}"], "not an offline run (a sac run"),
    (["train", "bc", "--finetune", "{bc}"], "bc cannot fine-tune an offline run"),
    (["train", "awac", "--finetune", "{iql}"], "an offline iql run, and awac --finetune continues awac runs"),
    (["train", "sac", "--finetune", "{iql}"], "sac --finetune starts from a cql run's learner"),
    (["train", "ppo", "--finetune", "{iql}"], "ppo cannot fine-tune an offline run"),
    (["train", "iql", "--finetune", "{iql}", "--env", "cartpole"], "env='cartpole', but the offline run's is"),
    (["train", "iql", "--finetune", "{iql}", "--set", "gamma=0.9"], "gamma=0.9, but the offline run's is 0.99"),
    (["train", "iql", "--finetune", "{iql}", "--dataset", "X"], "drop --dataset"),
    (["train", "iql", "--finetune", "{iql}", "--seeds", "2"], "drop --seeds"),
    (["train", "iql", "--finetune", "{iql}", "--set", "buffer_size=1000"], "set buffer_size >= 4000"),
    (["train", "iql", "--finetune", "{iql}", "--set", "expectile=0.9"], "unknown"),
    (["train", "--resume", "{iql}", "--finetune", "{iql}"], "drop --finetune"),
])
def test_bad_finetune_commands_exit_2_with_one_line_before_compiling(argv, message, offline_runs, tmp_path, capsys):
    names = {"tmp": str(tmp_path), "iql": offline_runs("iql") if "{iql}" in " ".join(argv) else "",
             "online": _fake_run(tmp_path / "sac", "sac"), "bc": _fake_run(tmp_path / "bc", "bc", dataset="D")}
    argv = [a.format(**names) for a in argv] + ["--steps", "64", "--out", str(tmp_path / "out")] * (
        "--resume" not in argv)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
