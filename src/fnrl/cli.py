"""The ``fnrl`` command line.

    fnrl train <algo> --env ENV --steps N --seed S --out DIR [--config FILE] [--set key=value ...]
    fnrl train <algo> ... --seeds 5 [--sweep KEY=V1,V2,...]   # many runs in one vmapped program
    fnrl train <algo> ... --print-config          # the effective config, as YAML; trains nothing
    fnrl train --resume DIR                        # continue a run from its newest checkpoint
    fnrl eval DIR [--episodes N]                   # evaluate a run's saved policy
    fnrl render DIR [--out FILE]                   # one episode: a GIF (classic control), an HTML viewer (Brax)
    fnrl plot DIR... [--out FILE.png]              # overlay runs; seeds as mean ± std
    fnrl bandit ALGO... --env BANDIT --steps T [--runs R] [--chunk C] [--seed S] [--out DIR]
    fnrl plan PLANNER --env ENV [--episodes N] [--set key=value ...] [--out DIR [--render]]
    fnrl train <offline algo> --dataset DIR_OR_MINARI_ID --steps N --out DIR   # --env from the dataset
    fnrl train <algo> --finetune OFFLINE_RUN_DIR --steps N --out DIR   # continue an offline run online
    fnrl collect --env ENV --policy RUN_DIR|random --steps N --out DATASET [--noise]
    fnrl collect --mix DATASET... --out DATASET      # episodes of several datasets, one after another
    fnrl collect --replay RUN_DIR --out DATASET      # the replay buffer of an off-policy run's checkpoint
    fnrl ope --dataset DATASET --policy RUN_DIR [--gamma G] [--true-episodes N]  # off-policy evaluation
    fnrl list

``<algo>`` is a name from ``fnrl list`` or a ``.py`` file defining ``Config`` and ``make_train``
(your own algorithm). A config is built as class defaults < the tuned preset for the algorithm
and environment (``fnrl/presets.yaml``; ``--no-preset`` leaves it out) < ``--config FILE`` (YAML
or JSON) < ``--env``/``--steps`` < ``--set key=value``. ``--seeds`` and ``--sweep`` train the
members of a seeds × values grid as one program (:mod:`fnrl.sweep`); their run directory holds
one list per metric in ``metrics.jsonl``, a TensorBoard run per member under ``tensorboard/``,
and per-member and per-grid-point returns in ``summary.json``. A run directory holds ``config.json`` (written first), ``metrics.jsonl``
and TensorBoard event files (one row per evaluation, as the run goes), ``checkpoints/``
(the whole training state after every ``--checkpoint-every`` evaluations; the newest two are
kept), and at the end ``summary.json`` and ``curve.png``. ``--resume DIR`` continues from the
newest checkpoint and ends with exactly the parameters an uninterrupted run would have.

Training stops at the first non-finite metric (exit code 3), naming it; the checkpoints
written so far all hold finite states. SIGTERM or Ctrl-C (SIGINT) finish the running chunk,
save a checkpoint and exit with 128 + the signal number (143, 130); ``--resume`` continues
bit-exactly. A corrupt or partial checkpoint is reported and the previous one used. The
driver is :func:`fnrl.runner.run`; this module parses arguments, checks them and writes
``config.json``, ``summary.json`` and ``curve.png``. The persistent JAX compilation cache
(``$FNRL_CACHE_DIR/jax``, default ``~/.cache/fnrl/jax``) makes a second run of the same
configuration start faster; ``--no-compile-cache`` turns it off.

``fnrl bandit`` compares bandit algorithms (:mod:`fnrl.bandits`; parameters in parentheses,
``"kl_ucb(c=3)"``) on a ``bandit/*`` environment: R runs of T pulls each, vmapped C at a time in one
compiled program per algorithm (:func:`fnrl.bandits.compare`). It prints each algorithm's mean
final regret ± one standard error, its ratio to the Lai–Robbins bound and its wall time, and
with ``--out DIR`` writes ``DIR/summary.json`` and ``DIR/curve.png``.

Offline algorithms (``bc``, ...) train on a Minari dataset (:mod:`fnrl.datasets`): ``--dataset``
sets the config's ``dataset`` field, ``--steps`` counts gradient updates, and ``--env`` (the
environment the evaluations run in) defaults to the one an fnrl dataset was recorded on. The
dataset is read and checked against the environment before anything is compiled; the summary
adds D4RL's normalised score when the dataset has reference scores. ``fnrl collect`` records
``--steps`` steps of a run's policy (greedy, or with its exploration with ``--noise``) or of a
uniformly random one, in ``--num-envs`` environments, as a Minari dataset at ``--out`` (continuous
actions as the environment applies them, clipped to [-1, 1]: an unbounded Gaussian policy's
samples beyond the bounds are recorded at the bound, with the density there as their
``log_prob``, so importance weights on them are approximate); ``--mix``
concatenates datasets, and ``--replay RUN_DIR`` writes the replay buffer of an off-policy (or
model-based) run's newest checkpoint: every transition its training kept.

``fnrl train ALGO --finetune RUN_DIR`` continues the offline run in RUN_DIR online
(:mod:`fnrl.finetune`): iql, awac, td3_bc and cql their own runs, sac a cql run on continuous
actions (the SAC learner inside it). The online run starts from the newest checkpoint's learner,
its replay buffer holding the offline dataset; ``--steps`` counts environment steps, ``--set``
sets the off-policy loop's fields (``num_envs``, ``learning_starts``, ``buffer_size``, ...), and
the environment, discount and networks stay the offline run's. ``config.json`` records the
offline run as ``finetune``, which ``--resume``, ``eval`` and ``render`` read it from again.

``fnrl ope`` estimates the value J(π) = E[Σ_t γ^t r_t] of a run's policy from a dataset another
policy recorded (:mod:`fnrl.ope`): fitted Q evaluation (:mod:`fnrl.algorithms.fqe`, ``--fqe-steps``
updates, ``--set`` its config fields), trajectory-wise, per-decision and weighted importance
sampling, and the doubly robust and weighted doubly robust estimators with FQE's Q as their
model; with ``--true-episodes N`` also the Monte Carlo truth from N on-policy episodes. A
stochastic policy is evaluated as the distribution it samples from; importance sampling needs
the behaviour policy's ``log_prob`` in the dataset (``fnrl collect`` records it for policies with
a density, random ones included) and a policy with a density; ``--fqe-only`` runs FQE alone.

``fnrl plan`` runs model-predictive control (:func:`fnrl.planning.run_mpc`) with a planner
(``random_shooting``, ``cem``, ``mppi``, ``mcts``) that plans with the true environment as its
model: N episodes side by side in one compiled program. Its config is built as the planner's
defaults < its preset for the environment < ``--config FILE`` < ``--set``. It prints the mean
return, and with ``--out DIR`` writes ``DIR/summary.json`` (and ``DIR/episode.gif`` of the
first episode with ``--render``).

Several devices (on-policy algorithms): ``--set num_devices=D`` (data parallel, see
:mod:`fnrl.parallel`). Several hosts or processes: run the same command in each with
``--distributed`` (addresses from the cluster environment, e.g. SLURM) or ``--distributed
--coordinator HOST:PORT --num-processes N --process-id I``; ``num_devices`` then defaults to
every device of every process, and only process 0 writes DIR (a multi-process run keeps no
checkpoints).

Every input is checked before anything is compiled or written (paths included: one that cannot
be created, read or written is named): a bad one gets a one-line error naming what was wrong
and what is accepted, and exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile

NON_FINITE_EXIT = 3


class UsageError(Exception):
    """Bad user input: printed as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fnrl", description="Functional reinforcement learning in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an agent; writes metrics, TensorBoard events, checkpoints, "
                                          "summary.json and curve.png into --out")
    train.add_argument("algo", nargs="?", help="algorithm name (see `fnrl list`), or a .py file defining "
                                               "Config and make_train")
    train.add_argument("--env", help="environment name (see `fnrl list`); or `env` in --config")
    train.add_argument("--dataset", metavar="DIR|MINARI_ID",
                       help="offline algorithms: the Minari dataset to learn from (`dataset` in --config)")
    train.add_argument("--finetune", metavar="RUN_DIR",
                       help="continue an offline run online: its newest checkpoint's learner, its dataset in the "
                            "replay buffer (iql, awac, td3_bc, cql; sac from a continuous cql run)")
    train.add_argument("--steps", type=int, help="environment steps to train for; or `total_steps` in --config")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", help="output directory (created; must not hold a run)")
    train.add_argument("--config", metavar="FILE", help="YAML or JSON file of config fields")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field; repeatable")
    train.add_argument("--no-preset", action="store_true",
                       help="start from the algorithm's defaults, not its tuned preset for --env (fnrl/presets.yaml)")
    train.add_argument("--seeds", metavar="N|S1,S2,...",
                       help="train N seeds (--seed, --seed + 1, ...) or the seeds listed, in one vmapped program")
    train.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="also train each value of a number field, in the same program; repeatable (a grid)")
    train.add_argument("--print-config", action="store_true", help="print the effective config and exit")
    train.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its newest checkpoint")
    train.add_argument("--checkpoint-every", type=int, default=1, metavar="K",
                       help="save a checkpoint every K evaluations (default 1)")
    train.add_argument("--no-compile-cache", action="store_true", help="do not use the persistent compilation cache")
    train.add_argument("--distributed", action="store_true",
                       help="join a multi-process run (jax.distributed.initialize) and train over every "
                            "process's devices; only process 0 writes --out")
    train.add_argument("--coordinator", metavar="HOST:PORT", help="with --distributed: process 0's address")
    train.add_argument("--num-processes", type=int, metavar="N", help="with --distributed: number of processes")
    train.add_argument("--process-id", type=int, metavar="I", help="with --distributed: this process's index")

    evaluate = sub.add_parser("eval", help="evaluate the policy saved in a run directory")
    evaluate.add_argument("run", metavar="DIR")
    evaluate.add_argument("--episodes", type=int, default=32)
    evaluate.add_argument("--seed", type=int, default=0)

    render = sub.add_parser("render", help="draw one episode of a run's policy: an animated GIF (classic control) "
                                            "or a self-contained HTML viewer (Brax envs)")
    render.add_argument("run", metavar="DIR")
    render.add_argument("--out", help="file to write: .gif for classic control, .html for Brax "
                                      "(default DIR/episode.gif or DIR/episode.html)")
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--max-steps", type=int, help="stop the episode after this many steps")
    render.add_argument("--member", type=int, default=0, metavar="I",
                        help="of a --seeds/--sweep run: which run (its index in config.json's members; default 0)")

    plot = sub.add_parser("plot", help="overlay the learning curves of runs (seeds as mean ± std)")
    plot.add_argument("runs", nargs="+", metavar="DIR")
    plot.add_argument("--out", default="curves.png", help="image to write (default curves.png)")
    plot.add_argument("--metric", default="episode_return", help="a column of metrics.jsonl")

    bandit = sub.add_parser("bandit", help="compare bandit algorithms' regret over many vmapped runs on a bandit/* "
                                            "environment; prints a table, writes summary.json and curve.png into --out")
    bandit.add_argument("algos", nargs="*", metavar="ALGO",
                        help="bandit algorithms (see `fnrl list`), each optionally with parameters, e.g. 'kl_ucb(c=3)'")
    bandit.add_argument("--env", help="a bandit/* environment, e.g. 'bandit/bernoulli(means=(0.9, 0.8, 0.5))'")
    bandit.add_argument("--steps", type=int, help="pulls per run (the horizon T)")
    bandit.add_argument("--runs", type=int, default=100, help="independent runs per algorithm (default 100)")
    bandit.add_argument("--chunk", type=int, default=100,
                        help="runs vmapped per program call (default 100); memory grows as steps × chunk, and with "
                             "several chunks the chunk decides each run's key")
    bandit.add_argument("--seed", type=int, default=0)
    bandit.add_argument("--out", help="directory for summary.json and curve.png (created; must not hold them)")
    bandit.add_argument("--no-compile-cache", action="store_true", help="do not use the persistent compilation cache")

    plan = sub.add_parser("plan", help="MPC with a planner on the true model of --env (fnrl.planning): prints the "
                                        "mean episode return; writes summary.json into --out")
    plan.add_argument("planner", nargs="?", help="random_shooting, cem, mppi or mcts")
    plan.add_argument("--env", help="environment name (see `fnrl list`): the real environment and its model")
    plan.add_argument("--episodes", type=int, default=4, help="episodes, planned side by side (default 4)")
    plan.add_argument("--max-steps", type=int, help="stop each episode after this many steps (default: its time limit)")
    plan.add_argument("--seed", type=int, default=0)
    plan.add_argument("--config", metavar="FILE", help="YAML or JSON file of planner config fields")
    plan.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a planner config field; repeatable")
    plan.add_argument("--no-preset", action="store_true",
                      help="start from the planner's defaults, not its tuned preset for --env (fnrl/presets.yaml)")
    plan.add_argument("--print-config", action="store_true", help="print the effective config and exit")
    plan.add_argument("--out", help="directory for summary.json (created; must not hold one)")
    plan.add_argument("--render", action="store_true", help="with --out: also draw the first episode, "
                                                            "DIR/episode.gif (classic control)")
    plan.add_argument("--no-compile-cache", action="store_true", help="do not use the persistent compilation cache")

    collect = sub.add_parser("collect", help="record a policy's episodes as a Minari dataset, or mix datasets")
    collect.add_argument("--env", help="environment name (see `fnrl list`); default: the --policy run's")
    collect.add_argument("--policy", metavar="RUN_DIR|random", help="a training run's policy, or `random` (uniform)")
    collect.add_argument("--steps", type=int, help="environment steps to record")
    collect.add_argument("--noise", action="store_true", help="act with the run's exploration (sampling, "
                         "action noise) instead of its greedy policy")
    collect.add_argument("--num-envs", type=int, default=1, help="environments stepped side by side (default 1)")
    collect.add_argument("--mix", nargs="+", metavar="DATASET", help="concatenate these datasets instead")
    collect.add_argument("--replay", metavar="RUN_DIR", help="instead: the replay buffer of an off-policy or "
                         "model-based run's newest checkpoint (D4RL's replay flavour)")
    collect.add_argument("--out", help="dataset directory to write (must not hold one)")
    collect.add_argument("--seed", type=int, default=0)

    ope = sub.add_parser("ope", help="estimate a policy's value from a dataset: FQE, IS, PDIS, WIS, DR and WDR "
                                      "(and the on-policy truth with --true-episodes)")
    ope.add_argument("--dataset", metavar="DIR|MINARI_ID", help="the Minari dataset (with the behaviour log_prob)")
    ope.add_argument("--policy", metavar="RUN_DIR", help="the training run whose policy is evaluated")
    ope.add_argument("--gamma", type=float, default=0.99, help="discount of the value estimated (default 0.99)")
    ope.add_argument("--true-episodes", type=int, metavar="N",
                     help="also estimate the true value from N on-policy episodes")
    ope.add_argument("--fqe-steps", type=int, default=20_000, help="FQE's gradient updates (default 20000)")
    ope.add_argument("--fqe-only", action="store_true",
                     help="only FQE (no importance sampling): for datasets without the behaviour log_prob, or "
                          "deterministic policies")
    ope.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override an FQE config field (see `fnrl train fqe --print-config`); repeatable")
    ope.add_argument("--seed", type=int, default=0)
    ope.add_argument("--no-compile-cache", action="store_true", help="do not use the persistent compilation cache")

    sub.add_parser("list", help="print the algorithms and environments")
    return parser


