"""Every algorithm that `fnrl list` prints, on one environment of each kind it supports
(discrete or continuous actions, or tabular), through the command line: trained with
checkpoints, stopped by SIGTERM in the middle of an evaluation period, resumed, evaluated with
`fnrl eval` and plotted with `fnrl plot`. The resumed run must end bit-identical to an
uninterrupted one (the whole carry: parameters, optimiser states, environments, replay buffer,
keys).

The cases come from `fnrl.algorithms.names()` and each module's ``SUPPORTS``, and the small
budget from field names every config of that family declares, so an algorithm added later is
covered without editing this file (one that needs a particular environment names it as its
module's ``ENV``, e.g. gcbc's goal/point). Offline algorithms (a config with a ``dataset`` field) learn
from a small dataset of a scripted policy on the case's environment (tests/offline_data.py);
one that evaluates a policy (a ``policy`` field: fqe) evaluates a short bc run on that dataset,
and one that imitates an expert (an ``expert`` field: dagger) imitates that run.
"""
import dataclasses
import json
import os
import signal

import jax
import numpy as np
import pytest

from fnrl import algorithms, config as fnrl_config, finetune, progress, runs
from fnrl.checkpoint import Checkpoints
from fnrl.cli import main

ENVS = {"discrete": "cartpole", "continuous": "pendulum", "tabular": "tabular/gridworld"}
STEPS = 1024
# A small budget, applied to each config field of that name that the algorithm has.
SMALL = {"num_envs": 4, "rollout_length": 8, "n_steps": 8, "num_evals": 2, "eval_episodes": 2,
         "hidden_sizes": "16,16", "num_epochs": 1, "num_minibatches": 2, "value_epochs": 1,
         "value_minibatches": 2, "learning_starts": 100, "batch_size": 16, "buffer_size": 1000,
         # model-based: a small ensemble fitted briefly, a small planner, few imagined branches and
         # differentiated rollouts
         "model_hidden_sizes": "16,16", "model_num_models": 2, "model_num_epochs": 2, "model_batch_size": 32,
         "horizon": 5, "population": 16, "elites": 4, "iterations": 1, "model_rollouts": 8,
         "model_buffer_size": 1000, "policy_updates": 1, "model_every": 256, "num_starts": 8}
# An algorithm that needs a particular environment (gcbc: a goal environment) names it as its module's ENV.
CASES = [(algo, getattr(algorithms.get(algo), "ENV", ENVS[kind])) for algo in algorithms.names()
         for kind in getattr(algorithms.get(algo), "SUPPORTS", ("discrete", "continuous"))]


@pytest.fixture(scope="module", autouse=True)
def built_once():
    """The three runs of a case (whole, cut, resumed) build their run from the same config in one
    process: ``runs.make_train`` (what ``fnrl train`` builds a run with) is memoised by config here,
    so the cut and resumed runs reuse the whole run's traced and compiled programs (JAX caches them
    by function) and the case pays for one compilation. What is checked (rows, whole carry) is
    unchanged; a resumed run that builds afresh is tests/test_run.py's."""
    built, make_train = {}, runs.make_train

    def memoised(module, config, seeds=None, grid=None, check=False):
        key = (module.__name__, repr(config), repr(seeds), repr(grid or None))
        if key not in built:
            built[key] = make_train(module, config, seeds, grid, check)
        return built[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runs, "make_train", memoised)
        yield


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A dataset per environment, for the offline algorithms, made when one first needs it."""
    import offline_data

    root, made = tmp_path_factory.mktemp("datasets"), {}

    def get(env):
        if env not in made:
            made[env] = offline_data.make(root / env.replace("/", "-"), env, offline_data.expert(env, eps=0.3),
                                          1000).path
        return made[env]

    def policy(env):
        """A short bc run on ``env``'s dataset: the policy a policy-evaluation algorithm evaluates."""
        run = root / f"bc-{env.replace('/', '-')}"
        if not run.exists():
            assert main(["train", "bc", "--dataset", get(env), "--env", env, "--steps", "64", "--out", str(run),
                         "--set", "num_evals=1", "--set", "eval_episodes=1", "--set", "hidden_sizes=16,16"]) == 0
        return str(run)

    get.policy = policy
    return get


