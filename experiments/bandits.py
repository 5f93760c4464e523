"""Bandit algorithms on Bernoulli arms against the Lai–Robbins lower bound.

    python experiments/bandits.py [--steps 100000] [--runs 1000] [--chunk 100]

Every algorithm of ``fnrl.bandits`` plays ``bandit/bernoulli`` with means (0.9, 0.8, 0.7, 0.5)
for ``--steps`` pulls, ``--runs`` independent runs vmapped ``--chunk`` at a time (one compiled
program per algorithm; chunks keep the [T, runs] traces small). The expected regret curve
R(t) = Σ_{s≤t} (μ* − μ_{a_s}) of every run is kept at log-spaced t; ``table.md`` gives the mean
final regret ± one standard error over runs and its ratio to the Lai–Robbins bound
Σ_a Δ_a / kl(μ_a, μ*) · ln T, and ``curve.png`` the mean curves ± 2 standard errors on a log-time
axis with the bound. Writes into ``experiments/results/bandits/``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import fnrl.envs
from fnrl import bandits

MEANS = (0.9, 0.8, 0.7, 0.5)
EPSILON = 0.1
ALGORITHMS = {
    f"ε-greedy (ε = {EPSILON})": bandits.epsilon_greedy(EPSILON),
    "UCB1": bandits.ucb1(),
    "KL-UCB (c = 0)": bandits.kl_ucb(),
    "Thompson, Beta-Bernoulli": bandits.bernoulli_thompson(),
    "Thompson, Gaussian (σ = 0.5, N(0, 1) prior)": bandits.gaussian_thompson(noise_std=0.5),
}
OUT = pathlib.Path(__file__).resolve().parent / "results" / "bandits"


def checkpoints(steps: int, num: int = 120) -> np.ndarray:
    """Log-spaced 1-based times t in [1, steps], always including ``steps // 10`` and ``steps``."""
    return np.union1d(np.geomspace(1, steps, num).round().astype(int), [max(steps // 10, 1), steps])


def regret_at(policy, env, steps: int, runs: int, chunk: int, times: np.ndarray) -> np.ndarray:
    """R(t) at ``times`` for ``runs`` runs, [runs, len(times)], vmapped ``chunk`` runs at a time."""
    index = jnp.asarray(times - 1)

    @jax.jit
    def chunk_regret(key):
        trace = bandits.run_many(policy, env, key, steps, chunk)
        return bandits.cumulative_regret(env.means, trace.arms)[index].T  # [chunk, len(times)]

    keys = jax.random.split(jax.random.PRNGKey(0), -(-runs // chunk))
    return np.concatenate([np.asarray(chunk_regret(k)) for k in keys])[:runs]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=100)
    args = parser.parse_args()

    env = fnrl.envs.make("bandit/bernoulli", means=MEANS)
    times = checkpoints(args.steps)
    constant = float(bandits.lai_robbins_constant(env.means))
    bound = constant * np.log(times)
    results = {}
    for label, policy in ALGORITHMS.items():
        start = time.perf_counter()
        regret = regret_at(policy, env, args.steps, args.runs, args.chunk, times)
        wall = time.perf_counter() - start
        results[label] = dict(regret=regret, wall_s=wall)
        print(f"{label}: R({args.steps}) = {regret[:, -1].mean():.1f} ± {regret[:, -1].std(ddof=1) / np.sqrt(args.runs):.1f}"
              f" ({wall:.0f} s)", flush=True)

    OUT.mkdir(parents=True, exist_ok=True)
    write_table(results, times, bound, constant, args)
    plot(results, times, bound)
    with open(OUT / "curves.json", "w") as f:
        json.dump({"means": MEANS, "steps": args.steps, "runs": args.runs, "times": times.tolist(),
                   "lai_robbins_constant": constant,
                   "mean_regret": {k: v["regret"].mean(0).tolist() for k, v in results.items()},
                   "stderr": {k: (v["regret"].std(0, ddof=1) / np.sqrt(args.runs)).tolist() for k, v in results.items()},
                   "wall_s": {k: v["wall_s"] for k, v in results.items()}}, f)


def write_table(results, times, bound, constant, args):
    T = args.steps
    mid = int(np.searchsorted(times, max(T // 10, 1)))  # t = T/10, for the growth over the last decade
    lines = [
        f"# Bandits: Bernoulli arms {MEANS}, T = {T:,}, {args.runs} runs per algorithm",
        "",
        f"`python experiments/bandits.py --steps {T} --runs {args.runs}`. Expected (pseudo-)regret"
        " R(T) = Σ_t (μ* − μ_{a_t}), mean over runs ± one standard error. Lai–Robbins (1985):"
        f" Σ_a Δ_a / kl(μ_a, μ*) = {constant:.3f}, so the bound at T is {constant:.3f} · ln T ="
        f" {bound[-1]:.1f}. The bound is asymptotic — liminf_(T→∞) R(T) / ln T ≥ that constant for"
        " every consistent algorithm — so at a finite T a regret may lie above or below"
        " constant · ln T (the lower-order terms are not negligible yet); the last column"
        " compares the growth over the last decade, R(T) − R(T/10), with the bound's"
        f" {constant:.3f} · (ln T − ln(T/10)) = {bound[-1] - bound[mid]:.1f}.",
        "",
        f"| algorithm | R({times[mid]:,}) | R({T:,}) | R(T) / bound | (R(T) − R(T/10)) / bound's growth | wall (s) |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        regret = r["regret"]
        final = regret[:, -1]
        se = final.std(ddof=1) / np.sqrt(len(final))
        mid_mean = regret[:, mid].mean()
        growth = (final.mean() - mid_mean) / (bound[-1] - bound[mid])
        lines.append(f"| {label} | {mid_mean:.1f} | {final.mean():.1f} ± {se:.1f} | {final.mean() / bound[-1]:.2f}"
                     f" | {growth:.2f} | {r['wall_s']:.0f} |")
    chunks = -(-args.runs // args.chunk)
    lines += ["", f"Wall time per algorithm, compilation included, the runs vmapped {min(args.chunk, args.runs)} at a"
              f" time ({chunks} program call{'s' if chunks > 1 else ''}), on a 2-core CPU shared with other jobs.", ""]
    (OUT / "table.md").write_text("\n".join(lines))
    print("\n".join(lines))


def plot(results, times, bound):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = len(next(iter(results.values()))["regret"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, log_y in zip(axes, (False, True)):
        for label, r in results.items():
            regret = r["regret"]
            mean, se = regret.mean(0), regret.std(0, ddof=1) / np.sqrt(len(regret))
            line, = ax.plot(times, mean, label=label)
            ax.fill_between(times, mean - 2 * se, mean + 2 * se, color=line.get_color(), alpha=0.25)
        ax.plot(times, bound, "k--", label="Lai–Robbins bound Σ Δ/kl · ln t")
        ax.set_xscale("log")
        ax.set_xlim(10, times[-1])
        ax.set_xlabel("t (pulls)")
        ax.grid(True, which="both", alpha=0.3)
        if log_y:
            ax.set_yscale("log")
            ax.set_ylim(1, None)
            ax.set_title("log–log: every algorithm")
        else:
            ucb1 = results["UCB1"]["regret"].mean(0)
            ax.set_ylim(0, 1.15 * ucb1[-1])
            ax.set_ylabel("expected regret R(t)")
            ax.set_title("log t, linear regret (ε-greedy leaves the top)")
            ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Bernoulli arms {MEANS}: mean ± 2 standard errors over {runs} runs")
    fig.tight_layout()
    fig.savefig(OUT / "curve.png", dpi=120)


if __name__ == "__main__":
    main()
