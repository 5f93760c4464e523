"""Successor features and generalised policy improvement (GPI) on a four-room gridworld.

    python experiments/successor_gridworld.py [--tasks 100] [--samples 200000] [--seed 0]

The four rooms of Sutton, Precup & Singh (1999) as a ``tabular/gridworld`` (104 cells, slip
0.1, γ = 0.95) with a goal in each outer corner (NW, NE, SW, SE; terminal) and every other
cell a start (uniform μ₀). Features φ_k(s, a, s') = 1[s' = goal k]
(:func:`fnrl.successor.arrival_features`): task w pays w_k on reaching goal k.

Training: the optimal policies π_1..π_4 of the one-hot tasks e_1..e_4 (value iteration) and
their successor features, exactly (:func:`fnrl.successor.successor_features`) and by TD(0)
(:func:`fnrl.successor.sf_td_update`) from ``--samples`` transitions each (s uniform over the
non-goal cells, a uniform, step size n^-0.6 at the n-th visit of (s, a)).

Test tasks: six chosen w and ``--tasks`` random w ~ U[−1, 1]⁴. Per task, μ₀ᵀV (the mean value
over start cells), every policy evaluated exactly (:func:`fnrl.envs.tabular.policy_evaluation`):
the task's optimal policy (value iteration); GPI over the four ψ with the true w; GPI with the
TD-learned ψ and least-squares weights ŵ (:func:`fnrl.successor.reward_weights`) fitted to
2,000 sampled transitions whose rewards carry N(0, 0.1²) noise; and the best single training
policy, max_k μ₀ᵀV^{π_k}. Also checked per task: V^GPI ≥ V^{π_k} in every state for every k
(Barreto et al. 2017, Theorem 1).

Writes ``table.md``, ``values.png`` and ``results.json`` into
``experiments/results/successor_gridworld/``. About half a minute on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

from fnrl.cli import cpu_scheduler_workaround

cpu_scheduler_workaround()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from fnrl import successor  # noqa: E402
from fnrl.envs import tabular  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "results" / "successor_gridworld"
FOUR_ROOMS = (
    "G....#....G",
    ".....#.....",
    "...........",
    ".....#.....",
    ".....#.....",
    "#.####.....",
    ".....###.##",
    ".....#.....",
    ".....#.....",
    "...........",
    "G....#....G",
)
GOALS = ("NW", "NE", "SW", "SE")
CHOSEN = {  # label -> w
    "NW (a training task)": (1.0, 0.0, 0.0, 0.0),
    "any goal": (1.0, 1.0, 1.0, 1.0),
    "a northern goal": (1.0, 1.0, 0.0, 0.0),
    "NW, avoiding the others": (1.0, -1.0, -1.0, -1.0),
    "mixed": (0.5, 1.0, -1.0, 0.2),
    "avoid every goal": (-1.0, -1.0, -1.0, -1.0),
}
REWARD_SAMPLES, REWARD_NOISE = 2_000, 0.1
OMEGA = 0.6  # TD step size n^-OMEGA at the n-th visit of (s, a)


def make_env() -> tabular.TabularEnv:
    return tabular.gridworld(tuple(row.replace(".", "S") for row in FOUR_ROOMS), slip=0.1, discount=0.95)


def sample_transitions(key, mdp, num):
    """s uniform over non-terminal states, a uniform, s' ~ P(·|s, a)."""
    k_s, k_a, k_next = jax.random.split(key, 3)
    s = jax.random.categorical(k_s, jnp.where(mdp.terminal, -jnp.inf, 0.0), shape=(num,))
    a = jax.random.randint(k_a, (num,), 0, mdp.transitions.shape[1])
    return s, a, jax.random.categorical(k_next, jnp.log(mdp.transitions[s, a]))


