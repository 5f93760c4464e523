"""Planning with the true model: MPC on pendulum and cart-pole, MCTS against value iteration.

    python experiments/planning.py [--seeds 5] [--parts pendulum,budget,cartpole,tabular]

Every planner plans with the environment itself as its model (``fnrl.planning``; no learning):

- ``pendulum``: random shooting, CEM and MPPI as MPC with warm starts, their presets
  (``fnrl/presets.yaml``), ``--seeds`` seeds of 4 episodes; the same runs, number for number,
  as ``fnrl plan NAME --env pendulum --episodes 4 --seed S``.
- ``budget``: random shooting against CEM (and MPPI) at equal numbers of model steps per
  action on pendulum, 3 seeds of 4 episodes per point.
- ``cartpole``: MCTS (mctx, random-rollout leaf values) as ``fnrl plan mcts --env cartpole
  --episodes 8 --seed S``, and how the leaf values matter (one, 8 or 32 rollouts; zero values),
  3 seeds of 8 episodes each.
- ``tabular``: on ``tabular/gridworld`` and ``tabular/chain``, deterministic and with their
  default slip, one search from every non-terminal state per seed: how often the searched
  action is optimal (value iteration's Q*, ties counted as optimal).

Writes ``table.md``, ``budget.png``, ``mcts.png`` and ``results.json`` into
``experiments/results/planning/``. A part not run keeps its earlier results in results.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import fnrl.envs
from fnrl import planning, presets
from fnrl.cli import cpu_scheduler_workaround
from fnrl.envs.tabular import value_iteration

OUT = pathlib.Path(__file__).resolve().parent / "results" / "planning"
PARTS = ("pendulum", "budget", "cartpole", "tabular")
PENDULUM_EPISODES, CARTPOLE_EPISODES = 4, 8
ABLATION_SEEDS = (0, 1, 2)
BUDGET_POPULATIONS = (20, 50, 200, 800)  # CEM's samples per iteration (5 iterations)
LEAF_VALUES = {  # label -> changes to MCTS's cart-pole preset
    "1 rollout of 25 steps": {"num_rollouts": 1},
    "8 rollouts (the default)": {"num_rollouts": 8},
    "32 rollouts (the preset)": {},
    "zero values, 256 simulations": {"rollout_steps": 0, "num_simulations": 256},
}
TABULAR = ("tabular/gridworld(slip=0.0)", "tabular/gridworld", "tabular/chain(slip=0.0)", "tabular/chain")


def episodes(env_name: str, planner: planning.Planner, seeds, num_episodes: int) -> dict:
    """:func:`fnrl.planning.run_mpc` from ``PRNGKey(seed)`` for each seed (one compiled program,
    called per seed, as ``fnrl plan`` calls it): per-seed returns and seconds."""
    env = fnrl.envs.make(env_name)
    start = time.perf_counter()
    run = jax.jit(functools.partial(planning.run_mpc, env, planner, num_episodes=num_episodes))
    returns, seconds = [], []
    for seed in seeds:
        returns.append(np.asarray(run(jax.random.PRNGKey(seed)).returns, np.float64).tolist())
        seconds.append(time.perf_counter() - start)  # the first includes compilation
        start = time.perf_counter()
    means = [float(np.mean(r)) for r in returns]
    return {"model_steps": planner.model_steps, "returns": returns, "seed_means": means,
            "mean": float(np.mean(means)), "std": float(np.std(means)), "worst": float(np.min(returns)),
            "seconds": seconds, "config": dataclasses.asdict(planner.config)}


def agreement(env_name: str, planner: planning.Planner, seeds) -> dict:
    """One search from every non-terminal state of a tabular MDP per seed: the fraction whose
    action is optimal (Q*(s, a) within 1e-6 · (1 + max|Q*|) of max_a Q*(s, a))."""
    env = fnrl.envs.make(env_name)
    q = np.asarray(value_iteration(env.mdp).q)
    optimal = q >= q.max(1, keepdims=True) - 1e-6 * (1 + np.abs(q).max())
    states = np.flatnonzero(~np.asarray(env.mdp.terminal))
    from_obs = planning.observed_state(env)

    def act(s, key):
        state_key, plan_key = jax.random.split(key)
        state = from_obs(jax.nn.one_hot(s, q.shape[0]), state_key)
        return planner.plan(env, state, planner.init(env.spec), plan_key).action

    search = jax.jit(jax.vmap(act))
    start = time.perf_counter()
    rates, wrong = [], []
    for seed in seeds:
        actions = np.asarray(search(jnp.asarray(states), jax.random.split(jax.random.PRNGKey(seed), len(states))))
        hits = optimal[states, actions]
        rates.append(float(hits.mean()))
        wrong.append(states[~hits].tolist())
    return {"states": len(states), "rates": rates, "mean": float(np.mean(rates)), "std": float(np.std(rates)),
            "wrong_states": wrong, "seconds": time.perf_counter() - start, "model_steps": planner.model_steps}


def run_pendulum(seeds) -> dict:
    results = {}
    for name in ("random_shooting", "cem", "mppi"):
        results[name] = episodes("pendulum", planning.make(name, presets.config(name, "pendulum")), seeds,
                                 PENDULUM_EPISODES)
        r = results[name]
        print(f"pendulum {name}: {r['mean']:.1f} ± {r['std']:.1f} over seeds ({sum(r['seconds']):.0f} s)", flush=True)
    return results


def run_budget() -> dict:
    """Equal model steps per action: CEM with P samples × 5 iterations, random shooting with 5P
    sequences, MPPI with 5P samples × 1 iteration; the pendulum presets' horizon and discount."""
    results = {name: [] for name in ("random_shooting", "cem", "mppi")}
    for population in BUDGET_POPULATIONS:
        configs = {"random_shooting": {"population": 5 * population},
                   "cem": {"population": population, "elites": max(population // 10, 1)},
                   "mppi": {"population": 5 * population}}
        for name, changes in configs.items():
            planner = planning.make(name, presets.config(name, "pendulum", **changes))
            results[name].append(episodes("pendulum", planner, ABLATION_SEEDS, PENDULUM_EPISODES))
            r = results[name][-1]
            print(f"budget {r['model_steps']:,} {name}: {r['mean']:.1f} ± {r['std']:.1f} ({sum(r['seconds']):.0f} s)",
                  flush=True)
    return results


def run_cartpole(seeds) -> dict:
    results = {"preset": episodes("cartpole", planning.make("mcts", presets.config("mcts", "cartpole")), seeds,
                                  CARTPOLE_EPISODES), "leaf_values": {}}
    r = results["preset"]
    print(f"cartpole mcts: {r['mean']:.1f} ± {r['std']:.1f} ({sum(r['seconds']):.0f} s)", flush=True)
    for label, changes in LEAF_VALUES.items():
        planner = planning.make("mcts", presets.config("mcts", "cartpole", **changes))
        results["leaf_values"][label] = r = episodes("cartpole", planner, ABLATION_SEEDS, CARTPOLE_EPISODES)
        print(f"cartpole mcts, {label}: {r['mean']:.1f} ± {r['std']:.1f} ({sum(r['seconds']):.0f} s)", flush=True)
    return results


def run_tabular(seeds) -> dict:
    results = {}
    for name in TABULAR:
        results[name] = r = agreement(name, planning.make("mcts", presets.config("mcts", name)), seeds)
        print(f"{name}: agreement {r['mean']:.3f} ± {r['std']:.3f} ({r['seconds']:.0f} s)", flush=True)
    return results


# ---------------------------------------------------------------------------------- writing

def _seconds(r: dict) -> str:
    rest = r["seconds"][1:]
    return f"{r['seconds'][0]:.0f}" + (f" / {np.mean(rest):.0f}" if rest else "")


def write_table(results: dict) -> str:
    lines = ["# Planning with the true model", "",
             "`python experiments/planning.py` (every part; `--parts` for some). Every planner plans with the",
             "environment itself as its model, replanning at every step (MPC); nothing is learned. Model steps",
             "per action: the `model.step` calls one plan makes. Seconds: the first seed's run, compilation",
             "included / the mean of the others, on a 2-core CPU shared with other jobs (indicative only).", ""]
    if "pendulum" in results:
        p = results["pendulum"]
        seeds = len(next(iter(p.values()))["seed_means"])
        lines += [f"## Pendulum: MPC with warm starts ({seeds} seeds × {PENDULUM_EPISODES} episodes of 200 steps)", "",
                  "Each row is `fnrl plan NAME --env pendulum --episodes 4 --seed S` for S = 0..4 with the presets",
                  "(horizon 40, γ = 0.98; CEM 200 samples × 5 iterations, 20 elites; random shooting 1000",
                  "sequences; MPPI 500 samples, λ = 0.3). Return: mean over seeds of each seed's mean episode",
                  "return ± its std over seeds.", "",
                  "| planner | model steps / action | mean return | worst episode | per seed | seconds |",
                  "|---|---|---|---|---|---|"]
        for name, r in p.items():
            lines.append(f"| {name} | {r['model_steps']:,} | {r['mean']:.1f} ± {r['std']:.1f} | {r['worst']:.1f} | "
                         f"{', '.join(f'{m:.1f}' for m in r['seed_means'])} | {_seconds(r)} |")
        lines.append("")
    if "budget" in results:
        b = results["budget"]
        lines += [f"## Random shooting against CEM at equal model steps (pendulum, seeds {', '.join(map(str, ABLATION_SEEDS))}"
                  f" × {PENDULUM_EPISODES} episodes)", "",
                  "CEM: P samples × 5 iterations (P/10 elites); random shooting: 5P sequences; MPPI: 5P samples ×",
                  "1 iteration; horizon 40, γ = 0.98 for all. Mean return ± std over seeds (`budget.png`).", "",
                  "| model steps / action | random shooting | CEM | MPPI |", "|---|---|---|---|"]
        for i in range(len(BUDGET_POPULATIONS)):
            row = [b[name][i] for name in ("random_shooting", "cem", "mppi")]
            lines.append(f"| {row[0]['model_steps']:,} | " + " | ".join(f"{r['mean']:.1f} ± {r['std']:.1f}" for r in row)
                         + " |")
        lines.append("")
    if "cartpole" in results:
        c = results["cartpole"]
        r = c["preset"]
        lengths = [x for seed in r["returns"] for x in seed]
        lines += [f"## Cart-pole: MCTS ({len(r['seed_means'])} seeds × {CARTPOLE_EPISODES} episodes of at most 500 steps)",
                  "", "`fnrl plan mcts --env cartpole --episodes 8 --seed S`: mctx's PUCT search, 64 simulations, each",
                  "new leaf valued by the mean return of 32 random rollouts of 25 steps, γ = 0.99.", "",
                  "| model steps / action | mean return | episodes at 500 | per seed | seconds |", "|---|---|---|---|---|",
                  f"| {r['model_steps']:,} | {r['mean']:.1f} ± {r['std']:.1f} | {sum(x == 500 for x in lengths)} of "
                  f"{len(lengths)} | {', '.join(f'{m:.1f}' for m in r['seed_means'])} | {_seconds(r)} |", "",
                  f"Leaf values (seeds {', '.join(map(str, ABLATION_SEEDS))} × {CARTPOLE_EPISODES} episodes; the preset"
                  " otherwise):", "",
                  "| leaf value | model steps / action | mean return | episodes at 500 | seconds |",
                  "|---|---|---|---|---|"]
        for label, r in c["leaf_values"].items():
            lengths = [x for seed in r["returns"] for x in seed]
            lines.append(f"| {label} | {r['model_steps']:,} | {r['mean']:.1f} ± {r['std']:.1f} | "
                         f"{sum(x == 500 for x in lengths)} of {len(lengths)} | {_seconds(r)} |")
        lines.append("")
    if "tabular" in results:
        t = results["tabular"]
        seeds = len(next(iter(t.values()))["rates"])
        lines += [f"## Tabular MDPs: the search's action against value iteration's ({seeds} seeds)", "",
                  "One MCTS from every non-terminal state per seed (the `mcts` presets: the MDP's discount, 256",
                  "simulations, 8 rollouts of 50 steps, exploration 5). Agreement: the fraction of searches whose",
                  "action is optimal under Q* (ties count). Stochastic MDPs are searched on one sample of each",
                  "transition (the model's RNG key lives in its state, so a tree edge is one sampled outcome).", "",
                  "| environment | states | agreement | per seed | states searched wrongly (per seed) | seconds |",
                  "|---|---|---|---|---|---|"]
        for name, r in t.items():
            lines.append(f"| `{name}` | {r['states']} | {r['mean']:.3f} ± {r['std']:.3f} | "
                         f"{', '.join(f'{x:.2f}' for x in r['rates'])} | {'; '.join(str(w) for w in r['wrong_states'])} "
                         f"| {r['seconds']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if "budget" in results:
        figure = Figure(figsize=(6, 4))
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        for name, rows in results["budget"].items():
            x = [r["model_steps"] for r in rows]
            ax.errorbar(x, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], marker="o", capsize=3, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("model steps per action")
        ax.set_ylabel("mean episode return")
        ax.set_title("pendulum, true model: return at equal planning budgets")
        ax.legend()
        ax.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(OUT / "budget.png", dpi=100)
    if "cartpole" in results or "tabular" in results:
        figure = Figure(figsize=(10, 4))
        FigureCanvasAgg(figure)
        if "cartpole" in results:
            ax = figure.add_subplot(1, 2, 1)
            rows = results["cartpole"]["leaf_values"]
            ax.barh(list(rows), [r["mean"] for r in rows.values()], xerr=[r["std"] for r in rows.values()], capsize=3)
            ax.set_xlabel("mean episode return (500 = solved)")
            ax.set_title("cart-pole MCTS: leaf values")
            ax.invert_yaxis()
        if "tabular" in results:
            ax = figure.add_subplot(1, 2, 2)
            rows = results["tabular"]
            ax.barh([n.removeprefix("tabular/") for n in rows], [r["mean"] for r in rows.values()],
                    xerr=[r["std"] for r in rows.values()], capsize=3)
            ax.set_xlim(0, 1)
            ax.set_xlabel("agreement with value iteration's optimal actions")
            ax.set_title("tabular MCTS")
            ax.invert_yaxis()
        figure.tight_layout()
        figure.savefig(OUT / "mcts.png", dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 of the pendulum, cart-pole and tabular rows")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; accepted: {', '.join(PARTS)}")
    seeds = list(range(args.seeds))
    OUT.mkdir(parents=True, exist_ok=True)
    saved = OUT / "results.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    runs = {"pendulum": lambda: run_pendulum(seeds), "budget": run_budget, "cartpole": lambda: run_cartpole(seeds),
            "tabular": lambda: run_tabular(seeds)}
    for part in parts:
        results[part] = runs[part]()
        saved.write_text(json.dumps(results, indent=1))
    results = {part: results[part] for part in PARTS if part in results}
    table = write_table(results)
    (OUT / "table.md").write_text(table)
    plot(results)
    print(table)


if __name__ == "__main__":
    cpu_scheduler_workaround()
    main()
