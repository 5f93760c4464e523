"""The catalogue of bad command-line input: each case exits with code 2 and one line on stderr
naming what was wrong, raises nothing (so no traceback), and leaves every file as it was
(nothing written, nothing lost).

Paths that cannot be created, read or written are spelled under /dev/null (not a directory),
so the cases hold for root too, as in CI.
"""
import hashlib
import json
import shutil

import pytest

from fnrl.cli import main

CARTPOLE = ["--env", "cartpole", "--steps", "1000"]
TINY = ["--set", "num_envs=2", "--set", "rollout_length=8", "--set", "num_evals=1", "--set", "eval_episodes=1",
        "--set", "hidden_sizes=8"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished REINFORCE run (one evaluation, one checkpoint)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "reinforce", "--env", "cartpole", "--steps", "16", "--out", str(out)] + TINY) == 0
    return out


def _snapshot(root) -> dict[str, str]:
    """Every file under ``root``, by relative path, with a digest of its contents."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _corrupt_every_checkpoint(run) -> None:
    for data in (run / "checkpoints").glob("*/default/**/d/*"):
        data.write_bytes(b"overwritten")


def _drop_checkpoints(run) -> None:
    shutil.rmtree(run / "checkpoints")


def _corrupt_config(run) -> None:
    (run / "config.json").write_text("{not json")


def _retarget_to_tabular(run) -> None:
    """The run's config.json names a tabular environment (which has no renderer)."""
    config = json.loads((run / "config.json").read_text())
    config["env"] = config["config"]["env"] = "tabular/chain"
    (run / "config.json").write_text(json.dumps(config))


BERNOULLI = ["--env", "bandit/bernoulli(means=(0.9, 0.5))", "--steps", "100", "--out", "{tmp}/new"]