def _list() -> None:
    from fnrl import algorithms, bandits, envs
    from fnrl.planning import names as planning_names

    print("algorithms:", " ".join(algorithms.names()))
    print("bandit algorithms (fnrl bandit):", " ".join(bandits.names()))
    print("planners (fnrl plan):", " ".join(planning_names()))
    print("environments:", " ".join(envs.list()))


def _distribute(args) -> None:
    """With ``--distributed``, joins the multi-process run; must come before any JAX work."""
    addressing = (args.coordinator, args.num_processes, args.process_id)
    if not args.distributed:
        if any(a is not None for a in addressing):
            raise UsageError("--coordinator, --num-processes and --process-id need --distributed")
        return
    from fnrl import parallel

    try:
        parallel.initialize(*addressing)
    except ValueError as e:
        raise UsageError(str(e).splitlines()[0]) from None
    except RuntimeError as e:
        raise UsageError(f"--distributed: could not join the run: {str(e).splitlines()[0]}") from None


def _one_line(error: Exception) -> UsageError:
    return UsageError(str(error).splitlines()[0] if str(error) else type(error).__name__)


def _read_run(run_dir: str) -> dict:
    """``DIR/config.json`` of a run (:func:`fnrl.runs.read`)."""
    from fnrl import runs

    try:
        return runs.read(run_dir)
    except runs.RunError as e:
        raise _one_line(e) from None


