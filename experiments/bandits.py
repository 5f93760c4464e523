"""Bandit algorithms on Bernoulli arms against the Lai–Robbins lower bound.

    python experiments/bandits.py [--steps 100000] [--runs 1000] [--chunk 100]

Every algorithm of ``fnrl.bandits`` plays ``bandit/bernoulli`` with means (0.9, 0.8, 0.7, 0.5)
for ``--steps`` pulls, ``--runs`` independent runs vmapped ``--chunk`` at a time (one compiled
program per algorithm; chunks keep the [T, runs] traces small). The expected regret curve
R(t) = Σ_{s≤t} (μ* − μ_{a_s}) of every run is kept at log-spaced t; ``table.md`` gives the mean
final regret ± one standard error over runs and its ratio to the Lai–Robbins bound
Σ_a Δ_a / kl(μ_a, μ*) · ln T, and ``curve.png`` the mean curves ± 2 standard errors on a log-time
axis with the bound. Writes into ``experiments/results/bandits/``.

This is :func:`fnrl.bandits.compare` and :func:`fnrl.bandits.plot_regret`, what ``fnrl bandit``
runs: the same runs, number for number, come from

    fnrl bandit "epsilon_greedy(epsilon=0.1)" ucb1 kl_ucb thompson "gaussian_thompson(noise_std=0.5)" \
        --env "bandit/bernoulli(means=(0.9, 0.8, 0.7, 0.5))" --steps 100000 --runs 1000 --chunk 100 --seed 0

(the chunk matters: with several chunks it decides each run's key).
"""
from __future__ import annotations

import argparse
import json
import pathlib

import jax
import numpy as np

import fnrl.envs
from fnrl import bandits

MEANS = (0.9, 0.8, 0.7, 0.5)
ENV = f"bandit/bernoulli(means={MEANS})"
EPSILON = 0.1
CHUNK = 100
ALGORITHMS = {  # the table's label -> the algorithm's name in `fnrl bandit` (fnrl.bandits.make)
    f"ε-greedy (ε = {EPSILON})": f"epsilon_greedy(epsilon={EPSILON})",
    "UCB1": "ucb1",
    "KL-UCB (c = 0)": "kl_ucb",
    "Thompson, Beta-Bernoulli": "thompson",
    "Thompson, Gaussian (σ = 0.5, N(0, 1) prior)": "gaussian_thompson(noise_std=0.5)",
}
OUT = pathlib.Path(__file__).resolve().parent / "results" / "bandits"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=CHUNK)
    args = parser.parse_args()

    env = fnrl.envs.make(ENV)
    times = bandits.log_times(args.steps)
    constant = float(bandits.lai_robbins_constant(env.means))
    bound = constant * np.log(times)

    def report(label, result):
        final = result.regret[:, -1]
        print(f"{label}: R({args.steps}) = {final.mean():.1f} ± {final.std(ddof=1) / np.sqrt(args.runs):.1f}"
              f" ({result.wall_s:.0f} s)", flush=True)

    # The same runs as `fnrl bandit <each name> --env ENV --steps S --runs R --chunk C --seed 0`.
    policies = {label: bandits.make(name, env) for label, name in ALGORITHMS.items()}
    results = bandits.compare(policies, env, jax.random.PRNGKey(0), args.steps, args.runs, args.chunk, times,
                              report=report)

    OUT.mkdir(parents=True, exist_ok=True)
    write_table(results, times, bound, constant, args)
    bandits.plot_regret({label: r.regret for label, r in results.items()}, times, bound, OUT / "curve.png",
                        title=f"Bernoulli arms {MEANS}: mean ± 2 standard errors over {args.runs} runs")
    with open(OUT / "curves.json", "w") as f:
        json.dump({"means": MEANS, "steps": args.steps, "runs": args.runs, "times": times.tolist(),
                   "lai_robbins_constant": constant,
                   "mean_regret": {k: v.regret.mean(0).tolist() for k, v in results.items()},
                   "stderr": {k: (v.regret.std(0, ddof=1) / np.sqrt(args.runs)).tolist() for k, v in results.items()},
                   "wall_s": {k: v.wall_s for k, v in results.items()}}, f)


def write_table(results, times, bound, constant, args):
    T = args.steps
    # The chunk decides each run's key once there are several chunks (fnrl.bandits.regret_curves).
    chunk = f" --chunk {min(args.chunk, args.runs)}" if min(args.chunk, args.runs) != min(CHUNK, args.runs) else ""
    mid = int(np.searchsorted(times, max(T // 10, 1)))  # t = T/10, for the growth over the last decade
    lines = [
        f"# Bandits: Bernoulli arms {MEANS}, T = {T:,}, {args.runs} runs per algorithm",
        "",
        f"`python experiments/bandits.py --steps {T} --runs {args.runs}{chunk}`. Expected (pseudo-)regret"
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
        regret = r.regret
        final = regret[:, -1]
        se = final.std(ddof=1) / np.sqrt(len(final))
        mid_mean = regret[:, mid].mean()
        growth = (final.mean() - mid_mean) / (bound[-1] - bound[mid])
        lines.append(f"| {label} | {mid_mean:.1f} | {final.mean():.1f} ± {se:.1f} | {final.mean() / bound[-1]:.2f}"
                     f" | {growth:.2f} | {r.wall_s:.0f} |")
    chunks = -(-args.runs // args.chunk)
    lines += ["", f"Wall time per algorithm, compilation included, the runs vmapped {min(args.chunk, args.runs)} at a"
              f" time ({chunks} program call{'s' if chunks > 1 else ''}), on a 2-core CPU shared with other jobs.", ""]
    (OUT / "table.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
