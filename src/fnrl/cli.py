"""The ``fnrl`` command line.

    fnrl train <algo> --env ENV --steps N --seed S --out DIR [--set key=value ...]
    fnrl list

Several devices: ``--set num_devices=D`` (data parallel, see :mod:`fnrl.parallel`). Several
hosts or processes: run the same command in each with ``--distributed`` (addresses from
the cluster environment, e.g. SLURM) or ``--distributed --coordinator HOST:PORT
--num-processes N --process-id I``; ``num_devices`` then defaults to every device of every
process, and only process 0 writes DIR.

Every input is checked before anything is compiled or written: a bad one gets a one-line
error naming what was wrong and what is accepted, and exit code 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time


class UsageError(Exception):
    """Bad user input: printed as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fnrl", description="Functional reinforcement learning in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an agent and write metrics.jsonl, summary.json, curve.png")
    train.add_argument("algo", help="algorithm name (see `fnrl list`)")
    train.add_argument("--env", required=True, help="environment name (see `fnrl list`)")
    train.add_argument("--steps", type=int, required=True, help="environment steps to train for")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="output directory (created; must not hold a run)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field; repeatable")
    train.add_argument("--distributed", action="store_true",
                       help="join a multi-process run (jax.distributed.initialize) and train over every "
                            "process's devices; only process 0 writes --out")
    train.add_argument("--coordinator", metavar="HOST:PORT", help="with --distributed: process 0's address")
    train.add_argument("--num-processes", type=int, metavar="N", help="with --distributed: number of processes")
    train.add_argument("--process-id", type=int, metavar="I", help="with --distributed: this process's index")

    sub.add_parser("list", help="print the algorithms and environments")
    return parser


def _list() -> None:
    from fnrl import algorithms, envs

    print("algorithms:", " ".join(algorithms.names()))
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


def _prepare(args):
    """Validates everything the run needs; returns (module, config, env). Writes nothing."""
    import jax

    from fnrl import algorithms, envs, parallel
    from fnrl.config import ConfigError, override
    from fnrl.training import check_env, make_env

    try:
        module = algorithms.get(args.algo)
    except ValueError as e:
        raise UsageError(str(e)) from None
    try:
        envs.make(args.env)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.steps <= 0:
        raise UsageError(f"invalid --steps {args.steps}: must be a positive integer")
    try:
        config = module.Config(env=args.env, total_steps=args.steps)
        every_device = [f"num_devices={jax.device_count()}"] if args.distributed else []
        config = override(config, every_device + args.overrides)  # the user's own setting wins
        check_env(args.algo, module.SUPPORTS, make_env(config).spec, args.env)
        parallel.make_mesh(config.num_devices)  # enough devices?
    except (ConfigError, ValueError, TypeError) as e:
        raise UsageError(str(e).splitlines()[0]) from None
    if os.path.exists(os.path.join(args.out, "summary.json")) or os.path.exists(
        os.path.join(args.out, "metrics.jsonl")
    ):
        raise UsageError(f"--out {args.out!r} already holds a run; choose another directory")
    return module, config


def _train(args) -> None:
    _distribute(args)
    module, config = _prepare(args)

    import jax

    from fnrl.logging import plot_curve

    rows: list[dict] = []
    start = [0.0]

    def on_eval(step, episode_return, metrics):
        elapsed = time.perf_counter() - start[0]
        row = {"step": int(step), "episode_return": float(episode_return),
               "sps": float(step) / max(elapsed, 1e-9), "wall_s": elapsed}
        row.update({k: float(v) for k, v in metrics.items()})
        rows.append(row)
        print(f"step {row['step']:>9d}  return {row['episode_return']:9.2f}  sps {row['sps']:9.0f}", flush=True)

    train = jax.jit(module.make_train(config, on_eval=on_eval))
    key = jax.random.PRNGKey(args.seed)
    t0 = time.perf_counter()
    compiled = train.lower(key).compile()
    compile_s = time.perf_counter() - t0
    print(f"{args.algo} on {config.env}: compiled in {compile_s:.1f}s, training {config.total_steps} steps", flush=True)
    start[0] = time.perf_counter()
    _, _ = jax.block_until_ready(compiled(key))
    wall_s = time.perf_counter() - start[0]
    if jax.process_index() != 0:
        print(f"process {jax.process_index()} of {jax.process_count()} done; process 0 writes {args.out}")
        return

    rows.sort(key=lambda r: r["step"])  # callbacks from a multi-device run may arrive out of order
    final = rows[-1]
    summary = {
        "algo": args.algo, "env": config.env, "steps": final["step"], "seed": args.seed,
        "episode_return": final["episode_return"], "wall_s": wall_s, "compile_s": compile_s,
        "sps": final["step"] / wall_s, "config": dataclasses.asdict(config),
    }
    # Write into a temporary directory beside DIR, then move the files in: no half-written run.
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        with open(os.path.join(tmp, "metrics.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        with open(os.path.join(tmp, "summary.json"), "w") as f:
            json.dump(summary, f, indent=2)
        plot_curve([r["step"] for r in rows], [r["episode_return"] for r in rows],
                   os.path.join(tmp, "curve.png"), title=f"{args.algo} on {config.env} (seed {args.seed})")
        for name in ("metrics.jsonl", "curve.png", "summary.json"):
            os.replace(os.path.join(tmp, name), os.path.join(args.out, name))
    print(f"final return {final['episode_return']:.2f} after {final['step']} steps "
          f"({summary['sps']:.0f} steps/s); wrote {args.out}/metrics.jsonl, summary.json, curve.png")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            _list()
        elif args.command == "train":
            _train(args)
    except UsageError as e:
        print(f"fnrl: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
