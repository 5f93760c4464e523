"""The command line: the training contract (README, "Training runs") (bad input: tests/test_bad_input.py)."""
import json
import os

import jax
import numpy as np
import pytest

import fnrl.envs
from fnrl import algorithms, bandits
from fnrl.algorithms import reinforce
from fnrl.cli import main
from fnrl.logging import read_metrics


def _error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_list_names_algorithms_and_environments(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "reinforce" in out and "cartpole" in out
    assert "bandit algorithms (fnrl bandit): epsilon_greedy gaussian_thompson kl_ucb thompson ucb1" in out


def test_unknown_names_list_what_is_accepted(capsys, tmp_path):
    _, err = _error(capsys, ["train", "reinforc", "--env", "cartpole", "--steps", "10", "--out", str(tmp_path)])
    assert "did you mean reinforce" in err and "accepted:" in err
    _, err = _error(capsys, ["train", "reinforce", "--env", "cartpole", "--set", "lr=1", "--steps", "10",
                             "--out", str(tmp_path)])
    assert "learning_rate" in err


def test_algorithms_get_rejects_unknown_names():
    assert algorithms.get("reinforce") is reinforce
    with pytest.raises(ValueError, match="unknown algorithm"):
        algorithms.get("ppo2")


def test_train_writes_the_contract_and_learns_cartpole(tmp_path, capsys):
    """REINFORCE (seed 0) on cartpole reaches a mean evaluation return >= 150 within 100k steps
    (a random policy scores ~22)."""
    out = tmp_path / "run"
    argv = ["train", "reinforce", "--env", "cartpole", "--steps", "100000", "--seed", "0", "--out", str(out),
            "--set", "num_evals=5"]
    assert main(argv) == 0
    assert {"metrics.jsonl", "summary.json", "curve.png"} <= set(os.listdir(out))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all({"step", "episode_return", "sps"} <= row.keys() for row in rows)
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows) and rows[-1]["step"] >= 100_000
    summary = json.loads((out / "summary.json").read_text())
    for key in ("algo", "env", "steps", "seed", "episode_return", "wall_s", "sps", "config"):
        assert key in summary
    assert summary["config"]["num_evals"] == 5
    assert summary["episode_return"] == rows[-1]["episode_return"] >= 150.0
    # A second run into the same directory is refused rather than overwriting it.
    assert main(argv) == 2


def test_train_vmaps_over_seeds():
    config = reinforce.Config(env="cartpole", total_steps=512, num_envs=4, rollout_length=16, num_evals=2,
                              eval_episodes=2)
    train = reinforce.make_train(config)
    _, metrics = jax.jit(jax.vmap(train))(jax.random.split(jax.random.PRNGKey(0), 3))
    assert metrics["episode_return"].shape == (3, 2)
    np.testing.assert_array_equal(metrics["step"][0], [256, 512])
    assert np.all(np.isfinite(metrics["episode_return"]))
    # Different seeds give different runs.
    assert not np.allclose(metrics["value_loss"][0], metrics["value_loss"][1])


def test_the_first_line_says_what_runs_when_the_steps_are_rounded(tmp_path, capsys):
    """100 steps of 2 environments x 8 steps per update in 2 evaluation periods: 4 whole updates
    per period, 128 steps, and the first line says so."""
    argv = ["train", "reinforce", "--env", "cartpole", "--steps", "100", "--out", str(tmp_path / "run"), "--no-preset",
            "--set", "num_envs=2", "--set", "rollout_length=8", "--set", "num_evals=2", "--set", "eval_episodes=1",
            "--set", "hidden_sizes=8"]
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("reinforce on cartpole: compiled in ")
    assert first.endswith("training 128 steps: 100 rounded up to 2 evaluation periods of 64 steps (whole updates; "
                          "fewer steps per period with a smaller num_evals)"), first
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 128


def test_a_short_run_gets_fewer_evaluations_not_more_steps(tmp_path, capsys):
    """PPO's 8 x 64 = 512 steps per update: 1,000 steps are 2 updates, so the run evaluates
    twice (not num_evals=20 times, which would take 20 updates) and the first line says so."""
    out = tmp_path / "run"
    argv = ["train", "ppo", "--env", "cartpole", "--steps", "1000", "--out", str(out), "--no-preset", "--set", "eval_episodes=1",
            "--set", "hidden_sizes=8"]
    assert main(argv) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("training 1,024 steps: 1,000 rounded up to 2 evaluation periods of 512 steps (whole "
                          "updates; fewer steps per period with a smaller num_evals); 2 evaluations, not "
                          "num_evals=20: the run is only 2 iterations of 512 steps long"), first
    assert [row["step"] for row in read_metrics(str(out))] == [512, 1024]


def test_bandit_prints_and_writes_the_regret_run_many_gives(tmp_path, capsys):
    """`fnrl bandit` on a small problem: 6 runs of 200 pulls, 4 per program call, so two calls of
    run_many from split(PRNGKey(seed), 2); the printed table and summary.json hold their regret."""
    env_name, specs = "bandit/bernoulli(means=(0.8, 0.6, 0.5))", ["ucb1", "epsilon_greedy(epsilon=0.2)"]
    steps, runs, chunk, seed = 200, 6, 4, 3
    out = tmp_path / "bandit"
    argv = ["bandit", *specs, "--env", env_name, "--steps", str(steps), "--runs", str(runs), "--chunk", str(chunk),
            "--seed", str(seed), "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    env, times = fnrl.envs.make(env_name), bandits.log_times(steps)
    constant = float(bandits.lai_robbins_constant(env.means))
    assert {k: summary[k] for k in ("env", "means", "steps", "runs", "seed", "chunk")} == {
        "env": env_name, "means": [0.8, 0.6, 0.5], "steps": steps, "runs": runs, "seed": seed, "chunk": chunk}
    assert summary["times"] == times.tolist() and summary["lai_robbins_constant"] == constant
    bound = constant * np.log(steps)
    assert summary["lai_robbins_bound"] == pytest.approx(bound) and printed[1].endswith(f"= {bound:.1f}")
    assert list(summary["algorithms"]) == specs
    keys = jax.random.split(jax.random.PRNGKey(seed), 2)
    for spec in specs:
        policy = bandits.make(spec)
        regret = np.concatenate([np.asarray(bandits.cumulative_regret(env.means, bandits.run_many(
            policy, env, k, steps, chunk).arms)).T for k in keys])[:runs, times - 1].astype(np.float64)
        row, final = summary["algorithms"][spec], regret[:, -1]
        assert row["final_regret_mean"] == final.mean()
        assert row["final_regret_stderr"] == pytest.approx(final.std(ddof=1) / np.sqrt(runs), rel=1e-12)
        assert row["regret_over_bound"] == pytest.approx(final.mean() / bound, rel=1e-12)
        np.testing.assert_array_equal(row["mean_regret"], regret.mean(0))
        assert len(row["stderr"]) == len(times) and row["wall_s"] >= row["compile_s"] > 0
        line = next(line for line in printed if line.startswith(spec + " "))
        assert line.split()[1:4] == [f"{final.mean():.1f}", "±", f"{final.std(ddof=1) / np.sqrt(runs):.1f}"], line
        assert line.split()[4] == f"{final.mean() / bound:.2f}", line
    assert printed[-1] == f"wrote {out}"
    assert main(argv) == 2  # the same --out again: refused, nothing overwritten
