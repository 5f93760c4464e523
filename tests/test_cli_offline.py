"""`fnrl collect` and `fnrl train <offline algo> --dataset`: the offline commands a user runs."""
import json

import pytest

from fnrl import datasets
from fnrl.cli import main


def _run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err.strip()


@pytest.fixture(scope="module")
def random_cartpole(tmp_path_factory):
    path = tmp_path_factory.mktemp("collect") / "random"
    assert main(["collect", "--env", "cartpole", "--policy", "random", "--steps", "600", "--num-envs", "2",
                 "--out", str(path)]) == 0
    return path


def test_collect_random_then_train_bc_with_the_env_from_the_dataset(random_cartpole, tmp_path, capsys):
    dataset = datasets.load(str(random_cartpole))
    assert dataset.size == 600 and dataset.env == "cartpole"
    assert dataset.metadata["fnrl"]["policy"] == "random"
    out = tmp_path / "bc"
    code, stdout, _ = _run(capsys, ["train", "bc", "--dataset", str(random_cartpole), "--steps", "200",
                                    "--out", str(out), "--set", "num_evals=2", "--set", "eval_episodes=4"])
    assert code == 0 and "normalised score" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "cartpole" and summary["steps"] == 200
    assert summary["normalized_score"] == pytest.approx(dataset.normalized_score(summary["episode_return"]))

    # the trained run's policy, greedy and with its exploration, and the datasets mixed
    greedy, noisy, mixed = tmp_path / "greedy", tmp_path / "noisy", tmp_path / "mixed"
    code, stdout, _ = _run(capsys, ["collect", "--policy", str(out), "--steps", "300", "--out", str(greedy)])
    assert code == 0 and "300 steps" in stdout
    assert _run(capsys, ["collect", "--policy", str(out), "--noise", "--steps", "300", "--out", str(noisy)])[0] == 0
    loaded = datasets.load(str(greedy))
    assert loaded.env == "cartpole" and loaded.metadata["fnrl"]["algo"] == "bc"
    assert not loaded.metadata["fnrl"]["noise"] and datasets.load(str(noisy)).metadata["fnrl"]["noise"]
    assert _run(capsys, ["collect", "--mix", str(random_cartpole), str(greedy), "--out", str(mixed)])[0] == 0
    assert datasets.load(str(mixed)).size == 900
    code, _, err = _run(capsys, ["collect", "--replay", str(out), "--out", str(tmp_path / "r")])
    assert code == 2 and "a bc run keeps no replay buffer" in err


def test_collect_records_a_gaussian_policys_actions_clipped_to_the_box(tmp_path, capsys):
    """PPO's Gaussian samples fall outside [-1, 1]; the dataset holds the actions the environment
    applied, so BC trains on it (it refuses actions outside the box)."""
    import numpy as np

    run, data = tmp_path / "ppo", tmp_path / "noisy"
    assert main(["train", "ppo", "--env", "pendulum", "--steps", "256", "--out", str(run), "--no-preset",
                 "--set", "num_envs=2", "--set", "rollout_length=64", "--set", "num_evals=1",
                 "--set", "eval_episodes=1", "--set", "hidden_sizes=8,8"]) == 0
    assert _run(capsys, ["collect", "--policy", str(run), "--noise", "--steps", "400", "--out", str(data)])[0] == 0
    dataset = datasets.load(str(data))
    action = np.asarray(dataset.transitions.action)
    assert np.abs(action).max() <= 1.0 and np.isclose(np.abs(action), 1.0).mean() > 0.05  # some were clipped
    assert np.isfinite(np.asarray(dataset.transitions.extras["log_prob"])).all()
    code, _, err = _run(capsys, ["train", "bc", "--dataset", str(data), "--steps", "20", "--out", str(tmp_path / "bc"),
                                 "--set", "num_evals=1", "--set", "eval_episodes=1", "--set", "hidden_sizes=8,8"])
    assert code == 0, err


def test_collect_replay_writes_an_off_policy_runs_buffer(tmp_path, capsys):
    small = ["--steps", "400", "--set", "num_evals=1", "--set", "eval_episodes=2", "--set", "learning_starts=100",
             "--set", "hidden_sizes=16,16"]
    run, three = tmp_path / "dqn", tmp_path / "dqn3"
    assert main(["train", "dqn", "--env", "cartpole", "--out", str(run), "--set", "n_step=1"] + small) == 0
    code, stdout, _ = _run(capsys, ["collect", "--replay", str(run), "--out", str(tmp_path / "replay")])
    dataset = datasets.load(str(tmp_path / "replay"))
    steps = json.loads((run / "summary.json").read_text())["steps"]
    assert code == 0 and dataset.size == steps and dataset.metadata["fnrl"]["algo"] == "dqn"

    # a run of n-step transitions (the preset's n_step = 3) is refused from its config, before loading
    import shutil

    shutil.copytree(run, three)
    config = json.loads((three / "config.json").read_text())
    config["config"]["n_step"] = 3
    (three / "config.json").write_text(json.dumps(config))
    code, _, err = _run(capsys, ["collect", "--replay", str(three), "--out", str(tmp_path / "replay3")])
    assert code == 2 and "3-step transitions" in err and not (tmp_path / "replay3").exists()


@pytest.mark.parametrize("argv, message", [
    (["collect", "--env", "cartpole", "--policy", "random", "--steps", "10"], "collect needs --out"),
    (["collect", "--env", "cartpole", "--policy", "random", "--out", "X"], "collect needs --steps"),
    (["collect", "--policy", "random", "--steps", "10", "--out", "X"], "needs --env"),
    (["collect", "--env", "cartpole", "--policy", "nowhere", "--steps", "10", "--out", "X"], "holds no run"),
    (["collect", "--mix", "A", "--env", "cartpole", "--out", "X"], "drop --env"),
    (["collect", "--replay", "A", "--steps", "5", "--out", "X"], "drop --steps"),
    (["train", "sac", "--dataset", "A", "--env", "pendulum", "--steps", "10", "--out", "X"],
     "sac is not an offline algorithm"),
    (["train", "bc", "--env", "cartpole", "--steps", "10", "--out", "X"], "needs a dataset"),
])
def test_bad_offline_commands_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, argv)
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_bad_data_exits_2_naming_the_file_before_compiling(random_cartpole, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(random_cartpole, broken)
    data = broken / "data" / "main_data.hdf5"
    data.write_bytes(data.read_bytes()[:1000])
    code, _, err = _run(capsys, ["train", "bc", "--dataset", str(broken), "--steps", "10", "--out",
                                 str(tmp_path / "r")])
    assert code == 2 and str(data) in err and "cannot be read" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()  # nothing written
    code, _, err = _run(capsys, ["train", "bc", "--dataset", str(random_cartpole), "--env", "pendulum",
                                 "--steps", "10", "--out", str(tmp_path / "r")])
    assert code == 2 and "recorded on cartpole, not pendulum" in err