def _argv(algo: str, env: str, datasets) -> list[str]:
    fields = {f.name for f in dataclasses.fields(algorithms.get(algo).Config)}
    sets = [a for k, v in SMALL.items() if k in fields for a in ("--set", f"{k}={v}")]
    if "policy" in fields:
        sets += ["--set", f"policy={datasets.policy(env)}"]
    if "expert" in fields:  # an imitation learner's labeller (dagger)
        sets += ["--set", f"expert={datasets.policy(env)}"]
    data = ["--dataset", datasets(env)] if "dataset" in fields else []
    return ["train", algo, "--env", env, "--steps", str(STEPS), "--seed", "3"] + data + sets


def _rows(out) -> list[dict]:
    """The evaluation rows, without the timings (which differ between runs)."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("sps", "wall_s")} for row in rows]


def _newest_carry(out):
    """The whole carry of the newest checkpoint of run directory ``out`` (a fine-tuning run's too)."""
    run = json.loads((out / "config.json").read_text())
    module = finetune if run.get("finetune") else algorithms.get(run["algo"])
    train = runs.make_train(module, fnrl_config.apply(module.Config(), run["config"]))
    with Checkpoints(str(out / "checkpoints"), create=False) as checkpoints:
        return checkpoints.restore(jax.eval_shape(train.init, jax.random.PRNGKey(run["seed"])))


def _checkpoints(out) -> list[int]:
    return sorted(int(p.name) for p in (out / "checkpoints").iterdir())


def sigterm_after_first_checkpoint(monkeypatch) -> None:
    """SIGTERM will arrive while the second chunk after the run's first checkpoint runs: that
    chunk finishes, is checkpointed, and ``fnrl train`` exits 128 + 15 (``monkeypatch.undo()`` after)."""
    save, update, sent = Checkpoints.save, progress.Progress.update, []

    def save_and_arm(self, chunks, carry):
        save(self, chunks, carry)
        sent.append(False)

    def update_and_signal(self, step):
        update(self, step)
        if sent and not sent[-1]:
            sent[-1] = True
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Checkpoints, "save", save_and_arm)
    monkeypatch.setattr(progress.Progress, "update", update_and_signal)


def stop_resume_bit_exact(argv: list[str], whole, cut, monkeypatch, capsys) -> None:
    """``fnrl train *argv --out cut`` stopped by SIGTERM in the middle of its second evaluation
    period and resumed ends as ``whole`` (the same run, uninterrupted) did: rows and whole carry."""
    sigterm_after_first_checkpoint(monkeypatch)
    capsys.readouterr()
    assert main(argv + ["--out", str(cut)]) == 128 + signal.SIGTERM
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fnrl: SIGTERM: stopped at step") and "--resume" in err[-1], err
    first, stopped = _checkpoints(cut)
    assert stopped == first + 2  # in the middle of the second evaluation period
    assert len(_rows(cut)) == 1 and not (cut / "summary.json").exists()

    assert main(["train", "--resume", str(cut)]) == 0
    assert _rows(cut) == _rows(whole)
    for a, b in zip(jax.tree_util.tree_leaves(_newest_carry(whole)), jax.tree_util.tree_leaves(_newest_carry(cut)),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert json.loads((cut / "summary.json").read_text())["resumed"] is True


@pytest.mark.parametrize("algo, env", CASES, ids=[f"{a}-{e}" for a, e in CASES])
def test_train_stop_resume_eval_plot(algo, env, tmp_path, monkeypatch, capsys, datasets):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(_argv(algo, env, datasets) + ["--out", str(whole)]) == 0
    assert len(_rows(whole)) == 2
    stop_resume_bit_exact(_argv(algo, env, datasets), whole, cut, monkeypatch, capsys)

    capsys.readouterr()
    assert main(["eval", str(cut), "--episodes", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["env"] == env and np.isfinite(result["episode_return"])

    figure = tmp_path / "curves.png"
    assert main(["plot", str(whole), str(cut), "--out", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Algorithms that load another run in make_train (fqe's evaluated policy, dagger's expert): under
# --seeds that happens while the vmapped program is traced, and the run must still load.
LOADERS = [(algo, env) for algo, env in CASES if env == ENVS["continuous"]
           and {"policy", "expert"} & {f.name for f in dataclasses.fields(algorithms.get(algo).Config)}]


@pytest.mark.parametrize("algo, env", LOADERS, ids=[f"{a}-{e}" for a, e in LOADERS])
def test_a_run_that_loads_another_trains_over_seeds(algo, env, tmp_path, datasets):
    out = tmp_path / "seeds"
    assert main(_argv(algo, env, datasets) + ["--seeds", "2", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["seeds"] == [3, 4]  # from _argv's --seed 3
    rows = _rows(out)
    assert len(rows) == 2 and np.all(np.isfinite(rows[-1]["episode_return"]))
