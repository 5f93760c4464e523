"""Deep Sea: episodes until the greedy policy finds the treasure, against the size N, for DQN
with ε-greedy, bootstrapped DQN with and without randomised priors, and DQN + RND.

    python experiments/exploration_deepsea.py [--sizes 5 10 15 20] [--episodes 10000] [--seeds 3] [--agents ...]

Every (agent, N) is the command-line run ``fnrl train ALGO --env deepsea/N --steps S --seeds K``
(the ``deepsea/*`` presets: bsuite's agents' settings) for bsuite's budget of 10,000 episodes
(S = 10,000 · N steps: a Deep Sea episode is N steps). A run *solves* deepsea/N at the first
evaluation from which the greedy policy collects the treasure (return 0.99) at every later
evaluation; its episodes-to-solve is that evaluation's step / N. bsuite's own criterion (the
first episode at which fewer than 90% of the episodes so far missed the treasure) needs every
training episode's outcome, which fnrl's loop averages per evaluation period; the greedy one is
the stricter of the two for an agent that keeps exploring. Dithering (ε-greedy) needs about 2^N
episodes; deep exploration does not. Writes ``experiments/results/exploration_deepsea/``: ``runs/`` (one file per agent and N, written as
each run ends, so agents can run in separate processes), ``table.md`` and ``curve.png`` over all
the runs there.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from common import Variant, run

import numpy as np

AGENTS = {
    "DQN, ε-greedy (ε = 0.05)": ("dqn", {}),
    "bootstrapped DQN + prior": ("bootdqn", {}),
    "bootstrapped DQN, no prior": ("bootdqn", {"prior_scale": 0.0}),
    "DQN + RND (β = 0.1)": ("dqn", {"bonus": "rnd", "bonus_scale": 0.1}),
}
OUT = "experiments/results/exploration_deepsea"
TREASURE = 0.5  # a greedy return above this collected the treasure (the optimum is 0.99)


def solved_at(steps: np.ndarray, returns: np.ndarray) -> float:
    """The first step from which ``returns`` stay above :data:`TREASURE` (NaN: never)."""
    good = returns > TREASURE
    tail = np.flip(np.logical_and.accumulate(np.flip(good)))  # good from here to the end
    return float(steps[np.argmax(tail)]) if tail[-1] else float("nan")


def slug(label: str, n: int) -> str:
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in label).strip("_") + f"_N{n}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 15, 20])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--agents", nargs="+", default=list(AGENTS))
    parser.add_argument("--report-only", action="store_true", help="train nothing; report the runs in OUT/runs")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)

    # One file per (agent, N) in OUT/runs/, written as each run ends: agents can run in separate
    # processes (--agents) and the report (--report-only) collects whatever has finished.
    runs = os.path.join(args.out, "runs")
    os.makedirs(runs, exist_ok=True)
    for label in [] if args.report_only else args.agents:
        algo, changes = AGENTS[label]
        for n in args.sizes:
            result = run(Variant(label, algo, f"deepsea/{n}", args.episodes * n, changes), args.seeds)
            episodes = [solved_at(result.steps, r) / n for r in result.returns]
            print(f"{label}, N = {n}: episodes to solve {episodes}", flush=True)
            with open(os.path.join(runs, slug(label, n) + ".json"), "w") as f:
                json.dump({"agent": label, "size": n, "episodes": args.episodes, "seeds": args.seeds,
                           "episodes_to_solve": episodes, "wall_s": result.wall_s,
                           "command": result.variant.shell(args.seeds)}, f)
    results = {}
    for name in sorted(os.listdir(runs)):
        with open(os.path.join(runs, name)) as f:
            r = json.load(f)
        results.setdefault(r["agent"], {})[r["size"]] = r
    results = {label: results[label] for label in AGENTS if label in results}
    write_table(results, args, "python " + " ".join(sys.argv))
    plot(results, args)


def write_table(results, args, command):
    sizes = sorted({n for by_size in results.values() for n in by_size})
    lines = [f"# Deep Sea: episodes until the greedy policy solves deepsea/N ({args.seeds} seeds, "
             f"budget {args.episodes:,} episodes)", "", f"`{command}`", "",
             "Median over seeds of the episodes until the greedy policy collects the treasure at every later "
             "evaluation (in parentheses: seeds that solved it within the budget); — : no seed did. "
             "Largest N solved: the largest size at which every seed solved it.", "",
             "| agent | " + " | ".join(f"N = {n}" for n in sizes) + " | largest N solved |",
             "|---|" + "---|" * (len(sizes) + 1)]
    for label, by_size in results.items():
        cells, largest = [], "none"
        for n in sizes:
            if n not in by_size:
                cells.append("not run")
                continue
            episodes = np.array(by_size[n]["episodes_to_solve"])
            ok = np.isfinite(episodes)
            cells.append(f"{np.median(episodes[ok]):,.0f} ({ok.sum()}/{len(ok)})" if ok.any() else f"— (0/{len(ok)})")
            if ok.all():
                largest = str(n)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {largest} |")
    lines += ["", "Each cell is the command-line run:", ""]
    lines += [f"- {label}, N = {n}: `{by_size[n]['command']}` ({by_size[n]['wall_s']:.0f} s)"
              for label, by_size in results.items() for n in sorted(by_size)]
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(results, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, by_size in results.items():
        sizes = np.array(sorted(by_size))
        episodes = [np.array(by_size[n]["episodes_to_solve"]) for n in sizes]
        median = np.array([np.median(e[np.isfinite(e)]) if np.isfinite(e).any() else np.nan for e in episodes])
        line, = ax.plot(sizes, median, "o-", label=label)
        for n, e in zip(sizes, episodes):
            ax.plot(np.full(np.isfinite(e).sum(), n), e[np.isfinite(e)], ".", color=line.get_color(), alpha=0.4)
    sizes = np.array(sorted({n for by_size in results.values() for n in by_size}))
    ax.plot(sizes, 2.0 ** sizes, "k--", linewidth=1, label="2^N (dithering)")
    ax.axhline(args.episodes, color="grey", linewidth=1, linestyle=":", label="budget")
    ax.set(yscale="log", xlabel="N", ylabel="episodes to solve",
           title=f"Deep Sea: episodes until the greedy policy solves it\n{args.seeds} seeds (dots), median (line)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "curve.png"), dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
