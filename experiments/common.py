"""Shared by the experiments: each variant is the command-line run

    fnrl train ALGO --env ENV --steps N --seeds 5 [--set KEY=VALUE ...]

built the same way (the tuned preset of ALGO on ENV from ``fnrl/presets.yaml``, then the
variant's changes) and trained the same way (one :mod:`fnrl.sweep` program of 5 seeds,
``jax.random.PRNGKey(0..4)``, driven by :func:`fnrl.runner.run`), so every number in a table is
what that command prints. Each ``<family>_<task>.py`` script names its variants, budget and
target; :func:`report` writes ``table.md``, ``curves.json`` and ``curve.png``.

Import this module before JAX runs anything: like ``fnrl train``, it turns off XLA:CPU's
concurrency-optimised scheduler (:func:`fnrl.cli.cpu_scheduler_workaround`), with which some
vmapped training programs (NPG, TRPO) deadlock on CPU in jax 0.10.2 (every XLA worker thread
parks on a futex and the run never finishes).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shlex
from typing import NamedTuple

from fnrl.cli import cpu_scheduler_workaround

cpu_scheduler_workaround()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from fnrl import algorithms, presets, runner  # noqa: E402
from fnrl.cli import main as fnrl_main  # noqa: E402
from fnrl.sweep import make_sweep  # noqa: E402

SEEDS = 5


class Variant(NamedTuple):
    """One row of a table: ``algo`` on ``env`` for ``steps``, with ``changes`` over the preset."""

    label: str
    algo: str
    env: str
    steps: int
    changes: dict = {}

    def config(self):
        return presets.config(self.algo, self.env, total_steps=self.steps, **self.changes)

    def command(self, seeds: int = SEEDS) -> list[str]:
        """The ``fnrl train`` arguments that make this run (``--out`` left out)."""
        sets = [arg for k, v in self.changes.items()
                for arg in ("--set", f"{k}={v if isinstance(v, str) else json.dumps(v)}")]
        return ["train", self.algo, "--env", self.env, "--steps", str(self.steps), "--seeds", str(seeds), *sets]

    def shell(self, seeds: int = SEEDS) -> str:
        """:meth:`command` as a shell command line."""
        return "fnrl " + shlex.join(self.command(seeds))


@dataclasses.dataclass
class Result:
    variant: Variant
    config: object
    steps: np.ndarray    # [evals] environment steps at each evaluation
    returns: np.ndarray  # [seeds, evals] mean evaluation return
    wall_s: float        # all seeds together, compilation included


def run(variant: Variant, seeds: int = SEEDS) -> Result:
    """The variant's ``seeds`` runs in one program, as ``fnrl train ... --seeds`` runs them."""
    config = variant.config()
    sweep = make_sweep(algorithms.get(variant.algo), config, range(seeds))
    result = runner.run(sweep, sweep.keys)
    steps = np.array([row["step"] for row in result.rows])
    returns = np.array([row["episode_return"] for row in result.rows]).T
    print(f"{variant.label}: final {returns[:, -1].round(1)} ({result.compile_s + result.wall_s:.0f} s)", flush=True)
    return Result(variant, config, steps, returns, result.compile_s + result.wall_s)


def fnrl(argv: list[str]) -> None:
    """Runs the command line ``fnrl ARGV`` in this process (printed first); stops on failure."""
    print("$ fnrl " + " ".join(argv), flush=True)
    code = fnrl_main(argv)
    if code != 0:
        raise SystemExit(f"fnrl {' '.join(argv)} exited {code}")


def _first(steps, returns, target) -> str:
    hits = np.flatnonzero(returns >= target)
    return f"{steps[hits[0]]:,}" if hits.size else "never"


def report(title: str, results: list[Result], target: float | None, out: str, command: str) -> str:
    """Writes ``out/table.md``, ``out/curve.png`` and the plotted data ``out/curves.json``; returns
    the table. ``target=None``: no target (the curve is only reported), so no target columns."""
    os.makedirs(out, exist_ok=True)
    seeds = len(results[0].returns)
    policies = {r.config.eval_policy for r in results}
    policy = {"stochastic": "the stochastic policy (actions sampled, as in training)",
              "greedy": "the greedy policy (the mode; no exploration noise)"}
    header = ["variant", "final return (mean ± std)", "best seed-mean return", "steps", "wall s (compile incl.)"]
    if target is not None:
        header[3:3] = ["first step the seed-mean reaches the target", "first step per seed", "seeds reaching it"]
    lines = [f"# {title}", "", f"`{command}`", "",
             f"{seeds} seeds per variant (`jax.random.PRNGKey(0..{seeds - 1})`), trained together in one vmapped "
             f"program on {jax.devices()[0].platform.upper()}. Return: mean undiscounted return of "
             f"{results[0].config.eval_episodes} evaluation episodes with "
             f"{' or '.join(policy[p] for p in sorted(policies))}." + (f" Target {target:g}." if target is not None else ""),
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        row = [r.variant.label, f"{r.returns[:, -1].mean():.1f} ± {r.returns[:, -1].std():.1f}",
               f"{r.returns.mean(0).max():.1f}", f"{r.steps[-1]:,}", f"{r.wall_s:.0f}"]
        if target is not None:
            firsts = [_first(r.steps, seed, target) for seed in r.returns]
            row[3:3] = [_first(r.steps, r.returns.mean(0), target), ", ".join(firsts),
                        f"{sum(f != 'never' for f in firsts)}/{seeds}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Each row is the command-line run:", ""]
    lines += [f"- {r.variant.label}: `{r.variant.shell(seeds)}`" for r in results]
    lines += ["", "Per-seed final returns:", ""]
    lines += [f"- {r.variant.label}: {', '.join(f'{x:.1f}' for x in r.returns[:, -1])}" for r in results]
    lines += ["", "Configurations (`dataclasses.asdict`):", ""]
    lines += [f"- {r.variant.label}: `{dataclasses.asdict(r.config)}`" for r in results]
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "curves.json"), "w") as f:  # the plotted data, per seed
        json.dump({r.variant.label: {"steps": r.steps.tolist(), "returns": r.returns.tolist()} for r in results}, f)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in results:
        mean, std = r.returns.mean(0), r.returns.std(0)
        ax.plot(r.steps, mean, label=r.variant.label)
        ax.fill_between(r.steps, mean - std, mean + std, alpha=0.2)
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="environment steps", ylabel="mean evaluation return", title=f"{title}\n{seeds} seeds, mean ± std")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curve.png"), dpi=100)
    plt.close(fig)
    return "\n".join(lines)


def main(title: str, variants: list[Variant], target: float | None, out: str, argv=None) -> None:
    """The command line every experiment script has: ``--seeds`` and ``--out``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--out", default=out)
    args = parser.parse_args(argv)
    results = [run(v, args.seeds) for v in variants]
    print(report(title, results, target, args.out, "python " + " ".join(sys.argv)))
