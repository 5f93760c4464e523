"""DAgger against behavioural cloning at equal numbers of expert labels, on pendulum's swing-up.

The expert is a training run (SAC after 40k steps, `experiments/offline_datasets.py`'s pendulum
expert: -129 greedy; trained here first if it is missing). Both learners get the same policy
network ((64, 64), tanh-Gaussian, evaluated at its mode), optimiser and number of updates per label:

- DAgger: one run of `fnrl train dagger --env pendulum --steps 4000 --seeds 5 --set expert=RUN
  --set rollout_length=200 --set num_evals=20`: 20 rounds of one 200-step episode each (the first
  the expert's, then the learner's own, beta_decay = 0), every visited state labelled by the
  expert, 500 BC updates on all labels after each round; evaluated after every round, so its curve
  is return against labels.
- BC: for each budget N, `fnrl collect --policy RUN --steps N` (the expert's greedy episodes: N
  labels on the expert's own states), then `fnrl train bc --dataset D --steps 500 N/200 --seeds 5`
  (DAgger's updates at N labels) with DAgger's network and learning rate.

    python experiments/offline_datasets.py --tasks pendulum   # (optional) the expert run
    python experiments/dagger_pendulum.py                     # ~10 min on a 2-core CPU

Writes experiments/results/dagger_pendulum/{table.md,curves.json,curve.png}.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import SEEDS, Variant, fnrl, run  # noqa: E402
from offline_datasets import TASKS  # noqa: E402

from fnrl import datasets  # noqa: E402

ROUND = 200                       # labels per DAgger round: one pendulum episode
UPDATES_PER_ROUND = 500           # BC updates after each round (DAgger's bc_updates)
BUDGETS = (200, 400, 1000, 2000, 4000)
NETWORK = {"hidden_sizes": [64, 64], "learning_rate": 1e-3, "batch_size": 256}  # DAgger's defaults


def expert_run(root: str) -> str:
    out = os.path.join(root, "pendulum-expert")
    if not os.path.exists(os.path.join(out, "summary.json")):
        algo, steps, _ = TASKS["pendulum"]["expert"]
        fnrl(["train", algo, "--env", "pendulum", "--steps", str(steps), "--seed", "0", "--out", out])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--runs", default="runs/offline", help="where the expert run is (or is trained)")
    parser.add_argument("--data", default="data/offline/dagger", help="where the BC datasets are written")
    parser.add_argument("--out", default="experiments/results/dagger_pendulum")
    args = parser.parse_args()
    expert = expert_run(args.runs)
    rounds = max(BUDGETS) // ROUND
    dagger = run(Variant("DAgger", "dagger", "pendulum", max(BUDGETS), {
        "expert": expert, "rollout_length": ROUND, "bc_updates": UPDATES_PER_ROUND, "num_evals": rounds,
        **NETWORK}), args.seeds)
    bcs = []
    for labels in BUDGETS:
        path = os.path.join(args.data, f"pendulum-expert-{labels}")
        if not os.path.exists(os.path.join(path, "data")):
            fnrl(["collect", "--policy", expert, "--steps", str(labels), "--out", path])
        updates = UPDATES_PER_ROUND * labels // ROUND
        bcs.append(run(Variant(f"BC, {labels} labels", "bc", "pendulum", updates,
                               {"dataset": path, "num_evals": 1, **NETWORK}), args.seeds))
    low, high = datasets.REFERENCE_SCORES["pendulum"]
    expert_return = json.load(open(os.path.join(expert, "summary.json")))["episode_return"]
    report(args.out, dagger, bcs, expert_return, low)


def report(out: str, dagger, bcs, expert_return: float, random_return: float) -> None:
    os.makedirs(out, exist_ok=True)
    labels = [int(s) for s in dagger.steps]
    at = {n: labels.index(n) for n in BUDGETS}
    lines = ["# DAgger against BC at equal numbers of expert labels (pendulum)", "",
             "`python experiments/dagger_pendulum.py`", "",
             f"Return: mean undiscounted return of {dagger.config.eval_episodes} greedy evaluation episodes, "
             f"mean ± std over {len(dagger.returns)} seeds (`jax.random.PRNGKey(0..{len(dagger.returns) - 1})`). "
             f"The expert's greedy return: {expert_return:.1f}; a uniformly random policy's: {random_return:.1f}.", "",
             "| expert labels | BC (expert's own states) | DAgger (the learner's states) |", "|---|---|---|"]
    for n, bc in zip(BUDGETS, bcs):
        d = dagger.returns[:, at[n]]
        lines.append(f"| {n:,} | {bc.returns[:, -1].mean():.1f} ± {bc.returns[:, -1].std():.1f} | "
                     f"{d.mean():.1f} ± {d.std():.1f} |")
    lines += ["", "Commands:", "", f"- DAgger: `{dagger.variant.shell(len(dagger.returns))}`"]
    lines += [f"- {bc.variant.label}: `{bc.variant.shell(len(bc.returns))}`" for bc in bcs]
    lines += ["", "Per-seed returns:", "", "- DAgger at " + "; ".join(
        f"{n:,}: {', '.join(f'{x:.0f}' for x in dagger.returns[:, at[n]])}" for n in BUDGETS)]
    lines += [f"- {bc.variant.label}: {', '.join(f'{x:.0f}' for x in bc.returns[:, -1])}" for bc in bcs]
    lines += ["", f"Wall time (compilation included): DAgger {dagger.wall_s:.0f} s; BC "
              + ", ".join(f"{bc.wall_s:.0f}" for bc in bcs) + " s."]
    table = "\n".join(lines) + "\n"
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(table)
    curves = {"DAgger": {"labels": labels, "returns": dagger.returns.tolist()},
              "BC": {"labels": list(BUDGETS), "returns": [bc.returns[:, -1].tolist() for bc in bcs]},
              "expert": expert_return, "random": random_return}
    with open(os.path.join(out, "curves.json"), "w") as f:
        json.dump(curves, f)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.5, 4))
    bc_returns = np.array(curves["BC"]["returns"])  # [budgets, seeds]
    for name, x, y in (("DAgger", labels, dagger.returns.T), ("BC", list(BUDGETS), bc_returns)):
        mean, std = y.mean(1), y.std(1)
        ax.plot(x, mean, marker="o", markersize=3, label=name)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.axhline(expert_return, color="grey", linestyle="--", linewidth=1, label="expert")
    ax.axhline(random_return, color="grey", linestyle=":", linewidth=1, label="random policy")
    ax.set(xscale="log", xlabel="expert labels", ylabel="mean evaluation return",
           title=f"DAgger vs BC on pendulum\n{len(dagger.returns)} seeds, mean ± std")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curve.png"), dpi=100)
    plt.close(fig)
    print(table)


if __name__ == "__main__":
    main()