def _build(algo: str, fields: dict, source: str, args=None, finetune: bool = False):
    """The algorithm module, its validated config and the name of the preset used (or None):
    the defaults with ``fields`` (from ``source``: a run's config.json or a --config file) and,
    for a fresh run, ``args``'s preset (unless --no-preset), --env, --steps and --set (over
    ``fields``, the preset under them). A fine-tuning run (``finetune``, or ``args.finetune``)
    is :mod:`fnrl.finetune`'s, whose defaults for a fresh run come from the offline run and
    which has no presets."""
    import jax

    from fnrl import algorithms, config as fnrl_config, finetune as fine_tuning, presets, runs

    fresh_finetune = args is not None and args.finetune is not None
    finetune = finetune or fresh_finetune

    def defaults(module):
        return fine_tuning.config(args.finetune, algo) if fresh_finetune else module.Config()

    def build(module, preset: dict):
        config = fnrl_config.apply(defaults(module), preset, source=f"preset {algo}/{preset.get('env')}")
        config = fnrl_config.apply(config, fields, source=source)
        if args is None:
            return config
        if args.dataset is not None:
            if not any(f.name == "dataset" for f in dataclasses.fields(config)):
                raise UsageError(f"--dataset: {algo} is not an offline algorithm (it learns from its own experience)")
            config = dataclasses.replace(config, dataset=args.dataset)
        if args.env is not None:
            config = dataclasses.replace(config, env=args.env)
        elif getattr(config, "dataset", ""):
            config = dataclasses.replace(config, env=_dataset_env(config.dataset, config.env, fields))
        if args.steps is not None:
            if args.steps <= 0:
                raise UsageError(f"invalid --steps {args.steps}: must be a positive integer")
            config = dataclasses.replace(config, total_steps=args.steps)
        parallel_field = any(f.name == "num_devices" for f in dataclasses.fields(config))
        if args.distributed and not parallel_field:
            raise UsageError(f"--distributed: {algo} trains on one device (its config has no num_devices)")
        every_device = [f"num_devices={jax.device_count()}"] if args.distributed else []
        return fnrl_config.override(config, every_device + args.overrides)  # the user's own setting wins

    try:
        module = fine_tuning if finetune else algorithms.get(algo)
        config = build(module, {})
        preset = presets.get(algo, config.env) if args is not None and not args.no_preset and not finetune else {}
        if preset:
            config = build(module, {**preset, "env": config.env})
        runs.check(algo, module, config)
    except (ValueError, TypeError) as e:  # ConfigError is a ValueError
        raise _one_line(e) from None
    return module, config, f"{algo}/{presets.key(algo, config.env)}" if preset else None


def _dataset_env(source: str, default: str, fields: dict) -> str:
    """The environment of an offline run without --env: ``env`` from --config or config.json,
    else the one the dataset at ``source`` was recorded on, else ``default``."""
    from fnrl import datasets

    if "env" in fields:
        return fields["env"]
    try:
        recorded = datasets.load(source).env
    except datasets.DatasetError as e:
        raise _one_line(e) from None
    return recorded or default


def _seeds(text: str | None, seed: int) -> list[int] | None:
    """``--seeds``: N seeds from ``seed`` on, or a comma-separated list; None if not given."""
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()] if "," in text else list(range(seed, seed + int(text)))
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) < len(seeds):
        raise UsageError(f"invalid --seeds {text!r}: must be a positive count N, or distinct integers S1,S2,...")
    return seeds


def _grid(sweeps: list[str], overrides: list[str]) -> dict[str, list]:
    """``--sweep KEY=V1,V2,...`` flags as ``{key: [values]}`` (values as YAML numbers)."""
    from fnrl.config import read_yaml

    grid = {}
    set_keys = {o.split("=", 1)[0].strip() for o in overrides}
    for text in sweeps:
        key, sep, values = text.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise UsageError(f"invalid --sweep {text!r}: expected KEY=V1,V2,...")
        if key in grid or key in set_keys:
            raise UsageError(f"--sweep {key} is given twice (or also with --set); give each key once")
        try:
            grid[key] = [read_yaml(v) for v in values.split(",")]
        except Exception:
            raise UsageError(f"invalid --sweep {text!r}: expected KEY=V1,V2,... with numbers") from None
    return grid


def _make_train(module, config, seeds: list[int] | None, grid: dict | None, check: bool = False):
    """The run to compile: ``module.make_train(config)``, or the :class:`fnrl.sweep.Sweep` of
    ``seeds`` × ``grid``; ``check`` traces a sweep once to refuse keys that cannot be traced."""
    from fnrl import runs

    try:
        return runs.make_train(module, config, seeds, grid, check)  # refuses what cannot be built (e.g. a bonus)
    except ValueError as e:
        raise _one_line(e) from None


