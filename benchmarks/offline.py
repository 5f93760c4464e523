"""Offline training throughput: fnrl's IQL and CQL against d3rlpy's (PyTorch), side by side, and
16 seeds vmapped against one.

Both sides train on the same dataset -- ``--transitions`` uniformly random pendulum steps
(3-d observations, 1-d actions; updates/s do not depend on what the data say), written once as
a Minari dataset for fnrl and as arrays for d3rlpy -- with the same networks (``--layers`` ×
``--hidden`` ReLU for the actor, each of 2 critics and IQL's value), batch size and the
algorithms' published defaults (IQL: τ 0.7, β 3, a Gaussian policy with a state-independent
σ; CQL: SAC's critics and actor, 10 sampled actions, the Lagrangian α). Each side prints its
parameter count, which must agree.

* fnrl, 1 seed:  updates/s of a whole ``fnrl train`` program (``runs.make_train``, what the
  command line compiles) of ``--updates`` updates, its one final evaluation (one episode) included;
* fnrl, N seeds: the ``--seeds``-seed :class:`fnrl.sweep.Sweep` (``fnrl train --seeds N``), its
  aggregate updates/s (every seed's updates over the wall time) and per seed;
* d3rlpy fit:    ``algo.fit(dataset, n_steps=...)``, its one-line training (Python-side sampling);
* d3rlpy update: ``algo.update(batch)`` alone, on batches sampled before the clock starts.

fnrl's programs are compiled ahead of time (printed apart, never in updates/s) and timed
alternately ``--repeats`` times, best of each; d3rlpy's are timed the same way after an untimed
warm-up. XLA uses every core; PyTorch runs with ``--threads`` (default 2, this machine's cores).
Measure on a quiet machine.

    python -m venv /work/d3venv && /work/d3venv/bin/pip install torch==2.13.0 d3rlpy   # the peer's venv
    D3RLPY_PY=/work/d3venv/bin/python python benchmarks/offline.py                     # IQL and CQL, 256×256
    python benchmarks/offline.py --algos iql --updates 1000 --seeds 16 --d3rlpy-python /work/d3venv/bin/python
    python benchmarks/offline.py --quick                                               # a smoke run

Without ``D3RLPY_PY`` or ``--d3rlpy-python`` only fnrl's side runs. The peer script,
``benchmarks/peers/offline_d3rlpy.py``, runs on its own too and prints ``RESULT`` lines.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

import jax
import numpy as np

from fnrl import datasets, envs, runs
from onpolicy import best_times, compile_aot

PEER = pathlib.Path(__file__).resolve().parent / "peers" / "offline_d3rlpy.py"
ENV = "pendulum"
SIZES = ("updates", "seeds", "repeats", "hidden", "layers", "batch", "transitions")
DEFAULTS = dict(updates=1000, seeds=16, repeats=2, hidden=256, layers=2, batch=256, transitions=50_000)
QUICK = dict(updates=50, seeds=2, repeats=1, hidden=32, layers=2, batch=32, transitions=2_000)


def write_dataset(directory: str, transitions: int) -> tuple[str, str]:
    """Uniformly random pendulum steps as a Minari dataset (fnrl's) and an ``.npz`` (d3rlpy's)."""
    env = envs.make(ENV)
    episodes = datasets.collect(env, datasets.uniform_policy(env.spec), jax.random.PRNGKey(0), transitions,
                                num_envs=10)
    path = os.path.join(directory, "pendulum-random")
    t = datasets.save(path, episodes, ENV, description="benchmarks/offline.py: uniformly random steps").transitions
    npz = os.path.join(directory, "pendulum-random.npz")
    np.savez(npz, observations=np.asarray(t.obs), actions=np.asarray(t.action), rewards=np.asarray(t.reward),
             terminals=np.asarray(t.termination), timeouts=np.asarray(t.truncation))
    return path, npz


def num_params(learner) -> int:
    """Trainable parameters of a learner: its fields but target copies and optimiser states."""
    if hasattr(learner, "_fields"):
        return sum(num_params(getattr(learner, name)) for name in learner._fields
                   if not (name.startswith("target") or name.endswith("_opt")))
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(learner))


def fnrl_side(algo: str, dataset: str, args) -> dict:
    fields = {"env": ENV, "dataset": dataset, "total_steps": args.updates, "batch_size": args.batch,
              "hidden_sizes": [args.hidden] * args.layers, "num_evals": 1, "eval_episodes": 1}
    if algo == "cql":
        fields.update(cql_lagrange=True, cql_num_actions=args.cql_actions)
    module, config = runs.build(algo, fields)
    one = runs.make_train(module, config)
    many = runs.make_train(module, config, seeds=list(range(args.seeds)))
    key = jax.random.PRNGKey(0)
    compiled = {"one": compile_aot(one, key), "many": compile_aot(many, many.keys)}
    times = best_times({"one": (compiled["one"][0], key), "many": (compiled["many"][0], many.keys)}, args.repeats)
    updates = one.step(one.num_chunks)
    return {"one_per_s": updates / times["one"], "many_per_s": args.seeds * updates / times["many"],
            "one_compile_s": compiled["one"][1], "many_compile_s": compiled["many"][1],
            "params": num_params(jax.eval_shape(one.init, key).learner), "updates": updates}


def d3rlpy_side(algo: str, npz: str, args) -> dict:
    command = [args.d3rlpy_python, str(PEER), "--data", npz, "--algo", algo, "--updates", str(args.updates),
               "--repeats", str(args.repeats), "--hidden", str(args.hidden), "--layers", str(args.layers),
               "--batch", str(args.batch), "--cql-actions", str(args.cql_actions), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"offline: d3rlpy's side failed ({' '.join(command)}): {tail[0]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    print(line, flush=True)
    return dict(part.split("=", 1) for part in line.split()[1:])


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in SIZES:
        parser.add_argument(f"--{name}", type=int, default=None,
                            help=f"default {DEFAULTS[name]} ({QUICK[name]} with --quick)")
    parser.add_argument("--algos", nargs="+", choices=("iql", "cql"), default=["iql", "cql"])
    parser.add_argument("--cql-actions", type=int, default=10, help="CQL's sampled actions of each kind")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--d3rlpy-python", default=os.environ.get("D3RLPY_PY"),
                        help="python of a venv with d3rlpy and torch (default $D3RLPY_PY; none: fnrl only)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's threads")
    args = parser.parse_args(argv)
    for name in SIZES:
        if getattr(args, name) is None:
            setattr(args, name, (QUICK if args.quick else DEFAULTS)[name])
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.batch > args.transitions:
        parser.error(f"--batch ({args.batch}) must not exceed --transitions ({args.transitions})")
    return args


def main(argv=None) -> None:
    args = parse(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; best of {args.repeats}"
          + ("; --quick: tiny sizes, a smoke run, not a measurement" if args.quick else ""))
    print(f"{ENV}: {args.transitions:,} random transitions; networks {args.layers} x {args.hidden} ReLU; "
          f"batch {args.batch}; {args.updates:,} updates per run", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        dataset, npz = write_dataset(directory, args.transitions)
        for algo in args.algos:
            ours = fnrl_side(algo, dataset, args)
            print(f"RESULT name=fnrl_{algo} " + " ".join(f"{k}={v:.6g}" for k, v in ours.items()), flush=True)
            peer = d3rlpy_side(algo, npz, args) if args.d3rlpy_python else None
            rows.append((algo, ours, peer))
    if not args.d3rlpy_python:
        print("d3rlpy not run: give --d3rlpy-python or D3RLPY_PY (see this script's docstring)")

    print(f"\n| algorithm | program | updates/s | fnrl 1 seed ÷ this | fnrl {args.seeds} seeds ÷ this "
          "| compile or first call s | parameters |")
    print("|---|---|---|---|---|---|---|")
    for algo, ours, peer in rows:
        name = algo.upper()
        one, many = ours["one_per_s"], ours["many_per_s"]
        print(f"| {name} | fnrl, 1 seed | {one:,.1f} | 1.00 | {many / one:.2f} | {ours['one_compile_s']:.1f} "
              f"| {ours['params']:,} |")
        print(f"| {name} | fnrl, {args.seeds} seeds (aggregate; {many / args.seeds:,.1f} per seed) | {many:,.1f} "
              f"| {one / many:.2f} | 1.00 | {ours['many_compile_s']:.1f} | |")
        if peer:
            for label, field in (("fit", "fit_updates_per_s"), ("update only", "update_only_per_s")):
                rate = float(peer[field])
                print(f"| {name} | d3rlpy {peer['d3rlpy']}, {label} | {rate:,.1f} | {one / rate:.2f} | "
                      f"{many / rate:.2f} | {float(peer['first_s']):.1f} | {int(peer['params']):,} |")
            print(f"RESULT name=ratio_{algo} fnrl_over_d3rlpy_fit={one / float(peer['fit_updates_per_s']):.4g} "
                  f"fnrl_seeds_over_d3rlpy_fit={ours['many_per_s'] / float(peer['fit_updates_per_s']):.4g} "
                  f"fnrl_over_d3rlpy_update={one / float(peer['update_only_per_s']):.4g}")
            if int(peer["params"]) != ours["params"]:
                print(f"  (unequal networks: d3rlpy has {peer['params']} parameters, fnrl {ours['params']})")


if __name__ == "__main__":
    sys.exit(main())
