"""d3rlpy's side of benchmarks/offline.py: IQL or CQL updates per second on the same dataset.

Runs in a venv with d3rlpy and PyTorch (not fnrl's)::

    python -m venv /work/d3venv && /work/d3venv/bin/pip install torch==2.13.0 d3rlpy   # tested: d3rlpy 2.8.1
    /work/d3venv/bin/python benchmarks/peers/offline_d3rlpy.py --data DATA.npz --algo iql --updates 1000

``DATA.npz`` holds the dataset as benchmarks/offline.py writes it (``observations``, ``actions``,
``rewards``, ``terminals``, ``timeouts``, one row per step). Two numbers, each the best of
``--repeats`` after an untimed warm-up:

* fit:    updates/s of ``algo.fit(dataset, n_steps=updates)`` -- d3rlpy's one-line training,
          with its Python-side minibatch sampling, no evaluators and no logging;
* update: updates/s of ``algo.update(batch)`` alone, on batches sampled before the clock starts.

Prints ``RESULT`` lines (``key=value``) that benchmarks/offline.py reads.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np


def make_algo(d3rlpy, args):
    encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=[args.hidden] * args.layers)
    common = dict(batch_size=args.batch, actor_encoder_factory=encoder, critic_encoder_factory=encoder)
    if args.algo == "iql":  # d3rlpy's defaults are the paper's: τ = 0.7, β = 3, 2 critics, Gaussian policy
        config = d3rlpy.algos.IQLConfig(value_encoder_factory=encoder, **common)
    else:  # continuous CQL on SAC, its Lagrangian α (alpha_learning_rate > 0), 10 sampled actions
        config = d3rlpy.algos.CQLConfig(n_action_samples=args.cql_actions, **common)
    return config.create(device="cpu:0")


def num_params(torch, algo) -> int:
    """Trainable parameters of the learner's networks (target copies left out)."""
    modules = algo.impl.modules
    total = 0
    for field in dataclasses.fields(modules):
        value = getattr(modules, field.name)
        if isinstance(value, torch.nn.Module) and not field.name.startswith("targ"):
            total += sum(p.numel() for p in value.parameters())
    return total


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--algo", choices=("iql", "cql"), required=True)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--cql-actions", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import d3rlpy
    import torch

    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    arrays = np.load(args.data)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=arrays["observations"], actions=arrays["actions"], rewards=arrays["rewards"],
        terminals=arrays["terminals"], timeouts=arrays["timeouts"])
    algo = make_algo(d3rlpy, args)
    algo.build_with_dataset(dataset)
    quiet = dict(show_progress=False, logger_adapter=d3rlpy.logging.NoopAdapterFactory(), save_interval=10**9)

    def fit(steps):
        return lambda: algo.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, **quiet)

    start = time.perf_counter()
    fit(args.warmup)()
    first_s = time.perf_counter() - start
    fit_s = best(fit(args.updates), args.repeats)
    batches = [dataset.sample_transition_batch(args.batch) for _ in range(args.updates)]
    update_s = best(lambda: [algo.update(batch) for batch in batches], args.repeats)
    print(f"RESULT name=d3rlpy_{args.algo} fit_updates_per_s={args.updates / fit_s:.6g} "
          f"update_only_per_s={args.updates / update_s:.6g} params={num_params(torch, algo)} "
          f"first_s={first_s:.4g} d3rlpy={d3rlpy.__version__} torch={torch.__version__} threads={args.threads}",
          flush=True)


if __name__ == "__main__":
    main()
