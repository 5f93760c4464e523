"""SAC on brax/inverted_pendulum (4 environments, 2 updates per 4 steps, 64×64 networks),
5 seeds trained at once with vmap.

    python experiments/offpolicy_brax.py --steps 200000 --out experiments/results/offpolicy_brax

Writes ``table.md`` and ``curve.png`` (mean ± std over seeds) into ``--out``.
"""
import argparse
import sys

from fnrl.algorithms import sac

from offpolicy_common import report, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="brax/inverted_pendulum")
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--target", type=float, default=900.0)
    parser.add_argument("--out", default="experiments/results/offpolicy_brax")
    args = parser.parse_args()
    config = sac.Config(env=args.env, total_steps=args.steps, num_envs=4, updates_per_rollout=2)
    results = {"SAC": (config, *run(sac, config, args.seeds))}
    print(report(f"SAC on {args.env}", results, args.target, args.out, "python " + " ".join(sys.argv)))


if __name__ == "__main__":
    main()
