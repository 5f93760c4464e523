"""Dyna-Q on Sutton & Barto's Dyna maze: real steps until the greedy policy is optimal, per K.

    python experiments/dyna_q.py [--seeds 5] [--out DIR]

``tabular/dyna_maze`` (Sutton & Barto 2018, Fig. 8.2: 47 cells, deterministic, γ = 0.95, the
goal 14 steps from the start, so V*(start) = γ¹³, exact by value iteration). For K = 0 (tabular
Q-learning), 5 and 50 planning steps per real step, each from the book's Q₀ = 0 and from the
preset's optimistic Q₀ = 1 (α = ε = 0.1 throughout, as in the book), ``--seeds`` seeds
(``jax.random.PRNGKey(0..4)``) trained together in one vmapped program for 20,000 real steps.
After every 50 steps the greedy policy's exact value at the start,
V^π(start) (:func:`fnrl.envs.tabular.policy_evaluation` of the argmax of Q, ties to the lowest
action as in the agent's greedy ``act``), is recorded: the table gives the first step at which
it equals V* (to 1e-5) per seed, and ``curve.png`` the value against real steps.

Each row is ``fnrl train dyna_q --env tabular/dyna_maze --steps 20000 --seed S --set
planning_steps=K ...`` (the preset, then the row's changes): the same learner from the same keys
(``num_evals = 400`` makes the loop's chunks 50 steps long); the command line scores its
evaluations by episodes, this script by the exact value, and skips the episodes.

Writes ``table.md``, ``curve.png`` and ``curves.json`` into ``experiments/results/dyna_q/``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import common  # noqa: F401  (before JAX runs anything: the CPU scheduler workaround)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fnrl.envs  # noqa: E402
from fnrl.algorithms import dyna_q  # noqa: E402
from fnrl.envs.tabular import policy_evaluation, value_iteration  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "results" / "dyna_q"
ENV, STEPS, EVALS = "tabular/dyna_maze", 20_000, 400  # 400 evaluation periods: a value every 50 steps
PLANNING_STEPS = (0, 5, 50)
Q_INITS = {"0 (the book's)": {"q_init": 0.0}, "1 (optimistic; the preset)": {}}
VARIANTS = [common.Variant(f"K = {k}, Q₀ = {q}", "dyna_q", ENV, STEPS, {"planning_steps": k, **changes,
                                                                        "num_evals": EVALS})
            for q, changes in Q_INITS.items() for k in PLANNING_STEPS]


def greedy_values(variant: common.Variant, seeds: int):
    """``(steps [chunks], values [seeds, chunks], seconds)``: V^π(start) of the greedy policy
    after each chunk of the variant's run from ``PRNGKey(0..seeds-1)``."""
    train = dyna_q.make_train(variant.config())
    mdp = fnrl.envs.make(variant.env).unwrapped.mdp

    def run(key):
        def chunk(carry, _):
            carry, _ = train.advance(carry)
            greedy = jax.nn.one_hot(jnp.argmax(carry.learner.q, axis=-1), carry.learner.q.shape[-1])
            return carry, policy_evaluation(mdp, greedy).v @ mdp.initial

        return jax.lax.scan(chunk, train.init(key), None, train.num_chunks)[1]

    start = time.perf_counter()
    values = np.asarray(jax.jit(jax.vmap(run))(jnp.stack([jax.random.PRNGKey(s) for s in range(seeds)])))
    return train.step(np.arange(1, train.num_chunks + 1)), values, time.perf_counter() - start


def _optimal_from(steps, reached) -> int | None:
    """The first step from which ``reached`` holds to the end; None if it does not hold at the end."""
    if not reached[-1]:
        return None
    misses = np.flatnonzero(~reached)
    return int(steps[misses[-1] + 1]) if misses.size else int(steps[0])


def _steps(steps: list) -> str:
    return ", ".join("never" if s is None else f"{s:,}" for s in steps)