def learn_features(key, mdp, phi, policy, num):
    """ψ^π by TD(0) from ``num`` uniform transitions, step size n(s, a)^-OMEGA."""
    s, a, s_next = sample_transitions(key, mdp, num)

    def body(carry, x):
        psi, visits = carry
        s, a, s_next = x
        visits = visits.at[s, a].add(1.0)
        psi = successor.sf_td_update(psi, policy, s, a, phi[s, a, s_next], s_next, mdp.terminal[s_next],
                                     mdp.discount, visits[s, a] ** -OMEGA)
        return (psi, visits), None

    init = (jnp.zeros(phi.shape[:2] + phi.shape[3:]), jnp.zeros(phi.shape[:2]))
    return jax.lax.scan(body, init, (s, a, s_next))[0][0]


def evaluate(mdp, phi, policies, psis, psis_learned, key, w):
    """One task w: μ₀ᵀV of the optimal, GPI (exact ψ, true w), GPI (learned ψ, fitted ŵ) and each
    training policy; whether GPI ≥ every π_k in every state; and ŵ."""
    task = mdp._replace(rewards=phi @ w)
    s, a, s_next = sample_transitions(key, mdp, REWARD_SAMPLES)
    k_noise = jax.random.fold_in(key, 1)
    features = phi[s, a, s_next]
    rewards = features @ w + REWARD_NOISE * jax.random.normal(k_noise, (REWARD_SAMPLES,))
    w_hat = successor.reward_weights(features, rewards)
    v = lambda policy: tabular.policy_evaluation(task, policy).v
    v_gpi, v_k = v(successor.gpi(psis, w).policy), jax.vmap(v)(policies)
    return {"optimal": mdp.initial @ tabular.value_iteration(task).v, "gpi": mdp.initial @ v_gpi,
            "gpi_learned": mdp.initial @ v(successor.gpi(psis_learned, w_hat).policy), "single": v_k @ mdp.initial,
            "theorem_holds": jnp.all(v_gpi[None] >= v_k - 1e-5), "w_hat": w_hat}


def run(num_tasks: int, num_samples: int, seed: int) -> dict:
    start = time.perf_counter()
    mdp = make_env().mdp
    goals = jnp.flatnonzero(mdp.terminal)
    phi = successor.arrival_features(mdp, goals)
    policies = jax.jit(jax.vmap(lambda w: tabular.value_iteration(mdp._replace(rewards=phi @ w)).policy))(jnp.eye(4))
    psis = jax.jit(jax.vmap(successor.successor_features, (None, 0, None)))(mdp, policies, phi)
    k_learn, k_tasks, k_eval = jax.random.split(jax.random.PRNGKey(seed), 3)
    learn = jax.jit(learn_features, static_argnums=4)
    psis_learned = jnp.stack([learn(k, mdp, phi, pi, num_samples) for k, pi in zip(jax.random.split(k_learn, 4),
                                                                                     policies)])
    error = jnp.abs(psis_learned - psis)
    random_ws = jax.random.uniform(k_tasks, (num_tasks, 4), minval=-1.0, maxval=1.0)
    ws = jnp.concatenate([jnp.asarray(list(CHOSEN.values()), jnp.float32), random_ws])
    out = jax.jit(jax.vmap(evaluate, (None, None, None, None, None, 0, 0)))(
        mdp, phi, policies, psis, psis_learned, jax.random.split(k_eval, len(ws)), ws)
    out = {k: np.asarray(v).tolist() for k, v in out.items()}
    return {"states": int(mdp.transitions.shape[0]), "starts": int(jnp.sum(mdp.initial > 0)), "goals": np.asarray(goals).tolist(), "discount": 0.95,
            "slip": 0.1, "samples": num_samples, "seed": seed, "chosen": list(CHOSEN), "w": np.asarray(ws).tolist(),
            "psi_error_max": float(error.max()), "psi_error_mean": float(error.mean()),
            "seconds": time.perf_counter() - start, **out}