def _prepare(args):
    """Validates a fresh run's inputs; returns (module, config, preset, seeds, grid). Writes nothing."""
    if args.algo is None:
        raise UsageError("train needs an algorithm (see `fnrl list`), or --resume DIR")
    from fnrl.config import load_file

    try:
        in_file = load_file(args.config) if args.config else {}
    except ValueError as e:
        raise _one_line(e) from None
    if args.finetune is not None:
        _check_finetune(args)
    module, config, preset = _build(args.algo, in_file, args.config, args)
    seeds, grid = _seeds(args.seeds, args.seed), _grid(args.sweep, args.overrides)
    if grid and seeds is None:
        seeds = [args.seed]
    if seeds is not None and (args.distributed or getattr(config, "num_devices", 1) > 1):
        raise UsageError("--seeds and --sweep train on one device; drop --distributed and num_devices")
    _make_train(module, config, seeds, grid, check=True)
    if args.print_config:
        return module, config, preset, seeds, grid
    if args.env is None and "env" not in in_file and not getattr(config, "dataset", "") and not args.finetune:
        raise UsageError("train needs --env ENV (or `env` in --config FILE)")
    if args.steps is None and "total_steps" not in in_file:
        raise UsageError("train needs --steps N (or `total_steps` in --config FILE)")
    if args.out is None:
        raise UsageError("train needs --out DIR")
    if any(os.path.exists(os.path.join(args.out, name)) for name in ("config.json", "metrics.jsonl", "summary.json")):
        raise UsageError(f"--out {args.out!r} already holds a run; choose another directory, or --resume it")
    return module, config, preset, seeds, grid


def _check_finetune(args) -> None:
    """``--finetune RUN_DIR``'s flags: one run of the algorithm named, from the offline run's data."""
    from fnrl import algorithms, finetune

    given = [flag for flag, value in (("--dataset", args.dataset), ("--seeds", args.seeds), ("--sweep", args.sweep),
                                      ("--distributed", args.distributed)) if value]
    if given:
        raise UsageError(f"--finetune trains one run on the offline run's dataset; drop {', '.join(given)}")
    online = sorted(set(finetune.CONTINUES) | set(finetune.STARTS))
    if args.algo not in online:
        try:
            algorithms.get(args.algo)
        except ValueError as e:
            raise _one_line(e) from None
        raise UsageError(f"{args.algo} cannot fine-tune an offline run; --finetune takes {', '.join(online)}")


def _prepare_resume(args):
    """Validates ``--resume DIR``; returns (module, config, algo, seed, preset, seeds, grid)."""
    given = [flag for flag, value in (("--env", args.env), ("--dataset", args.dataset), ("--steps", args.steps),
                                      ("--out", args.out), ("--finetune", args.finetune),
                                      ("--config", args.config), ("--set", args.overrides),
                                      ("--no-preset", args.no_preset), ("--seeds", args.seeds),
                                      ("--sweep", args.sweep), ("--print-config", args.print_config)) if value]
    if given:
        raise UsageError(f"--resume takes the run's own settings from DIR/config.json; drop {', '.join(given)}")
    run = _read_run(args.resume)
    if args.algo is not None and args.algo != run["algo"]:
        raise UsageError(f"--resume {args.resume!r} is a {run['algo']} run, not {args.algo}")
    module, config, _ = _build(run["algo"], run["config"], "config.json", finetune=run["finetune"] is not None)
    return module, config, run["algo"], run["seed"], run["preset"], run["seeds"], run["sweep"]