def _median(steps: list) -> str:
    return "—" if None in steps else f"{np.median(steps):,.0f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=common.SEEDS)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mdp = fnrl.envs.make(ENV).unwrapped.mdp
    optimal = float(value_iteration(mdp).v @ mdp.initial)

    rows, curves = [], {}
    for variant in VARIANTS:
        steps, values, seconds = greedy_values(variant, args.seeds)
        reached = values >= optimal - 1e-5
        firsts = [int(steps[np.argmax(r)]) if r.any() else None for r in reached]
        stays = [_optimal_from(steps, r) for r in reached]
        print(f"{variant.label}: first optimal at {firsts}, from then on at {stays} ({seconds:.0f} s)", flush=True)
        rows.append("| " + " | ".join([variant.label, _steps(firsts), _median(firsts), _steps(stays), _median(stays),
                                       f"{values[:, -1].mean():.4f}", f"{seconds:.0f}"]) + " |")
        curves[variant.label] = {"steps": steps.tolist(), "values": values.tolist(), "first_optimal": firsts,
                                 "optimal_from": stays}

    seeds = args.seeds
    lines = ["# Dyna-Q on the Dyna maze: real steps to the optimal greedy policy", "",
             f"`python experiments/dyna_q.py{'' if seeds == common.SEEDS else f' --seeds {seeds}'}`", "",
             f"`{ENV}` (Sutton & Barto 2018, Fig. 8.2; deterministic, γ = 0.95): V*(start) = γ¹³ = {optimal:.4f} "
             f"(value iteration); the next best path, 16 steps, is worth γ¹⁵ = {0.95 ** 15:.4f}. "
             f"{seeds} seeds per row (`jax.random.PRNGKey(0..{seeds - 1})`) in one vmapped program on "
             f"{jax.devices()[0].platform.upper()}, {STEPS:,} real steps, α = ε = 0.1. After every 50 real steps, "
             "the exact value V^π(start) of the greedy policy (argmax of Q, ties to the lowest action). "
             "\"First step optimal\": the first such point with V^π(start) = V* (to 1e-5); "
             "\"optimal from then on\": the first point after which it stays so to the end.", "",
             "| K planning steps, Q₀ | first step optimal, per seed | median | optimal from then on, per seed | "
             f"median | mean V^π(start) at {STEPS:,} | wall s (compile incl.) |",
             "|---|---|---|---|---|---|---|", *rows, "",
             f"\"never\": not within {STEPS:,} steps; a median only where every seed got there.", "",
             "Each row is the command-line run (for S = 0..4; its evaluations are episodes, not the exact value):", ""]
    lines += [f"- {v.label}: `{v.shell(1).replace('--seeds 1', '--seed S')}`" for v in VARIANTS]
    lines += ["", "Configurations (`dataclasses.asdict`):", ""]
    lines += [f"- {v.label}: `{dataclasses.asdict(v.config())}`" for v in VARIANTS]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "curves.json").write_text(json.dumps({"optimal": optimal, **curves}))
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(Q_INITS), figsize=(11, 4), sharey=True)
    for ax, q in zip(axes, Q_INITS):
        for variant in VARIANTS:
            if not variant.label.endswith(q):
                continue
            values = np.array(curves[variant.label]["values"])
            steps = curves[variant.label]["steps"]
            ax.plot(steps, values.mean(0), label=variant.label.split(",")[0])
            ax.fill_between(steps, values.min(0), values.max(0), alpha=0.15)
        ax.axhline(optimal, color="grey", linestyle="--", linewidth=1, label="V* = γ¹³")
        ax.set(xlabel="real environment steps", title=f"Q₀ = {q}", xscale="log")
        ax.legend(loc="lower right")
    axes[0].set_ylabel("greedy policy's exact V^π(start)")
    fig.suptitle(f"Dyna-Q on the Dyna maze: {seeds} seeds, mean (line) and min–max (band)")
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
