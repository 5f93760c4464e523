"""Around a training run: checkpoints that resume exactly, the non-finite guard, `fnrl eval`,
`fnrl plot`, config files and --print-config, the compilation cache.

All runs are one small PPO configuration on cartpole, so the three programs are compiled once
(the persistent compilation cache of tests/conftest.py serves the later runs).
"""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from fnrl import cli, config as fnrl_config, logging as fnrl_logging
from fnrl.algorithms import dqn, ppo
from fnrl.checkpoint import Checkpoints
from fnrl.cli import main

SMALL = ["num_envs=8", "rollout_length=32", "num_epochs=2", "num_minibatches=2", "num_evals=5", "eval_episodes=8"]
STEPS = 20_480  # 80 updates of 256 steps: 5 evaluations of 16 updates, one update per chunk


def _train(out, *extra):
    argv = ["train", "ppo", "--env", "cartpole", "--steps", str(STEPS), "--seed", "1", "--out", str(out)]
    return main(argv + [a for s in SMALL for a in ("--set", s)] + list(extra))


def _rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _error_line(capsys) -> str:
    """The one error line on stderr (progress lines go there too)."""
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fnrl: error:")]
    assert len(errors) == 1, errors
    return errors[0]


def _final_learner(out):
    """The learner of the newest checkpoint in run directory ``out``."""
    config = fnrl_config.override(ppo.Config(env="cartpole", total_steps=STEPS), SMALL)
    train = ppo.make_train(config)
    with Checkpoints(str(out / "checkpoints")) as checkpoints:
        return checkpoints.restore(jax.eval_shape(train.init, jax.random.PRNGKey(1))).learner


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One uninterrupted run."""
    out = tmp_path_factory.mktemp("run") / "uninterrupted"
    assert _train(out) == 0
    return out


def test_run_directory_holds_config_metrics_tensorboard_checkpoints(run):
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "metrics.jsonl", "summary.json", "curve.png", "checkpoints"} <= names
    assert any(n.startswith("events.out.tfevents") for n in names)
    saved = json.loads((run / "config.json").read_text())
    assert saved["algo"] == "ppo" and saved["seed"] == 1 and saved["config"]["num_envs"] == 8
    rows = _rows(run)
    assert [r["step"] for r in rows] == [4096, 8192, 12288, 16384, 20480]
    # Checkpoints are taken at every evaluation; the newest two are kept (named by chunk count).
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir()) == [64, 80]
    assert rows[-1]["episode_return"] > 100  # it learned something (random play scores ~22)


class _Killed(Exception):
    pass


def test_resume_after_an_interruption_ends_with_the_same_parameters(run, tmp_path, monkeypatch, capsys):
    """Interrupted after the 3rd evaluation (checkpoints every 2 evaluations, so the newest is
    after the 2nd, 8 updates earlier), resumed, the run ends with bit-identical parameters and
    the same evaluation rows as the uninterrupted one."""
    out = tmp_path / "interrupted"
    log = fnrl_logging.RunLogger.log

    def log_then_die(self, row):
        log(self, row)
        if row["step"] == 12288:
            raise _Killed

    monkeypatch.setattr(fnrl_logging.RunLogger, "log", log_then_die)
    with pytest.raises(_Killed):
        _train(out, "--checkpoint-every", "2")
    monkeypatch.undo()
    assert [r["step"] for r in _rows(out)] == [4096, 8192, 12288]
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [32]
    assert not (out / "summary.json").exists()

    assert main(["train", "--resume", str(out)]) == 0
    assert "resuming" in capsys.readouterr().out
    expected, resumed = _final_learner(run), _final_learner(out)
    for a, b in zip(jax.tree_util.tree_leaves(expected), jax.tree_util.tree_leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    # The row logged after the checkpoint was dropped and recomputed: one row per evaluation.
    drop = ("sps", "wall_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in _rows(out)] == \
           [{k: v for k, v in r.items() if k not in drop} for r in _rows(run)]
    assert json.loads((out / "summary.json").read_text())["resumed"] is True


DQN_SETS = ["learning_starts=500", "num_evals=3", "buffer_size=4000", "batch_size=32", "hidden_sizes=32,32",
            "prioritized=true", "n_step=3", "eval_episodes=4"]


def test_an_off_policy_run_resumes_exactly_with_its_replay_buffer(tmp_path, monkeypatch):
    """DQN with prioritised 3-step replay, interrupted after its 2nd evaluation (before that
    evaluation's checkpoint) and resumed from the 1st: the
    checkpoint holds the buffer and its priorities, so the resumed run ends with the same
    parameters, buffer and evaluation rows as the uninterrupted one."""
    argv = ["train", "dqn", "--env", "cartpole", "--steps", "3000", "--seed", "2"]
    argv += [a for s in DQN_SETS for a in ("--set", s)]
    assert main(argv + ["--out", str(tmp_path / "whole")]) == 0
    log = fnrl_logging.RunLogger.log

    def log_then_die(self, row):
        log(self, row)
        if len(_rows(tmp_path / "cut")) == 2:
            raise _Killed

    monkeypatch.setattr(fnrl_logging.RunLogger, "log", log_then_die)
    with pytest.raises(_Killed):
        main(argv + ["--out", str(tmp_path / "cut")])
    monkeypatch.undo()
    assert len(list((tmp_path / "cut" / "checkpoints").iterdir())) == 1  # the one after the 1st evaluation
    assert main(["train", "--resume", str(tmp_path / "cut")]) == 0

    drop = ("sps", "wall_s")
    whole, cut = ([{k: v for k, v in r.items() if k not in drop} for r in _rows(tmp_path / name)]
                  for name in ("whole", "cut"))
    assert len(whole) == 3 and whole == cut
    config = fnrl_config.override(dqn.Config(env="cartpole", total_steps=3000), DQN_SETS)
    like = jax.eval_shape(dqn.make_train(config).init, jax.random.PRNGKey(2))
    with Checkpoints(str(tmp_path / "whole" / "checkpoints")) as a, \
            Checkpoints(str(tmp_path / "cut" / "checkpoints")) as b:
        assert a.latest() == b.latest()
        for x, y in zip(jax.tree_util.tree_leaves(a.restore(like)), jax.tree_util.tree_leaves(b.restore(like)),
                        strict=True):
            np.testing.assert_array_equal(x, y)


def test_non_finite_metric_stops_training_and_keeps_the_last_finite_checkpoint(tmp_path, monkeypatch, capsys):
    """A NaN injected into the policy loss from the 41st chunk on (step 10496, in the third
    evaluation period) stops the run there: exit code 3, the metric named, the checkpoint after
    the second evaluation kept and finite."""
    make_train = ppo.make_train

    def poisoned(config, **kwargs):
        train = make_train(config, **kwargs)

        def advance(carry):
            carry, metrics = train.advance(carry)
            loss = jnp.where(carry.chunk >= 41, jnp.nan, metrics["policy_loss"])
            return carry, {**metrics, "policy_loss": loss}

        return dataclasses.replace(train, advance=advance)

    monkeypatch.setattr(ppo, "make_train", poisoned)
    out = tmp_path / "nan"
    assert _train(out) == cli.NON_FINITE_EXIT
    err = _error_line(capsys)
    assert "training stopped at step 10496: non-finite policy_loss=nan" in err
    assert "checkpoints/32 (step 8192)" in err
    assert [r["step"] for r in _rows(out)] == [4096, 8192] and not (out / "summary.json").exists()
    learner = _final_learner(out)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree_util.tree_leaves(learner))


def test_diverging_learning_rate_is_caught(tmp_path, capsys):
    out = tmp_path / "diverge"
    assert _train(out, "--set", "learning_rate=1e30", "--set", "max_grad_norm=1e30") == cli.NON_FINITE_EXIT
    err = _error_line(capsys)
    assert "non-finite" in err and "no checkpoint was written" in err


def test_eval_scores_the_saved_policy(run, capsys):
    assert main(["eval", str(run), "--episodes", "16"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 16 and result["env"] == "cartpole"
    assert result["episode_return"] > 100  # the trained policy, not a fresh one (~22)


def test_plot_overlays_runs(run, tmp_path, capsys):
    out = tmp_path / "plot.png"
    assert main(["plot", str(run), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_config_file_and_print_config(tmp_path, capsys):
    """Precedence: defaults < --config < --env/--steps < --set; --print-config's output is itself
    a config file giving the same config."""
    path = tmp_path / "run.yaml"
    path.write_text("env: pendulum\ntotal_steps: 5000\nnum_envs: 4\nhidden_sizes: [32, 32]\nlearning_rate: 3e-4\n")
    argv = ["train", "ppo", "--config", str(path), "--steps", "7000", "--set", "num_envs=2", "--print-config"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    shown = yaml.safe_load(printed)
    assert shown["env"] == "pendulum" and shown["total_steps"] == 7000 and shown["num_envs"] == 2
    assert shown["hidden_sizes"] == [32, 32] and shown["learning_rate"] == 3e-4
    again = tmp_path / "printed.yaml"
    again.write_text(printed)
    assert main(["train", "ppo", "--config", str(again), "--print-config"]) == 0
    assert capsys.readouterr().out == printed


def test_the_command_line_uses_the_persistent_compilation_cache(run):
    """``fnrl train`` puts compiled programs in ``$FNRL_CACHE_DIR/jax`` (conftest points the whole
    test session there already, so the switch is checked from another directory)."""
    import os

    from fnrl import cli

    cache = os.path.join(os.environ["FNRL_CACHE_DIR"], "jax")
    assert any(name.startswith("jit_advance") for name in os.listdir(cache))
    before = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", "/elsewhere")
        cli._enable_compile_cache()
        assert jax.config.jax_compilation_cache_dir == cache
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_train_takes_your_own_algorithm_file(tmp_path, capsys):
    """The tutorial's algorithm, a .py file, through the command line, with its own config field."""
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "experiments" / "tutorial_expectile_ppo.py"
    out = tmp_path / "tutorial"
    argv = ["train", str(path), "--env", "cartpole", "--steps", "2048", "--out", str(out),
            "--set", "num_evals=1", "--set", "expectile=0.7"]
    assert main(argv) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["algo"] == str(path.resolve()) and saved["config"]["expectile"] == 0.7
    assert {"value", "policy_loss"} <= _rows(out)[0].keys()
    assert main(["train", str(tmp_path / "nope.py"), "--env", "cartpole", "--steps", "10", "--out", str(out)]) == 2
    assert "no algorithm file" in capsys.readouterr().err


def test_signals_are_recorded_a_second_ctrl_c_stops_at_once_and_handlers_come_back():
    import os
    import signal

    from fnrl.runner import stop_on_signals

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stop_on_signals() as signals:
        assert signals.received is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.received == signal.SIGTERM  # recorded; the process goes on
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.received == signal.SIGTERM  # the first signal is the one reported
    with pytest.raises(KeyboardInterrupt):
        with stop_on_signals() as signals:
            os.kill(os.getpid(), signal.SIGINT)
            assert signals.received == signal.SIGINT
            os.kill(os.getpid(), signal.SIGINT)  # asked twice: stop now
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
