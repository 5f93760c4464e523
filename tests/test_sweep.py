"""Many runs in one program (fnrl.sweep): each member of a seeds × hyperparameter grid computes
the single run with its values and seed (equal to float32 rounding over a short run), in the
library and through ``fnrl train --seeds/--sweep`` (metrics per member, TensorBoard runs,
summary, eval, plot, render, resume)."""
from __future__ import annotations

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from fnrl import runner
from fnrl.algorithms import dqn, reinforce
from fnrl.cli import main
from fnrl.logging import read_metrics
from fnrl.sweep import make_sweep, member_name

REINFORCE = reinforce.Config(env="cartpole", total_steps=256, num_envs=4, rollout_length=16, num_evals=2,
                             eval_episodes=2, hidden_sizes=(8,))
DQN = dqn.Config(env="cartpole", total_steps=400, num_envs=2, learning_starts=64, buffer_size=256, batch_size=16,
                 num_evals=2, eval_episodes=2, hidden_sizes=(8,), target_update_period=5)


SWEEPS = {"on-policy": (reinforce, REINFORCE, {"learning_rate": [1e-3, 1e-1]}),
          "off-policy": (dqn, DQN, {"learning_rate": [1e-3, 1e-1], "gamma": [0.95]})}


@pytest.fixture(scope="module")
def swept():
    """``swept(name)``: the sweep of SWEEPS[name] over seeds 0 and 3 and the metrics of its whole
    program, jitted (compiled once, when first needed)."""
    done = {}

    def get(name):
        if name not in done:
            module, config, grid = SWEEPS[name]
            sweep = make_sweep(module, config, seeds=[0, 3], grid=grid)
            done[name] = sweep, jax.jit(sweep)(sweep.keys)[1]
        return done[name]

    return get


@pytest.mark.parametrize("name", SWEEPS)
def test_each_member_is_the_single_run_with_its_values_and_seed(name, swept):
    module, config, grid = SWEEPS[name]
    sweep, metrics = swept(name)
    assert len(sweep.members) == 2 * np.prod([len(v) for v in grid.values()])
    assert sweep.members[0] == {**{k: v[0] for k, v in grid.items()}, "seed": 0}
    losses, singles = [], {}  # one compiled single run per grid point, for each of its seeds
    for i, member in enumerate(sweep.members):
        values = {k: v for k, v in member.items() if k != "seed"}
        point = tuple(sorted(values.items()))
        if point not in singles:
            singles[point] = jax.jit(module.make_train(dataclasses.replace(config, **values)))
        _, expected = singles[point](jax.random.PRNGKey(member["seed"]))
        for metric, value in expected.items():  # equal up to float32 rounding (the swept value is traced)
            got = metrics[metric] if metric == "step" else metrics[metric][:, i]
            np.testing.assert_allclose(got, value, rtol=2e-4, atol=1e-5, err_msg=f"{metric} of {member_name(member)}")
        losses.append(np.asarray(expected[next(k for k in expected if "loss" in k)]))
    assert len({loss.tobytes() for loss in losses}) == len(losses)  # the values and seeds do change the runs


def test_the_runner_drives_a_sweep_as_the_whole_program_computes_it(swept):
    sweep, metrics = swept("on-policy")
    result = runner.run(sweep, sweep.keys, say=lambda line: None)
    assert [row["step"] for row in result.rows] == list(metrics["step"])
    np.testing.assert_allclose([row["episode_return"] for row in result.rows], metrics["episode_return"], rtol=1e-6)  # [evals, members]


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    """``fnrl train reinforce --seeds 2 --sweep learning_rate=...``: 4 runs, 2 evaluations."""
    out = tmp_path_factory.mktemp("sweep") / "run"
    argv = ["train", "reinforce", "--env", "cartpole", "--steps", "256", "--out", str(out), "--seeds", "2",
            "--sweep", "learning_rate=1e-3,1e-1", "--no-compile-cache"]
    argv += [arg for k, v in [("num_envs", 4), ("rollout_length", 16), ("num_evals", 2), ("eval_episodes", 2),
                              ("hidden_sizes", 8)] for arg in ("--set", f"{k}={v}")]
    assert main(argv) == 0
    return out


def test_train_with_seeds_and_sweep_writes_every_member(sweep_run, capsys):
    config = json.loads((sweep_run / "config.json").read_text())
    members = [{"learning_rate": lr, "seed": s} for lr in (1e-3, 1e-1) for s in (0, 1)]
    assert config["seeds"] == [0, 1] and config["sweep"] == {"learning_rate": [1e-3, 1e-1]}
    assert config["members"] == members and config["seed"] is None
    rows = read_metrics(str(sweep_run))
    assert [row["step"] for row in rows] == [128, 256]
    assert all(len(row["episode_return"]) == 4 and isinstance(row["sps"], float) for row in rows)
    assert sorted(p.name for p in (sweep_run / "tensorboard").iterdir()) == sorted(member_name(m) for m in members)
    summary = json.loads((sweep_run / "summary.json").read_text())
    finals = rows[-1]["episode_return"]
    assert [m["episode_return"] for m in summary["members"]] == finals
    assert [g["label"] for g in summary["groups"]] == ["learning_rate=0.001", "learning_rate=0.1"]
    assert summary["groups"][1]["episode_return_mean"] == pytest.approx(np.mean(finals[2:]))
    assert (sweep_run / "curve.png").read_bytes()[:4] == b"\x89PNG"

    capsys.readouterr()
    assert main(["eval", str(sweep_run), "--episodes", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [{k: v for k, v in m.items() if k != "episode_return"} for m in report["members"]] == members
    assert main(["plot", str(sweep_run), "--out", str(sweep_run / "plot.png")]) == 0
    assert main(["render", str(sweep_run), "--member", "3", "--max-steps", "3", "--out", str(sweep_run / "m3.gif")]) == 0
    assert (sweep_run / "m3.gif").read_bytes()[:6] == b"GIF89a"
    assert main(["render", str(sweep_run), "--member", "4"]) == 2  # there are 4 runs
    assert "invalid --member 4" in capsys.readouterr().err


def test_a_sweep_resumes_to_the_same_results(sweep_run, tmp_path):
    """From its first evaluation's checkpoint, ``--resume`` ends with the rows of the whole run."""
    copy = tmp_path / "run"
    shutil.copytree(sweep_run, copy)
    shutil.rmtree(copy / "checkpoints" / max((copy / "checkpoints").iterdir(), key=lambda p: int(p.name)).name)
    assert main(["train", "--resume", str(copy), "--no-compile-cache"]) == 0

    def results(run):  # every value but the timings
        return [{k: v for k, v in row.items() if k not in ("sps", "wall_s")} for row in read_metrics(str(run))]

    assert results(copy) == results(sweep_run)
