"""Environment throughput: the raw environment against the fully wrapped training stack.

For each environment and batch size B it prints steps/s of

* raw:     ``jit(scan(vmap(env.step)))`` with uniformly random actions, no time limit and no
           auto-reset (``make(name, max_episode_steps=None)``);
* wrapped: ``fnrl.envs.wrap(make(name), num_envs=B, normalize_obs=True)``: time limit,
           action rescaling, batching, auto-reset and observation normalisation, stepped by
           the same scan with the same random actions;

and their ratio (target: wrapped/raw >= 0.95), by wall clock and by process CPU time (steps
per CPU-second: the steadier measure on a shared machine). Each measurement repeats calls
of T steps for at least ``--min-seconds``; raw and wrapped are measured alternately,
``--repeats`` times each, and the best of each is kept, so both see the same load.

    python benchmarks/envs.py                                     # the full table
    python benchmarks/envs.py --envs cartpole brax/ant --num-envs 256 --steps 50
"""
from __future__ import annotations

import argparse
import time

import jax

import fnrl.envs


def _runner(env, num_envs: int, num_steps: int, batched: bool):
    """``(reset, run)``, both jitted: ``reset(key)`` gives ``num_envs`` states and
    ``run(state, key)`` steps them ``num_steps`` times with random actions (donating ``state``)."""
    spec = env.spec
    reset = env.reset if batched else lambda key: jax.vmap(env.reset)(jax.random.split(key, num_envs))
    step = env.step if batched else jax.vmap(env.step)

    def run(state, key):
        def body(state, step_key):
            return step(state, spec.sample_action(step_key, (num_envs,))), None

        return jax.lax.scan(body, state, jax.random.split(key, num_steps))[0]

    return jax.jit(reset), jax.jit(run, donate_argnums=0)


def _throughput(run, state, key, steps_per_call: int, min_seconds: float):
    """Calls ``run`` (each call continuing from the last state) until ``min_seconds`` have
    passed; returns the state and steps per wall-clock and per CPU second."""
    calls, wall, cpu = 0, time.perf_counter(), time.process_time()
    while calls == 0 or time.perf_counter() - wall < min_seconds:
        state = jax.block_until_ready(run(state, jax.random.fold_in(key, calls)))
        calls += 1
    steps = calls * steps_per_call
    return state, steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu)


def measure(name: str, num_envs: int, num_steps: int, repeats: int, min_seconds: float) -> dict[str, tuple]:
    """Steps/s ``{"raw": (wall, cpu), "wrapped": (wall, cpu)}`` for ``name`` at ``num_envs``,
    the best of ``repeats`` measurements. Calls continue from the previous call's state, so
    after the first (compiling, untimed) call episodes no longer start in lockstep."""
    runners = {
        "raw": _runner(fnrl.envs.make(name, max_episode_steps=None), num_envs, num_steps, batched=False),
        "wrapped": _runner(fnrl.envs.wrap(fnrl.envs.make(name), num_envs=num_envs, normalize_obs=True),
                           num_envs, num_steps, batched=True),
    }
    key = jax.random.PRNGKey(0)
    states = {k: jax.block_until_ready(run(reset(key), key)) for k, (reset, run) in runners.items()}
    best = {k: (0.0, 0.0) for k in runners}
    for i in range(repeats):
        for k, (_, run) in runners.items():  # alternate, so both see the same load
            states[k], *rates = _throughput(run, states[k], jax.random.fold_in(key, i), num_envs * num_steps,
                                            min_seconds)
            best[k] = tuple(map(max, best[k], rates))
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["cartpole", "brax/ant", "brax/halfcheetah"])
    parser.add_argument("--num-envs", nargs="+", type=int, default=[256, 2048])
    parser.add_argument("--steps", type=int, default=100, help="scan length T per timed call")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each; the best is kept")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="least time per measurement")
    args = parser.parse_args(argv)

    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; T={args.steps} steps per call, "
          f"best of {args.repeats} measurements of >= {args.min_seconds}s")
    print(f"{'':<24} {'steps per wall-clock second':^32}   {'steps per CPU-second':^32}")
    print(f"{'env':<18} {'B':>5} {'raw':>12} {'wrapped':>12} {'ratio':>6}   {'raw':>12} {'wrapped':>12} {'ratio':>6}")
    for name in args.envs:
        for num_envs in args.num_envs:
            r = measure(name, num_envs, args.steps, args.repeats, args.min_seconds)
            (raw, raw_cpu), (wrapped, wrapped_cpu) = r["raw"], r["wrapped"]
            print(f"{name:<18} {num_envs:>5} {raw:>12,.0f} {wrapped:>12,.0f} {wrapped / raw:>6.3f}   "
                  f"{raw_cpu:>12,.0f} {wrapped_cpu:>12,.0f} {wrapped_cpu / raw_cpu:>6.3f}", flush=True)


if __name__ == "__main__":
    main()
