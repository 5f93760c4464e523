"""Several hosts, shown with local CPU processes: a training run over 2 processes (each with
its own CPU device(s), joined by ``jax.distributed.initialize`` over 127.0.0.1) equals the
single-process, single-device run with the same global batch and seed.

    python experiments/multihost.py                         # 2 processes x 1 device
    python experiments/multihost.py --devices-per-process 2 # 2 processes x 2 devices

Two checks, each launching the processes side by side:

1. library: every process calls :func:`fnrl.parallel.initialize`, then trains with
   ``num_devices`` = all devices of all processes and saves its final parameters; all
   processes must hold bit-identical parameters, equal (to float tolerance) to the
   reference run;
2. command line: ``fnrl train ... --distributed --coordinator ... --num-processes N
   --process-id I --out DIR_I``; all must exit 0, only process 0 may write (DIR_0 holds
   ``summary.json`` and ``metrics.jsonl``, no other DIR_I exists), and the evaluation
   returns in DIR_0 must match the reference run's.

Writes ``report.md`` into ``--out``; exits 1 if a check fails. Each process runs on the
CPU (``JAX_PLATFORMS=cpu``); on a real cluster the same ``fnrl train --distributed`` runs
once per host and reads its addresses from the cluster environment.

Not a test: on a loaded 2-core machine the processes compile slowly (about a minute), too
slow and variable for the test suite; ``tests/test_parallel.py`` tests the single-host,
two-device case.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

# A small run (REINFORCE on cartpole with observation normalisation), as ``--set`` overrides.
OVERRIDES = ["num_envs=8", "rollout_length=16", "num_evals=3", "eval_episodes=4", "hidden_sizes=16",
             "normalize_obs=true"]
STEPS = 3 * 8 * 16
SEED = 0


def _config(num_devices: int):
    from fnrl.algorithms import reinforce
    from fnrl.config import override

    return override(reinforce.Config(env="cartpole", total_steps=STEPS), OVERRIDES + [f"num_devices={num_devices}"])


def worker(coordinator: str, num_processes: int, process_id: int, out: str) -> None:
    """One process of check 1: joins the run, trains over every device, saves its results."""
    from fnrl import parallel

    parallel.initialize(coordinator, num_processes, process_id)  # before anything else uses JAX

    import jax
    import numpy as np

    from fnrl.algorithms import reinforce

    learner, metrics = jax.jit(reinforce.make_train(_config(jax.device_count())))(jax.random.PRNGKey(SEED))
    np.savez(out, *(np.asarray(p) for p in jax.tree_util.tree_leaves(learner.params)),
             episode_return=np.asarray(metrics["episode_return"]), devices=jax.device_count())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(commands: list[list[str]], devices_per_process: int, timeout: float) -> list[tuple[int, str]]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}"}
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in commands]
    logs = [p.communicate(timeout=timeout)[0] for p in procs]
    return [(p.returncode, log) for p, log in zip(procs, logs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--devices-per-process", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per check")
    parser.add_argument("--out", default="experiments/results/multihost")
    parser.add_argument("--worker", nargs=4, metavar=("COORDINATOR", "N", "I", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        coordinator, n, i, out = args.worker
        worker(coordinator, int(n), int(i), out)
        return 0

    import jax
    import numpy as np

    from fnrl.algorithms import reinforce

    n = args.processes
    start = time.perf_counter()
    learner, metrics = jax.jit(reinforce.make_train(_config(1)))(jax.random.PRNGKey(SEED))
    ref_params = [np.asarray(p) for p in jax.tree_util.tree_leaves(learner.params)]
    ref_returns = np.asarray(metrics["episode_return"])
    checks: list[tuple[str, bool, str]] = []

    with tempfile.TemporaryDirectory() as tmp:
        # 1. The library: fnrl.parallel.initialize + make_train over every process's devices.
        address = f"127.0.0.1:{_free_port()}"
        outs = [os.path.join(tmp, f"process{i}.npz") for i in range(n)]
        results = _launch([[sys.executable, __file__, "--worker", address, str(n), str(i), outs[i]]
                           for i in range(n)], args.devices_per_process, args.timeout)
        ok = all(code == 0 for code, _ in results)
        detail = "; ".join(f"process {i} exit {code}" for i, (code, _) in enumerate(results))
        if ok:
            saved = [np.load(o) for o in outs]
            params = [[s[f"arr_{j}"] for j in range(len(ref_params))] for s in saved]
            identical = all(np.array_equal(a, b) for p in params[1:] for a, b in zip(params[0], p))
            error = max(float(np.max(np.abs(a - b))) for a, b in zip(params[0], ref_params))
            ok = identical and error < 1e-5 and int(saved[0]["devices"]) == n * args.devices_per_process
            detail = (f"{int(saved[0]['devices'])} devices; parameters identical across processes: {identical}; "
                      f"max abs difference from the one-device run: {error:.1e}")
        checks.append(("library: processes hold identical parameters, equal to one device", ok, detail))
        logs = [log for _, log in results] if not ok else []

        # 2. The command line: fnrl train --distributed; only process 0 writes.
        address = f"127.0.0.1:{_free_port()}"
        dirs = [os.path.join(tmp, f"run{i}") for i in range(n)]
        sets = [a for o in OVERRIDES for a in ("--set", o)]
        results = _launch([[sys.executable, "-m", "fnrl.cli", "train", "reinforce", "--env", "cartpole",
                            "--steps", str(STEPS), "--seed", str(SEED), "--out", dirs[i], *sets, "--distributed",
                            "--coordinator", address, "--num-processes", str(n), "--process-id", str(i)]
                           for i in range(n)], args.devices_per_process, args.timeout)
        ok = all(code == 0 for code, _ in results)
        detail = "; ".join(f"process {i} exit {code}" for i, (code, _) in enumerate(results))
        if ok:
            wrote = [os.path.exists(d) for d in dirs]
            with open(os.path.join(dirs[0], "summary.json")) as f:
                summary = json.load(f)
            with open(os.path.join(dirs[0], "metrics.jsonl")) as f:
                rows = [json.loads(line) for line in f]
            returns = np.array([r["episode_return"] for r in rows])
            ok = wrote == [True] + [False] * (n - 1) and summary["config"]["num_devices"] == n * args.devices_per_process \
                and np.allclose(returns, ref_returns, atol=1e-4)
            detail = (f"directories written: {wrote}; num_devices={summary['config']['num_devices']}; "
                      f"evaluation returns {returns.tolist()} vs one device {ref_returns.tolist()}")
        checks.append(("command line: only process 0 writes; same returns as one device", ok, detail))
        logs += [log for _, log in results] if not ok else []
    for log in logs:  # the processes' output, where a check failed
        print(log[-3000:], file=sys.stderr)

    wall = time.perf_counter() - start
    lines = [f"# {n} processes x {args.devices_per_process} CPU device(s) vs one device "
             f"(jax {jax.__version__}, {wall:.0f} s)", "", "| check | passed | detail |", "|---|---|---|"]
    lines += [f"| {name} | {'yes' if ok else 'NO'} | {detail} |" for name, ok, detail in checks]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