def _enable_compile_cache() -> None:
    """Persistent compilation cache, unless the user set JAX's own cache directory."""
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    root = os.environ.get("FNRL_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "fnrl")
    jax.config.update("jax_compilation_cache_dir", os.path.join(root, "jax"))


def _writable_dir(path: str, flag: str) -> None:
    """Creates directory ``path`` if needed; a one-line UsageError naming ``flag`` when it
    cannot be created or written."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UsageError(f"cannot write {flag} {path!r}: {e.strerror or type(e).__name__}") from None


def _writable_file(path: str, flag: str) -> None:
    """A one-line UsageError naming ``flag`` when file ``path`` cannot be written (its directory
    is missing or not writable); writes nothing."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"cannot write {flag} {path!r}: it is a directory")
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        raise UsageError(f"cannot write {flag} {path!r}: {e.strerror or type(e).__name__}") from None


def _write_atomic(path: str, data: str | bytes) -> None:
    """Writes ``path`` whole or not at all (temporary file, then rename), with the usual mode."""
    with tempfile.NamedTemporaryFile("wb" if isinstance(data, bytes) else "w",
                                     dir=os.path.dirname(os.path.abspath(path)), delete=False, suffix=".tmp") as f:
        f.write(data)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(f.name, 0o666 & ~umask)
    os.replace(f.name, path)


def _write_json(path: str, value: dict) -> None:
    _write_atomic(path, json.dumps(value, indent=2))


def _train(args) -> int:
    _distribute(args)
    if args.checkpoint_every <= 0:
        raise UsageError(f"invalid --checkpoint-every {args.checkpoint_every}: must be a positive integer")
    if args.resume:
        if args.distributed:
            raise UsageError("--resume does not work with --distributed: multi-process runs keep no checkpoints")
        module, config, algo, seed, preset, seeds, grid = _prepare_resume(args)
        out = args.resume
    else:
        module, config, preset, seeds, grid = _prepare(args)
        algo = os.path.abspath(args.algo) if args.algo.endswith(".py") else args.algo  # --resume from anywhere
        seed, out = (None if seeds else args.seed), args.out
    if args.print_config:
        from fnrl.config import dump

        print(dump(config), end="")
        return 0

    import jax

    from fnrl import runner
    from fnrl.logging import plot_runs

    writer = jax.process_index() == 0
    if writer:
        _writable_dir(out, "--resume" if args.resume else "--out")
    if not args.no_compile_cache:
        _enable_compile_cache()
    with runner.stop_on_signals() as signals:  # from here on, SIGINT/SIGTERM end with a checkpoint
        train = _make_train(module, config, seeds, grid)
        key = train.keys if seeds else jax.random.PRNGKey(seed)
        compiled = runner.Compiled(train, key)
        tuned = f" (tuned preset {preset}; --no-preset for the defaults)" if preset else ""
        runs = f", {len(train.members)} runs in one program" if seeds else ""
        print(f"{algo} on {config.env}{tuned}: compiled in {compiled.seconds:.1f}s, {_what_runs(train, config)}{runs}",
              flush=True)
        if not writer:  # another process of a --distributed run: trains, writes nothing
            runner.run(train, key, None, compiled=compiled, signals=signals)
            print(f"process {jax.process_index()} of {jax.process_count()} done; process 0 writes {out}")
            return 0
        if not args.resume:
            many = {"seeds": seeds, "sweep": grid, "members": list(train.members)} if seeds else {}
            finetune = {"finetune": config.source} if args.finetune else {}
            _write_json(os.path.join(out, "config.json"), {"algo": algo, "env": config.env, "seed": seed, **many,
                                                           **finetune, "preset": preset,
                                                           "config": dataclasses.asdict(config)})
        # Checkpoints need every process's shards; a multi-process run keeps none (and cannot --resume).
        result = runner.run(train, key, out, resume=bool(args.resume), checkpoint_every=args.checkpoint_every,
                            checkpoint=jax.process_count() == 1, say=lambda line: print(line, flush=True),
                            compiled=compiled, signals=signals)
    final = result.rows[-1]
    steps_done = final["step"] - result.start_step
    summary = {
        "algo": algo, "env": config.env, "steps": final["step"], "seed": seed,
        "episode_return": final["episode_return"], "wall_s": result.wall_s, "compile_s": result.compile_s,
        "sps": steps_done / result.wall_s, "resumed": bool(args.resume), "preset": preset,
        "config": dataclasses.asdict(config),
    }
    if seeds:
        summary.update(_sweep_summary(train.members, final["episode_return"]),
                       sps=len(train.members) * steps_done / result.wall_s)
    scored = _normalized(config, summary["episode_return"])
    if scored is not None:
        summary["normalized_score"] = scored
    title = f"{os.path.basename(algo)} on {config.env} " + (f"({len(seeds)} seeds)" if seeds else f"(seed {seed})")
    with tempfile.TemporaryDirectory(dir=out) as tmp:  # curve and summary appear whole or not at all
        plot_runs([out], os.path.join(tmp, "curve.png"), title=title)
        os.replace(os.path.join(tmp, "curve.png"), os.path.join(out, "curve.png"))
    _write_json(os.path.join(out, "summary.json"), summary)
    if seeds:
        print("\n".join(f"{g['label']}: final return {g['episode_return_mean']:.2f} ± {g['episode_return_std']:.2f} "
                        f"over {len(seeds)} seeds" for g in summary["groups"]))
        print(f"{final['step']} steps per run ({summary['sps']:.0f} steps/s over all {len(train.members)} runs); "
              f"wrote {out}")
    else:
        print(f"final return {final['episode_return']:.2f} after {final['step']} steps "
              f"({summary['sps']:.0f} steps/s); wrote {out}")
    if scored is not None:
        print(f"normalised score {scored:.1f} (D4RL's: 0 = the random policy, 100 = the expert; "
              f"mean over runs)" if seeds else f"normalised score {scored:.1f} (D4RL's: 0 = random, 100 = expert)")
    return 0


def _normalized(config, episode_return):
    """D4RL's normalised score of ``episode_return`` for an offline run whose dataset has
    reference scores, else None."""
    if not getattr(config, "dataset", ""):
        return None
    from fnrl import datasets

    score = datasets.load(config.dataset).normalized_score(episode_return)
    return None if score is None else float(score)


def _sweep_summary(members: tuple[dict, ...], returns: list) -> dict:
    """Per-member final returns, and their mean and std over seeds for each grid point."""
    import numpy as np

    from fnrl.sweep import member_name

    groups: dict[str, list[float]] = {}
    for member, value in zip(members, returns):
        point = {k: v for k, v in member.items() if k != "seed"}
        groups.setdefault(member_name(point) or "all seeds", []).append(value)
    return {
        "episode_return": float(np.mean(returns)),
        "members": [{**member, "episode_return": value} for member, value in zip(members, returns)],
        "groups": [{"label": label, "episode_return_mean": float(np.mean(v)), "episode_return_std": float(np.std(v))}
                   for label, v in groups.items()],
    }


def _what_runs(train, config) -> str:
    """``training N steps``, and why N is not the ``total_steps`` asked for, or the run has
    fewer evaluations than ``num_evals``, when it is not or has: a run is whole evaluation
    periods of whole iterations (after any warm-up), at most one period per iteration."""
    steps = train.step(train.num_chunks)
    said = f"training {steps:,} steps"
    if steps != config.total_steps:
        warmup = f" after {train.initial_steps:,} warm-up steps" if train.initial_steps else ""
        said += (f": {config.total_steps:,} rounded up to {train.num_evals} evaluation periods of "
                 f"{train.chunks_per_eval * train.steps_per_chunk:,} steps{warmup} (whole updates; fewer steps per "
                 "period with a smaller num_evals)")
    if train.num_evals < config.num_evals:
        said += (f"; {train.num_evals} evaluations, not num_evals={config.num_evals}: the run is only "
                 f"{train.num_evals} iterations of {train.steps_per_chunk:,} steps long")
    return said


def _load_policy(run_dir: str, eval_policy: str | None = None):
    """The run's :class:`fnrl.loops.core.Train` (a :class:`fnrl.sweep.Sweep` for ``--seeds`` or
    ``--sweep`` runs), its newest checkpointed carry and its config (:func:`fnrl.runs.load`);
    ``eval_policy`` (greedy or stochastic) replaces the config's, which is how ``train.act`` acts."""
    from fnrl import runs

    try:
        return runs.load(run_dir, eval_policy, report=_note)
    except runs.RunError as e:
        raise _one_line(e) from None


def _note(line: str) -> None:
    """A line for the user on stderr (stdout may be a result to parse)."""
    print(f"fnrl: {line}", file=sys.stderr, flush=True)


def _eval(args) -> int:
    import jax

    from fnrl.loops.core import obs_stats
    from fnrl.loops.evaluation import episode_limit, evaluate
    from fnrl.sweep import Sweep

    if args.episodes <= 0:
        raise UsageError(f"invalid --episodes {args.episodes}: must be a positive integer")
    train, carry, config = _load_policy(args.run)
    max_steps = episode_limit(train.env)
    key = jax.random.PRNGKey(args.seed)
    report = {"run": args.run, "env": config.env, "episodes": args.episodes}
    if isinstance(train, Sweep):  # every member, from the same evaluation key
        run = jax.jit(jax.vmap(lambda v, c: evaluate(train.env, train.member(v).act, c.learner, key, args.episodes,
                                                     max_steps, obs_stats(c))))
        returns = [float(r) for r in run(train.values, carry)]
        report.update(episode_return=sum(returns) / len(returns),
                      members=[{**m, "episode_return": r} for m, r in zip(train.members, returns)])
    else:
        run = jax.jit(lambda c: evaluate(train.env, train.act, c.learner, key, args.episodes, max_steps, obs_stats(c)))
        report.update(episode_return=float(run(carry)))
    print(json.dumps(report))
    return 0


def _render(args) -> int:
    import jax

    from fnrl.loops.core import make_env, obs_stats
    from fnrl.render import RenderError, episode_format, render_episode
    from fnrl.sweep import Sweep

    run = _read_run(args.run)
    _, config, _ = _build(run["algo"], run["config"], "config.json",
                          finetune=run["finetune"] is not None)  # compiles nothing
    if not 0 <= args.member < run["members"]:
        raise UsageError(f"invalid --member {args.member}: {args.run!r} holds {run['members']} run(s), "
                         "numbered from 0")
    try:
        kind = episode_format(make_env(config))  # "gif" or "html"
    except ValueError as e:
        raise _one_line(e) from None
    out = args.out or os.path.join(args.run, f"episode.{kind}")
    if os.path.splitext(out)[1].lower() != f".{kind}":
        drawing = "an animated GIF" if kind == "gif" else "an HTML page"
        raise UsageError(f"--out {out!r}: {config.env} renders as {drawing}, so --out must end in .{kind}")
    _writable_file(out, "--out")
    train, carry, config = _load_policy(args.run)
    act = train.act
    if isinstance(train, Sweep):  # one member: its values, its slice of the carry
        values = {k: v[args.member] for k, v in train.values.items()}
        act = train.member(values).act
        carry = jax.tree_util.tree_map(lambda x: x[args.member], carry)
    try:
        episode = render_episode(train.env, act, carry.learner, jax.random.PRNGKey(args.seed),
                                 obs_stats=obs_stats(carry), max_steps=args.max_steps)
    except (ValueError, RenderError) as e:
        raise _one_line(e) from None
    _write_atomic(out, episode)  # GIF bytes or HTML text
    print(f"wrote {out}")
    return 0


def _plot(args) -> int:
    from fnrl.logging import plot_runs

    _writable_file(args.out, "--out")
    try:
        plot_runs(args.runs, args.out, args.metric)
    except ValueError as e:
        raise _one_line(e) from None
    print(f"wrote {args.out}")
    return 0


def _prepare_bandit(args):
    """Validates ``fnrl bandit``'s inputs; returns (env, {label: policy}). Compiles and writes nothing."""
    if not args.algos:
        raise UsageError("bandit needs one or more algorithms (see `fnrl list`), e.g. fnrl bandit ucb1 thompson "
                         "--env bandit/bernoulli --steps 10000")
    if args.env is None:
        raise UsageError("bandit needs --env, a bandit/* environment, e.g. --env 'bandit/bernoulli(means=(0.9, 0.5))'")
    if args.steps is None:
        raise UsageError("bandit needs --steps T (pulls per run)")
    for flag, value in (("--steps", args.steps), ("--runs", args.runs), ("--chunk", args.chunk)):
        if value < 1:
            raise UsageError(f"invalid {flag} {value}: must be a positive integer")
    labels = [spec.strip() for spec in args.algos]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UsageError(f"bandit algorithm {repeated[0]!r} is given twice; give each once")
    from fnrl import bandits, envs

    try:
        env = envs.make(args.env)
    except (ValueError, TypeError) as e:
        raise _one_line(e) from None
    if not bandits.is_bandit(env):
        raise UsageError(f"--env {args.env!r} is not a bandit: fnrl bandit plays {' and '.join(bandits.ENVIRONMENTS)}"
                         " (fnrl train trains the other environments)")
    try:
        policies = {label: bandits.make(label, env) for label in labels}
    except (ValueError, TypeError) as e:
        raise _one_line(e) from None
    if args.out is not None and any(os.path.exists(os.path.join(args.out, n)) for n in ("summary.json", "curve.png")):
        raise UsageError(f"--out {args.out!r} already holds summary.json or curve.png; choose another directory")
    return env, policies


def _bandit(args) -> int:
    env, policies = _prepare_bandit(args)

    import jax
    import numpy as np

    from fnrl import bandits

    if args.out is not None:
        _writable_dir(args.out, "--out")
    if not args.no_compile_cache:
        _enable_compile_cache()
    steps, runs, chunk = args.steps, args.runs, min(args.chunk, args.runs)
    times = bandits.log_times(steps)
    constant = bandits.env_lai_robbins_constant(env)
    bound = None if constant is None else constant * np.log(times)
    calls = -(-runs // chunk)
    print(f"{args.env}: {runs:,} run{'s' if runs > 1 else ''} of {steps:,} pulls per algorithm, {chunk} per program "
          f"call ({calls} call{'s' if calls > 1 else ''}), seed {args.seed}")
    if bound is None:
        print("Lai–Robbins bound: n/a (no known bound for these arms)")
    else:
        print(f"Lai–Robbins bound: Σ Δ/kl · ln T = {constant:.3f} · ln {steps:,} = {bound[-1]:.1f}")
    width = max(len("algorithm"), *(len(label) for label in policies))
    header = f"R({steps:,}) ± s.e."
    print(f"{'algorithm':<{width}}  {header:>20}  {'R(T) / bound':>12}  {'wall s':>7}", flush=True)
    rows = {}

    def report(label, result):
        final = bandits.final_regret(result.regret)
        ratio = final["mean"] / bound[-1] if bound is not None and bound[-1] > 0 else None
        se = "n/a" if final["stderr"] is None else f"{final['stderr']:.1f}"
        rows[label] = {"final_regret_mean": final["mean"], "final_regret_stderr": final["stderr"],
                       "final_regret_std": final["std"], "regret_over_bound": ratio,
                       "compile_s": result.compile_s, "wall_s": result.wall_s}
        regret, over = f"{final['mean']:.1f} ± {se}", "n/a" if ratio is None else f"{ratio:.2f}"
        print(f"{label:<{width}}  {regret:>20}  {over:>12}  {result.wall_s:>7.1f}", flush=True)

    try:
        results = bandits.compare(policies, env, jax.random.PRNGKey(args.seed), steps, runs, chunk, times,
                                  report=report)
    except KeyboardInterrupt:
        print(f"fnrl: interrupted{'; nothing written to ' + args.out if args.out else ''}", file=sys.stderr)
        return 130
    if args.out is None:
        return 0
    regrets = {label: r.regret for label, r in results.items()}
    for label, regret in regrets.items():
        mean = regret.astype(np.float64).mean(0)
        se = regret.astype(np.float64).std(0, ddof=1) / np.sqrt(runs) if runs > 1 else None
        rows[label].update(mean_regret=mean.tolist(), stderr=None if se is None else se.tolist())
    means = [float(str(m)) for m in np.asarray(env.means, np.float32)]  # 0.9, not 0.8999999761581421
    summary = {"env": args.env, "means": means, "stddev": getattr(env, "stddev", None), "steps": steps,
               "runs": runs, "seed": args.seed, "chunk": chunk, "lai_robbins_constant": constant,
               "lai_robbins_bound": None if bound is None else float(bound[-1]), "times": times.tolist(),
               "lai_robbins_curve": None if bound is None else bound.tolist(), "algorithms": rows}
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:  # curve and summary appear whole or not at all
        bandits.plot_regret(regrets, times, bound, os.path.join(tmp, "curve.png"),
                            title=f"{args.env}: mean ± 2 standard errors over {runs:,} runs")
        os.replace(os.path.join(tmp, "curve.png"), os.path.join(args.out, "curve.png"))
    _write_json(os.path.join(args.out, "summary.json"), summary)
    print(f"wrote {args.out}")
    return 0


def _prepare_plan(args):
    """Validates ``fnrl plan``'s inputs; returns (env, planner, preset name or None). Compiles and writes nothing."""
    if args.planner is None:
        raise UsageError("plan needs a planner: random_shooting, cem, mppi or mcts, e.g. fnrl plan cem --env pendulum")
    if args.env is None:
        raise UsageError("plan needs --env ENV, e.g. --env pendulum")
    if args.episodes < 1:
        raise UsageError(f"invalid --episodes {args.episodes}: must be a positive integer")
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError(f"invalid --max-steps {args.max_steps}: must be a positive integer")
    from fnrl import config as fnrl_config, envs, planning, presets

    try:
        kind = planning.config_class(args.planner)
        env = envs.make(args.env)
        preset = {} if args.no_preset else presets.get(args.planner, args.env)
        config = fnrl_config.apply(kind(), preset, source=f"preset {args.planner}/{args.env}")
        config = fnrl_config.apply(config, fnrl_config.load_file(args.config) if args.config else {}, args.config)
        config = fnrl_config.override(config, args.overrides)
        planner = planning.make(args.planner, config)
        planner.init(env.spec)  # the planner fits the environment's actions?
    except (ValueError, TypeError) as e:  # ConfigError is a ValueError
        raise _one_line(e) from None
    if args.render:
        from fnrl.render import episode_format

        if args.out is None:
            raise UsageError("plan --render writes DIR/episode.gif: give --out DIR")
        try:
            drawn = episode_format(env)
        except ValueError as e:
            raise _one_line(e) from None
        if drawn != "gif":
            raise UsageError(f"plan --render draws classic control as a GIF; {args.env} is not classic control")
    if args.out is not None and os.path.exists(os.path.join(args.out, "summary.json")):
        raise UsageError(f"--out {args.out!r} already holds summary.json; choose another directory")
    return env, planner, f"{args.planner}/{presets.key(args.planner, args.env)}" if preset else None


def _plan(args) -> int:
    env, planner, preset = _prepare_plan(args)
    if args.print_config:
        from fnrl.config import dump

        print(dump(planner.config), end="")
        return 0
    import functools
    import time

    import jax
    import numpy as np

    from fnrl import planning
    from fnrl.loops.evaluation import episode_limit

    if args.out is not None:
        _writable_dir(args.out, "--out")
    if not args.no_compile_cache:
        _enable_compile_cache()
    max_steps = args.max_steps or episode_limit(env)
    key = jax.random.PRNGKey(args.seed)
    start = time.perf_counter()
    run = jax.jit(functools.partial(planning.run_mpc, env, planner, num_episodes=args.episodes, max_steps=max_steps,
                                    record=args.render)).lower(key).compile()
    compile_s = time.perf_counter() - start
    tuned = f" (tuned preset {preset}; --no-preset for the defaults)" if preset else ""
    print(f"{planner.name} on {args.env}{tuned}: {planner.model_steps:,} model steps per action, {args.episodes} "
          f"episode{'s' if args.episodes > 1 else ''} of at most {max_steps} steps; compiled in {compile_s:.1f}s",
          flush=True)
    episodes = jax.device_get(run(key))
    wall_s = time.perf_counter() - start
    returns, lengths = np.asarray(episodes.returns, np.float64), np.asarray(episodes.lengths)
    print(f"mean return {returns.mean():.2f} ± {returns.std():.2f} over {args.episodes} episodes "
          f"(min {returns.min():.2f}, max {returns.max():.2f}) in {wall_s:.1f}s", flush=True)
    if args.out is None:
        return 0
    summary = {"planner": planner.name, "env": args.env, "episodes": args.episodes, "seed": args.seed,
               "max_steps": max_steps, "episode_return": float(returns.mean()),
               "episode_return_std": float(returns.std()), "episode_returns": returns.tolist(),
               "episode_lengths": lengths.tolist(), "model_steps_per_action": planner.model_steps,
               "compile_s": compile_s, "wall_s": wall_s, "preset": preset,
               "config": dataclasses.asdict(planner.config)}
    if args.render:
        from fnrl.render import episode_gif

        frames = np.asarray(episodes.internals)[: int(lengths[0]) + 1, 0]
        _write_atomic(os.path.join(args.out, "episode.gif"), episode_gif(env, list(frames)))
    _write_json(os.path.join(args.out, "summary.json"), summary)
    print(f"wrote {args.out}")
    return 0


def _prepare_collect(args):
    """Validates ``fnrl collect``'s inputs; returns (env name, policy(obs, key) -> (action, extras), what)."""
    if args.out is None:
        raise UsageError("collect needs --out DATASET")
    if os.path.exists(os.path.join(args.out, "data")):
        raise UsageError(f"--out {args.out!r} already holds a dataset; choose another directory")
    if args.mix or args.replay:
        flag = "--mix" if args.mix else "--replay"
        given = [f for f, value in (("--env", args.env), ("--policy", args.policy), ("--steps", args.steps),
                                    ("--noise", args.noise), ("--replay", args.mix and args.replay)) if value]
        if given:
            raise UsageError(f"{flag} writes the data as it is; drop {', '.join(given)}")
        return None, None, None
    if args.policy is None:
        raise UsageError("collect needs --policy RUN_DIR|random (or --mix DATASET...)")
    if args.steps is None or args.steps <= 0:
        raise UsageError("collect needs --steps N, a positive integer")
    if args.num_envs <= 0:
        raise UsageError(f"invalid --num-envs {args.num_envs}: must be a positive integer")
    from fnrl import envs

    if args.policy == "random":
        if args.env is None:
            raise UsageError("collect --policy random needs --env ENV")
        try:
            spec = envs.make(args.env).spec
        except ValueError as e:
            raise _one_line(e) from None
        from fnrl.datasets import uniform_policy

        return args.env, uniform_policy(spec), {"policy": "random"}
    run = _read_run(args.policy)
    if run["seeds"] is not None:
        raise UsageError(f"--policy {args.policy!r} holds {run['members']} runs (--seeds/--sweep); collect from a "
                         "single run")
    if args.env is not None and args.env != run["config"]["env"]:
        raise UsageError(f"--env {args.env}: the --policy run trained on {run['config']['env']}")
    train, carry, config = _load_policy(args.policy, eval_policy="stochastic" if args.noise else None)
    from fnrl import runs

    policy = runs.policy(train, carry)
    if args.noise and train.log_prob is not None:  # record the behaviour log_prob, for importance sampling
        acting, see = policy, runs.observations(carry)

        def policy(obs, key):
            action, extras = acting(obs, key)
            return action, {**extras, "log_prob": train.log_prob(carry.learner, see(obs), action)}

    return config.env, policy, {"policy": os.path.abspath(args.policy), "algo": run["algo"], "noise": args.noise}


def _replay_episodes(run_dir: str):
    """The episodes in the replay buffer of the newest checkpoint of the run in ``run_dir``."""
    from fnrl import datasets
    from fnrl.replay import ReplayState

    run = _read_run(run_dir)
    if run["seeds"] is not None:
        raise UsageError(f"--replay {run_dir!r} holds {run['members']} runs (--seeds/--sweep); use a single run")
    if run["finetune"] is not None:
        raise UsageError(f"--replay {run_dir!r}: a fine-tuning run's buffer starts with its offline dataset, not "
                         f"whole steps of its environments; collect --replay from an online run")
    n_step = run["config"].get("n_step", 1)
    if n_step != 1:
        raise UsageError(f"--replay {run_dir!r}: its buffer holds {n_step}-step transitions; a dataset's are one-step")
    _, carry, config = _load_policy(run_dir)
    buffer = getattr(carry.data, "buffer", carry.data)
    if not isinstance(buffer, ReplayState):
        raise UsageError(f"--replay {run_dir!r}: a {run['algo']} run keeps no replay buffer")
    what = {"policy": f"replay of {os.path.abspath(run_dir)}", "algo": run["algo"], "replay_of": os.path.abspath(run_dir)}
    return config.env, datasets.from_replay(buffer, config.num_envs), what


def _collect(args) -> int:
    from fnrl import datasets, envs

    env_name, policy, what = _prepare_collect(args)
    try:
        if args.replay:
            env_name, episodes, what = _replay_episodes(args.replay)
            dataset = datasets.save(args.out, episodes, env_name, **what,
                                    description=f"the replay buffer of the run in {args.replay}")
        elif args.mix:
            sources = [datasets.load(source) for source in args.mix]
            env_name = sources[0].env
            if env_name is None:
                raise UsageError(f"{args.mix[0]}: not recorded by fnrl (no environment in its metadata); cannot mix it")
            episodes = datasets.concatenate(sources)
            refs = (sources[0].ref_min_score, sources[0].ref_max_score)
            dataset = datasets.save(args.out, episodes, env_name, mix=[os.path.abspath(m) for m in args.mix],
                                    ref_scores=refs if None not in refs else None,
                                    description=f"the episodes of {', '.join(args.mix)}, one after another")
        else:
            import jax

            _writable_dir(os.path.dirname(os.path.abspath(args.out)), "--out")
            episodes = datasets.collect(envs.make(env_name), policy, jax.random.PRNGKey(args.seed), args.steps,
                                        args.num_envs)
            dataset = datasets.save(args.out, episodes, env_name, steps=args.steps, seed=args.seed,
                                    num_envs=args.num_envs, **what,
                                    description=f"{args.steps} steps of {what['policy']} on {env_name}")
    except datasets.DatasetError as e:
        raise _one_line(e) from None
    returns = dataset.episode_returns()
    print(f"wrote {args.out}: {dataset.size} steps in {dataset.num_episodes} episodes on {env_name}, "
          f"mean episode return {returns.mean():.2f} (the last episode of each environment may be cut short)")
    return 0


def _prepare_ope(args):
    """Validates ``fnrl ope``'s inputs; returns (dataset, policy, env name, FQE config, run's algo).
    Compiles nothing and writes nothing."""
    if args.dataset is None:
        raise UsageError("ope needs --dataset DIR_OR_MINARI_ID (`fnrl collect` records one)")
    if args.policy is None:
        raise UsageError("ope needs --policy RUN_DIR: the training run whose policy is evaluated")
    if not 0.0 <= args.gamma <= 1.0:
        raise UsageError(f"invalid --gamma {args.gamma}: must be in [0, 1]")
    for flag, value in (("--true-episodes", args.true_episodes), ("--fqe-steps", args.fqe_steps)):
        if value is not None and value <= 0:
            raise UsageError(f"invalid {flag} {value}: must be a positive integer")
    from fnrl import config as fnrl_config, datasets, envs, ope, runs
    from fnrl.algorithms import fqe

    try:
        dataset = datasets.load(args.dataset)
    except datasets.DatasetError as e:
        raise _one_line(e) from None
    run = _read_run(args.policy)
    try:
        policy, env_name = ope.load_policy(args.policy, report=_note)
    except runs.RunError as e:
        raise _one_line(e) from None
    if dataset.env is not None and dataset.env != env_name:
        raise UsageError(f"--dataset {args.dataset!r} was recorded on {dataset.env}, but the --policy run trained on "
                         f"{env_name}")
    try:
        datasets.check(dataset, envs.make(env_name), env_name)
    except datasets.DatasetError as e:
        raise _one_line(e) from None
    if not args.fqe_only:
        if policy.log_prob is None:
            raise UsageError(f"--policy {args.policy!r} ({run['algo']}) is deterministic: it has no density, so "
                             "IS, PDIS, WIS, DR and WDR are undefined for it; pass --fqe-only to run FQE alone")
        if "log_prob" not in dataset.transitions.extras:
            raise UsageError(f"--dataset {args.dataset!r} has no behaviour log_prob: IS, PDIS, WIS, DR and WDR need "
                             "them; pass --fqe-only to run FQE alone")
    try:
        config = fqe.Config(env=env_name, dataset=args.dataset, policy=os.path.abspath(args.policy), gamma=args.gamma,
                            total_steps=args.fqe_steps, num_evals=1, eval_episodes=1)
        config = fnrl_config.override(config, args.overrides)
    except ValueError as e:
        raise _one_line(e) from None
    return dataset, policy, env_name, config, run["algo"]


def _ope(args) -> int:
    dataset, policy, env_name, config, algo = _prepare_ope(args)
    import jax

    from fnrl import envs, ope
    from fnrl.algorithms import fqe

    if not args.no_compile_cache:
        _enable_compile_cache()
    env = envs.make(env_name)
    key, true_key = jax.random.split(jax.random.PRNGKey(args.seed))
    print(f"{algo} policy of {args.policy} on {args.dataset}: {dataset.size} steps in {dataset.num_episodes} episodes "
          f"of {env_name}, γ = {args.gamma}", flush=True)
    results = fqe.estimates(config, env, policy, dataset, key, fqe_only=args.fqe_only)
    names = {"FQE": f"fitted Q evaluation, {config.total_steps} updates", "IS": "importance sampling",
             "PDIS": "per-decision IS", "WIS": "weighted per-decision IS", "DR": "doubly robust (FQE's Q)",
             "WDR": "weighted doubly robust (FQE's Q)"}
    for name in ope.ESTIMATORS:
        if name in results:
            print(f"{name:<5} {results[name]:>12.4f}   {names[name]}")
    if "episodes" in results:
        cut = f"; {results['dropped']} cut short left out" if results["dropped"] else ""
        print(f"(IS and DR over {results['episodes']} whole episodes{cut})")
    if args.true_episodes:
        truth, stderr = ope.true_value(env, policy, true_key, args.true_episodes, args.gamma)
        print(f"{'true':<5} {truth:>12.4f}   ± {stderr:.4f} (s.e.), {args.true_episodes} on-policy episodes")
    return 0


def cpu_scheduler_workaround() -> None:
    """Turns off XLA:CPU's concurrency-optimised scheduler, with which some vmapped training
    programs (NPG and TRPO over seeds) deadlock on CPU in jax 0.10.2; it has effect only when
    set before JAX starts its backend (as the command line and the experiments do)."""
    flag = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
    if flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def main(argv=None) -> int:
    cpu_scheduler_workaround()
    args = _parser().parse_args(argv)
    commands = {"list": lambda a: _list() or 0, "train": _train, "eval": _eval, "render": _render, "plot": _plot,
                "bandit": _bandit, "plan": _plan,
                "collect": _collect, "ope": _ope}
    try:
        return commands[args.command](args)
    except UsageError as e:
        print(f"fnrl: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the run's own one-line errors; anything else is a bug and keeps its traceback
        from fnrl.checkpoint import CheckpointError
        from fnrl.runner import Interrupted, NonFinite

        if isinstance(e, Interrupted):
            print(f"fnrl: {e}", file=sys.stderr)
            return e.exit_code
        codes = {CheckpointError: 2, NonFinite: NON_FINITE_EXIT}
        code = next((c for kind, c in codes.items() if isinstance(e, kind)), None)
        if code is None:
            raise
        print(f"fnrl: error: {e}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
