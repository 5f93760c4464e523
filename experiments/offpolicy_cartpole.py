"""DQN on cartpole: double-Q with 3-step targets, and the ablation (plain DQN, double only,
3-step only), 5 seeds each trained at once with vmap.

    python experiments/offpolicy_cartpole.py --steps 500000 --out experiments/results/offpolicy_cartpole

Writes ``table.md`` and ``curve.png`` (mean ± std over seeds) into ``--out``.
"""
import argparse
import dataclasses
import sys

from fnrl.algorithms import dqn

from offpolicy_common import report, run

VARIANTS = {
    "double + 3-step": dict(double_q=True, n_step=3),
    "double": dict(double_q=True, n_step=1),
    "3-step": dict(double_q=False, n_step=3),
    "plain DQN": dict(double_q=False, n_step=1),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="experiments/results/offpolicy_cartpole")
    args = parser.parse_args()
    results = {}
    for name, changes in VARIANTS.items():
        config = dataclasses.replace(dqn.Config(env="cartpole", total_steps=args.steps), **changes)
        results[name] = (config, *run(dqn, config, args.seeds))
        print(name, results[name][2][:, -1], flush=True)
    print(report("DQN on cartpole", results, 475.0, args.out, "python " + " ".join(sys.argv)))


if __name__ == "__main__":
    main()
