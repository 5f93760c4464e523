"""Shared by the on-policy experiments: train each variant over seeds in one vmapped program and
write ``table.md`` and ``curve.png``. Each ``onpolicy_<task>.py`` script names its variants,
budget and target return.

Import this module before JAX runs anything: it turns off XLA:CPU's concurrency-optimised
scheduler, with which some vmapped training programs (NPG, TRPO) deadlock on CPU in jax 0.10.2
(every XLA worker thread parks on a futex and the run never finishes).
"""
from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()

import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402


@dataclasses.dataclass
class Result:
    config: object
    steps: np.ndarray    # [evals] environment steps at each evaluation
    returns: np.ndarray  # [seeds, evals] mean evaluation return
    wall_s: float        # all seeds together, compilation included


def run(module, config, seeds: int) -> Result:
    """``seeds`` runs of ``module.make_train(config)`` in one ``jit(vmap(train))`` program,
    evaluated with the stochastic policy (``eval_policy="stochastic"``), as the tables say."""
    config = dataclasses.replace(config, eval_policy="stochastic")
    start = time.perf_counter()
    train = jax.jit(jax.vmap(module.make_train(config)))
    _, metrics = jax.block_until_ready(train(jax.random.split(jax.random.PRNGKey(0), seeds)))
    return Result(config, np.asarray(metrics["step"][0]), np.asarray(metrics["episode_return"]),
                  time.perf_counter() - start)


def _first(steps, returns, target) -> str:
    hits = np.flatnonzero(returns >= target)
    return f"{steps[hits[0]]:,}" if hits.size else "never"


def report(title: str, results: dict[str, Result], target: float | None, out: str, command: str) -> str:
    """Writes ``out/table.md``, ``out/curve.png`` and the plotted data ``out/curves.json``; returns
    the table. ``target=None``: no target (the curve is only reported), so no first-step columns."""
    os.makedirs(out, exist_ok=True)
    seeds = len(next(iter(results.values())).returns)
    header = ["algorithm", "final return (mean ± std)", "best seed-mean return", "steps", "wall s (compile incl.)"]
    if target is not None:
        header[3:3] = ["first step the seed-mean reaches the target", "first step per seed"]
    lines = [f"# {title}", "", f"`{command}`", "",
             f"{seeds} seeds per algorithm, trained together with `jax.vmap` on {jax.devices()[0].platform.upper()}. "
             "Return: mean undiscounted return of 16 evaluation episodes with the stochastic policy "
             "(actions sampled, as in training)." + (f" Target {target:g}." if target is not None else ""), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in results.items():
        row = [name, f"{r.returns[:, -1].mean():.1f} ± {r.returns[:, -1].std():.1f}", f"{r.returns.mean(0).max():.1f}",
               f"{r.steps[-1]:,}", f"{r.wall_s:.0f}"]
        if target is not None:
            row[3:3] = [_first(r.steps, r.returns.mean(0), target),
                        ", ".join(_first(r.steps, seed, target) for seed in r.returns)]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Per-seed final returns:", ""]
    lines += [f"- {name}: {', '.join(f'{x:.1f}' for x in r.returns[:, -1])}" for name, r in results.items()]
    lines += ["", "Configurations (`dataclasses.asdict`):", ""]
    lines += [f"- {name}: `{dataclasses.asdict(r.config)}`" for name, r in results.items()]
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "curves.json"), "w") as f:  # the plotted data, per seed
        json.dump({name: {"steps": r.steps.tolist(), "returns": r.returns.tolist()} for name, r in results.items()}, f)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, r in results.items():
        mean, std = r.returns.mean(0), r.returns.std(0)
        ax.plot(r.steps, mean, label=name)
        ax.fill_between(r.steps, mean - std, mean + std, alpha=0.2)
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="environment steps", ylabel="mean evaluation return", title=f"{title}\n{seeds} seeds, mean ± std")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curve.png"), dpi=100)
    plt.close(fig)
    return "\n".join(lines)
