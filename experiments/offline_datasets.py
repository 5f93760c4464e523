"""D4RL-style datasets for cart-pole and pendulum, each made by `fnrl` commands.

For each task: an expert run and a medium run (a policy at roughly a third to half of the
expert's normalised score, D4RL's "medium"), then the five flavours as Minari datasets:

- random:        `fnrl collect --env ENV --policy random --steps N`
- medium:        `fnrl collect --policy MEDIUM_RUN --noise --steps N` (the policy's own samples / noise)
- expert:        `fnrl collect --policy EXPERT_RUN --noise --steps N`
- medium-replay: `fnrl collect --replay MEDIUM_RUN` (every transition the medium run's training kept)
- medium-expert: `fnrl collect --mix MEDIUM EXPERT`

    python experiments/offline_datasets.py                  # both tasks; writes data/offline/ and runs/offline/
    python experiments/offline_datasets.py --tasks pendulum

Pendulum's runs are SAC's (its preset): the expert after 40k steps, the medium run after 10k,
where SAC's curve on seed 0 passes through the medium band (−1035 at 8.8k steps, −387 at 10.8k).
On cart-pole the expert is PPO's (its preset, 200k steps: 500) and the medium run is DQN with
1-step targets for 100k steps (the replay flavour needs one-step transitions, and `--replay`
refuses the preset's 3-step ones; so trained, DQN reached 236 — a medium policy). The runs'
greedy returns and each dataset's own normalised score go into `data/offline/summary.json`.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import fnrl  # noqa: E402  (first: the CPU scheduler workaround, before JAX starts)

from fnrl import datasets  # noqa: E402

STEPS = 50_000  # transitions per collected flavour
TASKS = {  # task: {run: (algo, steps, extra --set)}
    "pendulum": {"expert": ("sac", 40_000, []), "medium": ("sac", 10_000, [])},
    "cartpole": {"expert": ("ppo", 200_000, []), "medium": ("dqn", 100_000, ["n_step=1"])},
}
FLAVOURS = ("random", "medium", "expert", "medium-replay", "medium-expert")


def make(task: str, data_root: str, run_root: str) -> dict:
    runs = {}
    for label, (algo, steps, sets) in TASKS[task].items():
        out = os.path.join(run_root, f"{task}-{label}")
        if not os.path.exists(os.path.join(out, "summary.json")):
            fnrl(["train", algo, "--env", task, "--steps", str(steps), "--seed", "0", "--out", out]
                 + [a for s in sets for a in ("--set", s)])
        runs[label] = json.load(open(os.path.join(out, "summary.json")))["episode_return"]
    paths = {f: os.path.join(data_root, f"{task}-{f}") for f in FLAVOURS}
    commands = {
        "random": ["collect", "--env", task, "--policy", "random", "--steps", str(STEPS)],
        "medium": ["collect", "--policy", os.path.join(run_root, f"{task}-medium"), "--noise", "--steps", str(STEPS)],
        "expert": ["collect", "--policy", os.path.join(run_root, f"{task}-expert"), "--noise", "--steps", str(STEPS)],
        "medium-replay": ["collect", "--replay", os.path.join(run_root, f"{task}-medium")],
        "medium-expert": ["collect", "--mix", paths["medium"], paths["expert"]],
    }
    summary = {"runs": runs, "datasets": {}}
    low, high = datasets.REFERENCE_SCORES[task]
    for flavour in FLAVOURS:
        if not os.path.exists(os.path.join(paths[flavour], "data")):
            fnrl(commands[flavour] + ["--out", paths[flavour]])
        d = datasets.load(paths[flavour])
        returns = d.episode_returns()[:-1] if d.num_episodes > 1 else d.episode_returns()
        summary["datasets"][flavour] = {
            "path": paths[flavour], "steps": d.size, "episodes": d.num_episodes,
            "mean_episode_return": float(returns.mean()),
            "normalized_score": float(100 * (returns.mean() - low) / (high - low)),
            "command": "fnrl " + " ".join(commands[flavour] + ["--out", paths[flavour]])}
    summary["runs_normalized"] = {k: float(100 * (v - low) / (high - low)) for k, v in runs.items()}
    return summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--data", default="data/offline")
    parser.add_argument("--runs", default="runs/offline")
    args = parser.parse_args()
    os.makedirs(args.data, exist_ok=True)
    path = os.path.join(args.data, "summary.json")
    summary = json.load(open(path)) if os.path.exists(path) else {}
    for task in args.tasks:
        summary[task] = make(task, args.data, args.runs)
        with open(path, "w") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps(summary, indent=1))
