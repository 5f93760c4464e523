"""What the command line's run management costs, and what the compilation cache saves.

1. Start-up: ``fnrl train`` run twice with the same configuration and an empty persistent
   compilation cache; prints each run's compile time (from ``summary.json``) and whole process
   time. The second run reads the compiled programs from the cache.
2. Driving the run chunk by chunk from Python (``fnrl train``'s own loop, with its progress
   lines and non-finite guard; no logs or checkpoints written) against the same run as one
   program, ``jit(train)(key)``: environment steps/s of each and their ratio, timed
   alternately ``--repeats`` times, best of each.

    python benchmarks/command_line.py
    python benchmarks/command_line.py --algo ppo --env brax/inverted_pendulum --steps 200000
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax


def startup(args) -> list[tuple[float, float]]:
    """(compile s, process s) of two identical ``fnrl train`` runs sharing a fresh cache."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FNRL_CACHE_DIR": os.path.join(tmp, "cache")}
        for i in range(2):
            out = os.path.join(tmp, f"run{i}")
            command = [sys.executable, "-m", "fnrl.cli", "train", args.algo, "--env", args.env,
                       "--steps", str(args.steps), "--out", out] + [a for s in args.set for a in ("--set", s)]
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            process_s = time.perf_counter() - start
            with open(os.path.join(out, "summary.json")) as f:
                results.append((json.load(f)["compile_s"], process_s))
    return results


def chunked_vs_one_program(args) -> tuple[float, float]:
    """Environment steps/s of the run driven chunk by chunk and as one program."""
    from fnrl import algorithms, cli
    from fnrl.config import override

    module = algorithms.get(args.algo)
    config = override(module.Config(env=args.env, total_steps=args.steps), args.set)
    train = module.make_train(config)
    key = jax.random.PRNGKey(0)
    whole = jax.jit(train).lower(key).compile()
    pieces = cli._Compiled(train, key)

    def chunked():  # fnrl train's own loop, without writing logs or checkpoints
        cli._run(train, pieces, pieces.init(key), 0, None, None, 1, "")

    best = {"one program": float("inf"), "chunked": float("inf")}
    for _ in range(args.repeats):
        for name, run in (("one program", lambda: whole(key)), ("chunked", chunked)):
            start = time.perf_counter()
            jax.block_until_ready(run())  # _run has read back every metric by the time it returns
            best[name] = min(best[name], time.perf_counter() - start)
    steps = train.step(train.num_chunks)
    return steps / best["one program"], steps / best["chunked"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"{args.algo} on {args.env}, {args.steps} steps, {jax.devices()[0].device_kind}")
    (first_compile, first), (second_compile, second) = startup(args)
    print("| run | compile s | whole process s |\n|---|---|---|")
    print(f"| first (empty cache) | {first_compile:.1f} | {first:.1f} |")
    print(f"| second (cached) | {second_compile:.1f} | {second:.1f} |")
    one, chunked = chunked_vs_one_program(args)
    print(f"\none program: {one:,.0f} steps/s; chunk by chunk (fnrl train): {chunked:,.0f} steps/s; "
          f"ratio {chunked / one:.3f}")


if __name__ == "__main__":
    main()
