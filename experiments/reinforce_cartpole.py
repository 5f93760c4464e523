"""REINFORCE (reward-to-go + learned baseline) on cartpole, 5 seeds trained at once with vmap.

    python experiments/reinforce_cartpole.py --steps 500000 --out experiments/results/reinforce_cartpole

Writes ``table.md`` (final mean evaluation return per seed, mean ± std) and ``curve.png``
(mean ± std over seeds) into ``--out``.
"""
import argparse
import os
import time

import jax
import numpy as np

from fnrl.algorithms import reinforce


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="experiments/results/reinforce_cartpole")
    args = parser.parse_args()

    config = reinforce.Config(env="cartpole", total_steps=args.steps)
    train = jax.jit(jax.vmap(reinforce.make_train(config)))
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    start = time.perf_counter()
    _, metrics = jax.block_until_ready(train(keys))
    wall = time.perf_counter() - start
    steps = np.asarray(metrics["step"][0])
    returns = np.asarray(metrics["episode_return"])  # [seeds, evals]

    os.makedirs(args.out, exist_ok=True)
    lines = [f"REINFORCE on cartpole, {args.seeds} seeds, {steps[-1]} environment steps each "
             f"({wall:.0f} s for all seeds, compile included)", "",
             "| seed | final return | best return |", "|---|---|---|"]
    lines += [f"| {i} | {r[-1]:.1f} | {r.max():.1f} |" for i, r in enumerate(returns)]
    lines.append(f"| mean ± std | {returns[:, -1].mean():.1f} ± {returns[:, -1].std():.1f} | |")
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    mean, std = returns.mean(0), returns.std(0)
    ax.plot(steps, mean, label="REINFORCE")
    ax.fill_between(steps, mean - std, mean + std, alpha=0.3)
    ax.set(xlabel="environment steps", ylabel="mean evaluation return", title="cartpole, 5 seeds (mean ± std)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "curve.png"), dpi=100)


if __name__ == "__main__":
    main()
