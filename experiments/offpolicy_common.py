"""Shared by the off-policy experiments: train variants over seeds with vmap, write table.md and
curve.png. Each ``offpolicy_<task>.py`` script only names its variants and its target return."""
from __future__ import annotations

import dataclasses
import os
import time

import jax
import numpy as np


def run(module, config, seeds: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(steps [evals], returns [seeds, evals], wall seconds)`` of ``seeds`` runs in one vmapped program."""
    train = jax.jit(jax.vmap(module.make_train(config)))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    start = time.perf_counter()
    _, metrics = jax.block_until_ready(train(keys))
    return np.asarray(metrics["step"][0]), np.asarray(metrics["episode_return"]), time.perf_counter() - start


def first_reaching(steps: np.ndarray, returns: np.ndarray, target: float) -> str:
    hits = np.flatnonzero(returns >= target)
    return f"{steps[hits[0]]:,}" if hits.size else "never"


def report(title: str, results: dict, target: float, out: str, command: str) -> str:
    """Writes ``out/table.md`` and ``out/curve.png`` for ``{name: (config, steps, returns, wall)}``."""
    os.makedirs(out, exist_ok=True)
    lines = [f"# {title}", "", f"`{command}`", "",
             f"Mean evaluation return (greedy/deterministic policy, 16 episodes) per seed; target {target:g}.",
             "", "| variant | final return (mean ± std) | best return (mean) | first step each seed reaches "
             f"{target:g} | seeds reaching it | wall s (all seeds, compile incl.) |", "|---|---|---|---|---|---|"]
    for name, (_, steps, returns, wall) in results.items():
        firsts = [first_reaching(steps, r, target) for r in returns]
        reached = sum(f != "never" for f in firsts)
        lines.append(f"| {name} | {returns[:, -1].mean():.1f} ± {returns[:, -1].std():.1f} | "
                     f"{returns.max(1).mean():.1f} | {', '.join(firsts)} | {reached}/{len(returns)} | {wall:.0f} |")
    lines += ["", "Per-seed final returns:", ""]
    for name, (_, _, returns, _) in results.items():
        lines.append(f"- {name}: {', '.join(f'{r:.1f}' for r in returns[:, -1])}")
    lines += ["", "Configurations:", ""]
    lines += [f"- {name}: `{dataclasses.asdict(config)}`" for name, (config, *_) in results.items()]
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, (_, steps, returns, _) in results.items():
        mean, std = returns.mean(0), returns.std(0)
        ax.plot(steps, mean, label=name)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.axhline(target, color="grey", linestyle="--", linewidth=1)
    seeds = len(next(iter(results.values()))[2])
    ax.set(xlabel="environment steps", ylabel="mean evaluation return", title=f"{title} ({seeds} seeds, mean ± std)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curve.png"), dpi=100)
    return "\n".join(lines)