def write_table(r: dict) -> str:
    n = len(r["chosen"])
    single = np.asarray(r["single"])
    best = single.max(1)
    cols = {k: np.asarray(r[k]) for k in ("optimal", "gpi", "gpi_learned")}
    lines = ["# Successor features and GPI on a four-room gridworld", "",
             f"`python experiments/successor_gridworld.py --tasks {len(r['w']) - n} --samples {r['samples']} "
             f"--seed {r['seed']}`", "",
             f"Four rooms ({r['states']} cells, slip {r['slip']}, γ = {r['discount']}) with a goal in each outer "
             "corner (NW, NE, SW, SE);",
             "task w pays w_k on reaching goal k. GPI combines the optimal policies of the four one-hot tasks,",
             "π(s) = argmax_a max_k ψ^{π_k}(s, a)ᵀw. Values: μ₀ᵀV, the mean value over the "
             f"{r['starts']} start cells, every policy",
             "evaluated exactly. *Learned*: ψ by TD(0) from "
             f"{r['samples']:,} transitions per policy (max |ψ̂ − ψ| = {r['psi_error_max']:.3f},",
             f"mean {r['psi_error_mean']:.4f}) and ŵ by least squares on {REWARD_SAMPLES:,} transitions with "
             f"N(0, {REWARD_NOISE}²) reward noise.",
             "*Best single*: the best of the four training policies on the task. *Theorem 1* (Barreto et al. "
             "2017): V^GPI ≥ V^{π_k}",
             "in every state, for every k.", "",
             "| task | w (NW, NE, SW, SE) | optimal | GPI | GPI, learned ψ and ŵ | best single (which) | Theorem 1 |",
             "|---|---|---|---|---|---|---|"]
    for i, label in enumerate(r["chosen"]):
        w = ", ".join(f"{x:g}" for x in r["w"][i])
        lines.append(f"| {label} | ({w}) | {cols['optimal'][i]:.3f} | {cols['gpi'][i]:.3f} | "
                     f"{cols['gpi_learned'][i]:.3f} | {best[i]:.3f} ({GOALS[int(single[i].argmax())]}) | "
                     f"{'holds' if r['theorem_holds'][i] else 'FAILS'} |")
    rest = slice(n, None)
    m = len(r["w"]) - n
    if m:
        held = sum(r["theorem_holds"][rest])
        lines.append(f"| {m} random tasks, mean | U[−1, 1]⁴ | {cols['optimal'][rest].mean():.3f} | "
                     f"{cols['gpi'][rest].mean():.3f} | {cols['gpi_learned'][rest].mean():.3f} | "
                     f"{best[rest].mean():.3f} | holds in {held}/{m} |")
        gap = lambda x: cols["optimal"][rest] - x[rest]  # noqa: E731
        lines += ["", f"Over the {m} random tasks: GPI is within 0.001 of the optimal value in "
                      f"{int(np.sum(gap(cols['gpi']) <= 1e-3))}, beats the best single policy by more than 0.001 in "
                      f"{int(np.sum(cols['gpi'][rest] - best[rest] > 1e-3))}; mean shortfall from optimal: GPI "
                      f"{gap(cols['gpi']).mean():.3f}, learned GPI {gap(cols['gpi_learned']).mean():.3f}, best single "
                      f"{gap(best).mean():.3f}."]
    lines += ["", f"{r['seconds']:.0f} s on {jax.devices()[0].platform.upper()}, compilation included."]
    return "\n".join(lines) + "\n"


def plot(r: dict) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(r["chosen"])
    figure = Figure(figsize=(9, 4))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    bars = {"optimal": r["optimal"][:n], "GPI": r["gpi"][:n], "GPI, learned ψ and ŵ": r["gpi_learned"][:n],
            "best single policy": np.asarray(r["single"])[:n].max(1)}
    x = np.arange(n)
    for i, (label, values) in enumerate(bars.items()):
        ax.bar(x + (i - 1.5) * 0.2, values, 0.2, label=label)
    ax.set_xticks(x, r["chosen"], rotation=15, fontsize=8)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.set_ylabel("mean value over start cells")
    ax.set_title("four rooms: GPI over the four goal policies")
    ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(OUT / "values.png", dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="random test tasks w ~ U[-1, 1]^4")
    parser.add_argument("--samples", type=int, default=200_000, help="TD transitions per training policy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.tasks < 0 or args.samples < 1:
        parser.error(f"--tasks must be >= 0 and --samples >= 1, got {args.tasks} and {args.samples}")
    results = run(args.tasks, args.samples, args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    table = write_table(results)
    (OUT / "table.md").write_text(table)
    plot(results)
    print(table)


if __name__ == "__main__":
    main()