# (argv, expected part of the one error line). {run} is a copy of the finished run, {tmp} the
# test's directory; a case's setup (third element, optional) edits the copy first.
CASES = {
    "unknown algorithm": (["train", "nope"] + CARTPOLE + ["--out", "{tmp}/new"], "unknown algorithm 'nope'"),
    "close algorithm name": (["train", "reinforc"] + CARTPOLE + ["--out", "{tmp}/new"], "did you mean reinforce"),
    "unknown environment": (["train", "reinforce", "--env", "cartpol", "--steps", "10", "--out", "{tmp}/new"],
                            "unknown environment 'cartpol'"),
    "action kind": (["train", "dqn", "--env", "pendulum", "--steps", "10", "--out", "{tmp}/new"],
                    "dqn needs a discrete-action environment"),
    "not tabular": (["train", "dyna_q"] + CARTPOLE + ["--out", "{tmp}/new"],
                    "dyna_q needs a tabular environment (one-hot states, discrete actions: tabular/*, deepsea/*); "
                    "cartpole is not"),
    "invalid value": (["train", "reinforce"] + CARTPOLE + ["--set", "gamma=1.5", "--out", "{tmp}/new"],
                      "invalid gamma=1.5"),
    "unknown key": (["train", "reinforce"] + CARTPOLE + ["--set", "lr=0.1", "--out", "{tmp}/new"],
                    "unknown config key 'lr'"),
    "unknown bonus": (["train", "dqn"] + CARTPOLE + ["--set", "bonus=curiosity", "--out", "{tmp}/new"],
                      "invalid bonus='curiosity': must be one of"),
    "count bonus on a continuous state": (["train", "dqn"] + CARTPOLE + ["--set", "bonus=count", "--out", "{tmp}/new"],
                                          "bonus=count counts one-hot observations"),
    "too many hash bits": (["train", "ppo"] + CARTPOLE + ["--set", "bonus=simhash", "--set", "bonus_hash_bits=40",
                                                          "--out", "{tmp}/new"], "invalid bonus_hash_bits=40"),
    "bad environment arguments": (["train", "dqn", "--env", "tabular/chain(num_states=)", "--steps", "10",
                                   "--out", "{tmp}/new"], "write NAME(key=value, ...)"),
    "wrong type": (["train", "reinforce"] + CARTPOLE + ["--set", "num_envs=abc", "--out", "{tmp}/new"],
                   "invalid num_envs='abc'"),
    "override without =": (["train", "reinforce"] + CARTPOLE + ["--set", "gamma", "--out", "{tmp}/new"],
                           "expected key=value"),
    "zero steps": (["train", "reinforce", "--env", "cartpole", "--steps", "0", "--out", "{tmp}/new"],
                   "invalid --steps 0"),
    "zero checkpoint interval": (["train", "reinforce"] + CARTPOLE + ["--checkpoint-every", "0", "--out", "{tmp}/new"],
                                 "invalid --checkpoint-every 0"),
    "no --out": (["train", "reinforce"] + CARTPOLE, "train needs --out DIR"),
    "no --env": (["train", "reinforce", "--steps", "10", "--out", "{tmp}/new"], "train needs --env"),
    "no algorithm": (["train", "--env", "cartpole"], "train needs an algorithm"),
    "--out that cannot be created": (["train", "reinforce"] + CARTPOLE + ["--out", "/dev/null/run"],
                                     "cannot write --out '/dev/null/run'"),
    "--out holding a run": (["train", "reinforce"] + CARTPOLE + ["--out", "{run}"], "already holds a run"),
    "missing algorithm file": (["train", "{tmp}/mine.py"] + CARTPOLE + ["--out", "{tmp}/new"], "no algorithm file"),
    "missing --config": (["train", "reinforce", "--config", "{tmp}/missing.yaml", "--out", "{tmp}/new"], "not found"),
    "unreadable --config": (["train", "reinforce", "--config", "/dev/null/run.yaml", "--out", "{tmp}/new"],
                            "cannot read config file"),
    "--config with a wrong type": (["train", "ppo"] + CARTPOLE + ["--config", "{tmp}/float.yaml", "--out", "{tmp}/new"],
                                   "invalid num_envs=4.5"),
    "--config with an unknown key": (["train", "ppo"] + CARTPOLE + ["--config", "{tmp}/lr.yaml", "--out", "{tmp}/new"],
                                     "unknown config key 'lr'"),
    "--config that does not parse": (["train", "ppo"] + CARTPOLE + ["--config", "{tmp}/broken.yaml", "--out",
                                                                    "{tmp}/new"], "invalid YAML"),
    "--config without env": (["train", "ppo", "--config", "{tmp}/noenv.json", "--out", "{tmp}/new"],
                             "train needs --env"),
    "--config of another format": (["train", "reinforce", "--config", "{tmp}/run.toml", "--out", "{tmp}/new"],
                                   "unknown extension '.toml'"),
    "--coordinator alone": (["train", "reinforce"] + CARTPOLE + ["--coordinator", "localhost:1", "--out", "{tmp}/new"],
                            "need --distributed"),
    "--resume of no run": (["train", "--resume", "{tmp}"], "holds no run"),
    "--resume of an unreadable path": (["train", "--resume", "/dev/null"], "cannot read /dev/null/config.json"),
    "--resume with settings": (["train", "--resume", "{run}", "--set", "num_envs=4"],
                               "--resume takes the run's own settings from DIR/config.json; drop --set"),
    "--resume with --out": (["train", "--resume", "{run}", "--out", "{tmp}/new"], "drop --out"),
    "--resume as another algorithm": (["train", "ppo", "--resume", "{run}"], "is a reinforce run, not ppo"),
    "--resume of a corrupt config.json": (["train", "--resume", "{run}"], "config.json is corrupt", _corrupt_config),
    "--resume with every checkpoint corrupt": (["train", "--resume", "{run}"], "no usable checkpoint",
                                               _corrupt_every_checkpoint),
    "--sweep of an integer field": (["train", "reinforce"] + CARTPOLE + ["--sweep", "num_envs=2,4", "--out",
                                                                         "{tmp}/new"],
                                    "cannot sweep 'num_envs': not a number field"),
    "--sweep of an unknown key": (["train", "reinforce"] + CARTPOLE + ["--sweep", "lr=0.1,0.2", "--out", "{tmp}/new"],
                                  "cannot sweep 'lr': unknown config key"),
    "--sweep of a refused value": (["train", "reinforce"] + CARTPOLE + ["--sweep", "gamma=0.9,1.5", "--out",
                                                                        "{tmp}/new"], "--sweep: invalid gamma=1.5"),
    "--sweep without values": (["train", "reinforce"] + CARTPOLE + ["--sweep", "gamma", "--out", "{tmp}/new"],
                               "expected KEY=V1,V2,..."),
    "--sweep and --set of one key": (["train", "reinforce"] + CARTPOLE + ["--sweep", "gamma=0.9", "--set", "gamma=0.8",
                                                                          "--out", "{tmp}/new"], "given twice"),
    "--sweep of a value the program is built from": (
        ["train", "dqn"] + CARTPOLE + ["--sweep", "exploration_fraction=0.1,0.2", "--out", "{tmp}/new"],
        "cannot sweep exploration_fraction in one program"),
    "environment size 0": (["train", "dqn", "--env", "deepsea/0", "--steps", "10", "--out", "{tmp}/new"],
                           "environment 'deepsea/0': deepsea/N needs a positive integer N"),
    "--seeds 0": (["train", "reinforce"] + CARTPOLE + ["--seeds", "0", "--out", "{tmp}/new"], "invalid --seeds '0'"),
    "--seeds repeated": (["train", "reinforce"] + CARTPOLE + ["--seeds", "1,1", "--out", "{tmp}/new"],
                         "distinct integers"),
    "--resume with --seeds": (["train", "--resume", "{run}", "--seeds", "2"], "drop --seeds"),
    "eval of no run": (["eval", "{tmp}"], "holds no run"),
    "eval without checkpoints": (["eval", "{run}"], "holds no checkpoint", _drop_checkpoints),
    "eval with every checkpoint corrupt": (["eval", "{run}"], "no usable checkpoint", _corrupt_every_checkpoint),
    "eval of zero episodes": (["eval", "{run}", "--episodes", "0"], "invalid --episodes 0"),
    "render of a run with no renderer": (["render", "{run}"], "cannot render tabular/chain", _retarget_to_tabular),
    "render --out of the wrong kind": (["render", "{run}", "--out", "{tmp}/episode.html"],
                                       "cartpole renders as an animated GIF, so --out must end in .gif"),
    "render --out that cannot be written": (["render", "{run}", "--out", "/dev/null/episode.gif"],
                                            "cannot write --out '/dev/null/episode.gif'"),
    "plot of no run": (["plot", "{tmp}/missing", "--out", "{tmp}/curves.png"], "missing: no config.json"),
    "plot of an unknown metric": (["plot", "{run}", "--metric", "nope", "--out", "{tmp}/curves.png"],
                                  "unknown metric 'nope'"),
    "plot --out that cannot be written": (["plot", "{run}", "--out", "/dev/null/curves.png"],
                                          "cannot write --out '/dev/null/curves.png'"),
    "bandit: unknown algorithm": (["bandit", "ucb"] + BERNOULLI,
                                  "unknown bandit algorithm 'ucb' (did you mean ucb1, kl_ucb?); accepted: epsilon_greedy"),
    "bandit: unknown parameter": (["bandit", "kl_ucb(d=3)"] + BERNOULLI,
                                  "bandit algorithm 'kl_ucb' has no parameter 'd'; accepted: c, num_bisections"),
    "bandit: refused parameter value": (["bandit", "epsilon_greedy(epsilon=1.5)"] + BERNOULLI,
                                        "`epsilon` must be in [0, 1], got 1.5"),
    "bandit: parameters that do not parse": (["bandit", "kl_ucb(c=)"] + BERNOULLI,
                                             "bandit algorithm 'kl_ucb(c=)': write NAME(key=value, ...)"),
    "bandit: Beta-Bernoulli Thompson on Gaussian arms": (
        ["bandit", "ucb1", "thompson", "--env", "bandit/gaussian", "--steps", "100", "--out", "{tmp}/new"],
        "'thompson' needs rewards in [0, 1]"),
    "bandit: an algorithm twice": (["bandit", "ucb1", "ucb1"] + BERNOULLI, "'ucb1' is given twice"),
    "bandit: no algorithm": (["bandit"] + BERNOULLI, "bandit needs one or more algorithms"),
    "bandit: a non-bandit environment": (["bandit", "ucb1", "--env", "cartpole", "--steps", "100", "--out",
                                          "{tmp}/new"], "--env 'cartpole' is not a bandit"),
    "bandit: unknown environment": (["bandit", "ucb1", "--env", "bandit/bernouli", "--steps", "100", "--out",
                                     "{tmp}/new"], "unknown environment 'bandit/bernouli'"),
    "bandit: bad arm means": (["bandit", "ucb1", "--env", "bandit/bernoulli(means=(1.5, 0.5))", "--steps", "100",
                               "--out", "{tmp}/new"], "the arm means must be probabilities in [0, 1]"),
    "bandit: no --env": (["bandit", "ucb1", "--steps", "100", "--out", "{tmp}/new"], "bandit needs --env"),
    "bandit: no --steps": (["bandit", "ucb1", "--env", "bandit/bernoulli", "--out", "{tmp}/new"],
                           "bandit needs --steps"),
    "bandit: zero steps": (["bandit", "ucb1", "--env", "bandit/bernoulli", "--steps", "0"], "invalid --steps 0"),
    "bandit: zero runs": (["bandit", "ucb1"] + BERNOULLI + ["--runs", "0"], "invalid --runs 0"),
    "bandit: negative chunk": (["bandit", "ucb1"] + BERNOULLI + ["--chunk", "-1"], "invalid --chunk -1"),
    "bandit: --out that cannot be created": (["bandit", "ucb1", "--env", "bandit/bernoulli", "--steps", "100",
                                              "--out", "/dev/null/run"], "cannot write --out '/dev/null/run'"),
    "bandit: --out holding results": (["bandit", "ucb1", "--env", "bandit/bernoulli", "--steps", "100", "--out",
                                       "{run}"], "already holds summary.json or curve.png"),
    "plan: unknown planner": (["plan", "cme", "--env", "pendulum", "--out", "{tmp}/new"],
                              "unknown planner 'cme' (did you mean cem?); accepted: random_shooting, cem, mppi, mcts"),
    "plan: no planner": (["plan", "--env", "pendulum"], "plan needs a planner"),
    "plan: no --env": (["plan", "cem", "--out", "{tmp}/new"], "plan needs --env ENV"),
    "plan: unknown environment": (["plan", "cem", "--env", "pendulm", "--out", "{tmp}/new"],
                                  "unknown environment 'pendulm'"),
    "plan: invalid value": (["plan", "cem", "--env", "pendulum", "--set", "elites=300", "--out", "{tmp}/new"],
                            "invalid elites=300: must be smaller than population=200"),
    "plan: unknown key": (["plan", "mppi", "--env", "pendulum", "--set", "lr=0.1", "--out", "{tmp}/new"],
                          "unknown config key 'lr' for planning"),
    "plan: wrong type": (["plan", "mcts", "--env", "cartpole", "--set", "num_simulations=many", "--out", "{tmp}/new"],
                         "invalid num_simulations='many': must be an integer"),
    "plan: --config with an unknown key": (["plan", "cem", "--env", "pendulum", "--config", "{tmp}/lr.yaml"],
                                           "unknown config key 'lr'"),
    "plan: mcts on continuous actions": (["plan", "mcts", "--env", "pendulum", "--out", "{tmp}/new"],
                                         "mcts needs discrete actions; this model's actions are continuous"),
    "plan: mppi on discrete actions": (["plan", "mppi", "--env", "cartpole", "--out", "{tmp}/new"],
                                       "mppi needs continuous actions; this model's actions are discrete"),
    "plan: zero episodes": (["plan", "cem", "--env", "pendulum", "--episodes", "0"], "invalid --episodes 0"),
    "plan: zero steps": (["plan", "cem", "--env", "pendulum", "--max-steps", "0"], "invalid --max-steps 0"),
    "plan: --render without --out": (["plan", "cem", "--env", "pendulum", "--render"], "give --out DIR"),
    "plan: --render of a tabular task": (["plan", "mcts", "--env", "tabular/chain", "--render", "--out", "{tmp}/new"],
                                         "cannot render tabular/chain"),
    "plan: --out that cannot be created": (["plan", "cem", "--env", "pendulum", "--out", "/dev/null/run"],
                                           "cannot write --out '/dev/null/run'"),
    "plan: --out holding results": (["plan", "cem", "--env", "pendulum", "--out", "{run}"],
                                    "already holds summary.json"),
}
BANDIT_CASES = [case for case in CASES if CASES[case][0][0] == "bandit"]
PLAN_CASES = [case for case in CASES if CASES[case][0][0] == "plan"]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_no_file(case, finished, tmp_path, capsys):
    argv, expected, *setup = CASES[case]
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    files = {"run.toml": "env = 'cartpole'\n", "float.yaml": "num_envs: 4.5\n", "lr.yaml": "lr: 0.1\n",
             "broken.yaml": "gamma: [1\n", "noenv.json": '{"total_steps": 1000}'}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for edit in setup:
        edit(run)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    code = main([a.format(run=run, tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    errors = [line for line in err if line.startswith("fnrl: error:")]
    assert len(errors) == 1 and expected in errors[0], err
    assert all(line.startswith("fnrl: ") for line in err), err  # only fnrl's own lines: no traceback
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("case", BANDIT_CASES)
def test_bandit_bad_input_is_refused_before_anything_is_compiled(case, tmp_path, monkeypatch, capsys):
    from fnrl import bandits

    def compile_nothing(*args, **kwargs):
        raise AssertionError("fnrl bandit compiled a program for bad input")

    monkeypatch.setattr(bandits, "regret_curves", compile_nothing)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")
    argv, expected = CASES[case]
    assert main([a.format(run=tmp_path / "run", tmp=tmp_path) for a in argv]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("case", PLAN_CASES)
def test_plan_bad_input_is_refused_before_anything_is_compiled(case, tmp_path, monkeypatch, capsys):
    from fnrl import planning

    def compile_nothing(*args, **kwargs):
        raise AssertionError("fnrl plan compiled a program for bad input")

    monkeypatch.setattr(planning, "run_mpc", compile_nothing)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")
    (tmp_path / "lr.yaml").write_text("lr: 0.1\n")
    argv, expected = CASES[case]
    assert main([a.format(run=tmp_path / "run", tmp=tmp_path) for a in argv]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(finished, tmp_path, capsys):
    """The newest checkpoint's data overwritten: `fnrl eval` and `--resume` say so in one line,
    use the checkpoint before it, and --resume ends as the uninterrupted run did."""
    run = tmp_path / "run"
    argv = ["train", "reinforce", "--env", "cartpole", "--steps", "32", "--out", str(run)] + TINY
    assert main(argv + ["--set", "num_evals=2"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    older, newest = sorted(int(p.name) for p in (run / "checkpoints").iterdir())
    for data in (run / "checkpoints" / str(newest)).glob("default/**/d/*"):
        data.write_bytes(b"overwritten")
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"skipping checkpoint {run / 'checkpoints' / str(newest)} is corrupt" in err[0], err

    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"checkpoints/{newest} is corrupt" in out and "resuming" in out
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["episode_return"] == summary["episode_return"] and resumed["steps"] == summary["steps"]
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir()) == [older, newest]


def test_distributed_refuses_an_algorithm_without_num_devices(tmp_path, capsys):
    """Checked before joining a run would matter: `_build` sees no num_devices field on DQN."""
    from fnrl import cli

    args = cli._parser().parse_args(["train", "dqn", "--env", "cartpole", "--steps", "100", "--distributed",
                                     "--out", str(tmp_path / "new")])
    with pytest.raises(cli.UsageError, match="--distributed: dqn trains on one device"):
        cli._build(args.algo, {}, "", args)
    assert not (tmp_path / "new").exists()
