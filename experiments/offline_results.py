"""Offline RL on the D4RL-style datasets of experiments/offline_datasets.py: D4RL-normalised
scores (0 = uniformly random, 100 = expert) of BC, TD3+BC, AWAC, IQL and CQL, last and best
evaluation as CORL reports them, 5 seeds each.

    python experiments/offline_datasets.py                     # first: the datasets
    python experiments/offline_results.py                      # every task, flavour and algorithm
    python experiments/offline_results.py --tasks pendulum --algos bc iql --flavours medium-replay

Each cell is the command-line run `fnrl train ALGO --dataset data/offline/TASK-FLAVOUR --steps
UPDATES --seeds 5` (the algorithm's defaults, no preset), trained as one vmapped program;
"last" is the seed-mean score at the final evaluation, "best" the best seed-mean over the run's
evaluations (CORL's two numbers), each ± the std over seeds. Writes
experiments/results/offline/{table.md,results.json}.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import SEEDS, Variant, run  # noqa: E402

from fnrl import datasets  # noqa: E402

UPDATES = 20_000
ALGOS = {"bc": "BC", "td3_bc": "TD3+BC", "awac": "AWAC", "iql": "IQL", "cql": "CQL"}
CONTINUOUS_ONLY = {"td3_bc", "awac"}
FLAVOURS = ("random", "medium", "expert", "medium-replay", "medium-expert")
TASKS = ("pendulum", "cartpole")


def cell(algo: str, task: str, flavour: str, data: str, seeds: int, updates: int) -> dict:
    path = os.path.join(data, f"{task}-{flavour}")
    variant = Variant(ALGOS[algo], algo, task, updates, {"dataset": path, "num_evals": 10})
    result = run(variant, seeds)
    scores = datasets.load(path).normalized_score(result.returns)  # [seeds, evals]
    mean = scores.mean(0)
    best = int(mean.argmax())
    return {"algo": algo, "task": task, "flavour": flavour, "command": variant.shell(seeds),
            "last": float(mean[-1]), "last_std": float(scores[:, -1].std()),
            "best": float(mean[best]), "best_std": float(scores[:, best].std()),
            "per_seed_last": scores[:, -1].round(1).tolist(), "wall_s": result.wall_s,
            "steps": result.steps.tolist(), "scores": scores.round(2).tolist()}


def table(results: list[dict], tasks, flavours, algos) -> str:
    lines = ["# Offline RL on D4RL-style datasets", "",
             "`python experiments/offline_datasets.py && python experiments/offline_results.py`", "",
             f"D4RL-normalised score (0 = uniformly random, 100 = expert; references in `fnrl.datasets.REFERENCE_SCORES`), "
             f"mean ± std over {SEEDS} seeds (`jax.random.PRNGKey(0..{SEEDS - 1})`, one vmapped program per cell): "
             "last evaluation / best evaluation (of the seed-mean), each of 16 greedy episodes.", ""]
    by = {(r["task"], r["flavour"], r["algo"]): r for r in results}
    for task in tasks:
        names = [a for a in algos if not (task == "cartpole" and a in CONTINUOUS_ONLY)]
        lines += [f"## {task}", "", "| dataset | " + " | ".join(ALGOS[a] for a in names) + " |",
                  "|---|" + "---|" * len(names)]
        for flavour in flavours:
            row = [flavour]
            for a in names:
                r = by.get((task, flavour, a))
                row.append("" if r is None else f"{r['last']:.1f} ± {r['last_std']:.1f} / {r['best']:.1f}")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["Each cell is `fnrl train ALGO --dataset data/offline/TASK-FLAVOUR --steps N --seeds 5 --set num_evals=10`;",
              "per-seed final scores, the curves and the wall times are in `results.json`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--flavours", nargs="+", default=list(FLAVOURS), choices=FLAVOURS)
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=list(ALGOS))
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--updates", type=int, default=UPDATES)
    parser.add_argument("--data", default="data/offline")
    parser.add_argument("--out", default="experiments/results/offline")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    results = json.load(open(path)) if os.path.exists(path) else []
    for task in args.tasks:
        for flavour in args.flavours:
            for algo in args.algos:
                if task == "cartpole" and algo in CONTINUOUS_ONLY:
                    continue
                results = [r for r in results if (r["task"], r["flavour"], r["algo"]) != (task, flavour, algo)]
                results.append(cell(algo, task, flavour, args.data, args.seeds, args.updates))
                with open(path, "w") as f:
                    json.dump(results, f, indent=1)
                with open(os.path.join(args.out, "table.md"), "w") as f:
                    f.write(table(results, TASKS, FLAVOURS, list(ALGOS)))
    print(table(results, TASKS, FLAVOURS, list(ALGOS)))
