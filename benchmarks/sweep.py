"""Many runs in one program: the aggregate environment steps/s of 16 seeds and of a 16-point
learning-rate sweep (``fnrl.sweep``, what ``fnrl train --seeds 16`` and ``--sweep
learning_rate=...`` compile), against one run of the same configuration.

For each algorithm it compiles three whole-run programs ahead of time -- one run, 16 seeds and
16 learning rates (log-spaced over a decade around the default, one seed) -- and times them
alternately ``--repeats`` times, keeping the best of each; compilation is reported apart and
never counted in steps/s. "aggregate" is the steps of every run over the wall time.

    python benchmarks/sweep.py
    python benchmarks/sweep.py --algos ppo --runs 8 --repeats 3
"""
from __future__ import annotations

import argparse

import jax
import numpy as np

from fnrl import algorithms, presets
from fnrl.sweep import make_sweep
from onpolicy import best_times, compile_aot

# (algorithm, environment, environment steps per run)
CASES = {"ppo": ("cartpole", 100_000), "dqn": ("cartpole", 20_000), "sac": ("pendulum", 10_000)}


def measure(algo: str, runs: int, repeats: int) -> dict:
    env, steps = CASES[algo]
    module = algorithms.get(algo)
    config = presets.config(algo, env, total_steps=steps, num_evals=2)
    rate = next(f for f in ("learning_rate", "critic_learning_rate") if hasattr(config, f))
    rates = (getattr(config, rate) * np.logspace(-0.5, 0.5, runs)).tolist()
    one = module.make_train(config)
    seeds, sweep = make_sweep(module, config, range(runs)), make_sweep(module, config, [0], {rate: rates})
    programs = {"one run": (one, jax.random.PRNGKey(0), 1), f"{runs} seeds": (seeds, seeds.keys, runs),
                f"{runs} {rate}s": (sweep, sweep.keys, runs)}  # (train, its key(s), runs)
    compiled = {name: compile_aot(train, key) for name, (train, key, _) in programs.items()}
    times = best_times({name: (program, programs[name][1]) for name, (program, _) in compiled.items()}, repeats)
    run_steps = one.step(one.num_chunks)
    return {name: (members * run_steps / times[name], compiled[name][1])
            for name, (_, _, members) in programs.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, best of {args.repeats}\n")
    print("| algorithm | program | aggregate steps/s | × one run | compile s |")
    print("|---|---|---|---|---|")
    for algo in args.algos:
        results = measure(algo, args.runs, args.repeats)
        one = results["one run"][0]
        env, steps = CASES[algo]
        for name, (sps, compile_s) in results.items():
            print(f"| {algo} {env} ({steps:,} steps per run) | {name} | {sps:,.0f} | {sps / one:.2f} | {compile_s:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
