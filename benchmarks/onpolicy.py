"""On-policy training throughput: the learner's overhead over the raw environment, and seeds
trained at once with ``jax.vmap``.

For each environment, with the same batch of B environments, it prints

* raw:      environment steps/s of ``jit(scan(vmap(env.step)))`` with uniformly random
            actions (no time limit, no auto-reset, no policy);
* train:    environment steps/s of a whole PPO run, ``jit(train)(key)``: rollouts with the
            policy network, GAE, ``num_epochs x num_minibatches`` Adam steps per rollout, the
            wrappers (time limit, auto-reset) and one final evaluation episode;
* train/raw: the fraction of raw environment speed that training keeps (1 - overhead);
* 16 seeds: environment steps/s summed over the seeds of ``jit(vmap(train))(keys)``, and
            its ratio to one seed (the speed-up from training seeds together).

Compilation is timed separately (``jit(f).lower(key).compile()``, ahead of time) and never
counted in steps/s. The programs are timed alternately, ``--repeats`` times each, keeping the
best time of each, so all see the same machine load.

    python benchmarks/onpolicy.py
    python benchmarks/onpolicy.py --envs cartpole --num-envs 64 --updates 10 --set num_epochs=2
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import jax

import fnrl.envs
from fnrl import algorithms
from fnrl.config import override


def raw_runner(name: str, num_envs: int, num_steps: int):
    """``key -> final obs``: reset ``num_envs`` raw environments, then ``num_steps`` random steps."""
    env = fnrl.envs.make(name, max_episode_steps=None)

    def run(key):
        key, reset_key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def body(state, step_key):
            return jax.vmap(env.step)(state, env.spec.sample_action(step_key, (num_envs,))), None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, num_steps))
        return state.obs

    return run


def compile_aot(fn, example):
    """(compiled ``jit(fn)`` for arguments like ``example``, seconds spent compiling)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(example).compile()
    return compiled, time.perf_counter() - start


def best_times(programs: dict, repeats: int) -> dict:
    """Best wall time of each compiled ``program(arg)`` over ``repeats`` alternating rounds."""
    best = dict.fromkeys(programs, float("inf"))
    for i in range(repeats):
        for name, (program, arg) in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(program(arg))
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def measure(module, name: str, args) -> dict:
    """Compile seconds and steps/s of raw, 1-seed and ``args.seeds``-seed training for ``name``."""
    config = module.Config(env=name, num_envs=args.num_envs, rollout_length=args.rollout_length,
                           total_steps=args.updates * args.num_envs * args.rollout_length,
                           num_evals=1, eval_episodes=1)
    config = override(config, args.overrides)
    train = module.make_train(config)
    key = jax.random.PRNGKey(0)
    keys = jax.random.split(key, args.seeds)
    compiled = {
        "raw": compile_aot(raw_runner(name, config.num_envs, args.raw_steps), key),
        "train": compile_aot(train, key),
        "seeds": compile_aot(jax.vmap(train), keys),
    }
    times = best_times({"raw": (compiled["raw"][0], key), "train": (compiled["train"][0], key),
                        "seeds": (compiled["seeds"][0], keys)}, args.repeats)
    train_steps = config.periods.iterations * config.steps_per_update
    return {
        "compile_s": {k: c[1] for k, c in compiled.items()},
        "raw": config.num_envs * args.raw_steps / times["raw"],
        "train": train_steps / times["train"],
        "seeds": args.seeds * train_steps / times["seeds"],
        "config": config,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--envs", nargs="+", default=["cartpole", "brax/inverted_pendulum"])
    parser.add_argument("--num-envs", type=int, default=64, help="batch B, the same for raw and training")
    parser.add_argument("--rollout-length", type=int, default=128)
    parser.add_argument("--updates", type=int, default=10, help="rollouts + updates per timed training run")
    parser.add_argument("--raw-steps", type=int, default=1000, help="scan length of a timed raw run")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of each program; the best is kept")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field of the algorithm; repeatable")
    args = parser.parse_args(argv)
    module = algorithms.get(args.algo)

    print(f"{args.algo}: jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.device_count()} device), "
          f"B={args.num_envs}, T={args.rollout_length}, {args.updates} updates per run, best of {args.repeats}")
    header = (f"{'env':<24} {'raw steps/s':>12} {'train steps/s':>14} {'train/raw':>10} "
              f"{f'{args.seeds} seeds steps/s':>18} {f'{args.seeds} seeds/1':>11}   compile s (raw, train, seeds)")
    print(header)
    for name in args.envs:
        r = measure(module, name, args)
        c = r["compile_s"]
        print(f"{name:<24} {r['raw']:>12,.0f} {r['train']:>14,.0f} {r['train'] / r['raw']:>10.3f} "
              f"{r['seeds']:>18,.0f} {r['seeds'] / r['train']:>11.2f}   "
              f"{c['raw']:.1f}, {c['train']:.1f}, {c['seeds']:.1f}", flush=True)
    fields = {k: v for k, v in dataclasses.asdict(r["config"]).items() if k != "env"}
    print(f"{args.algo} config (env aside): {fields}")


if __name__ == "__main__":
    main()
