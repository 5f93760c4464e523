"""SAC, TD3 and DDPG on pendulum (default configs: 4 environments, one update per 4 steps,
64×64 networks), 5 seeds each trained at once with vmap.

    python experiments/offpolicy_pendulum.py --steps 100000 --out experiments/results/offpolicy_pendulum

Writes ``table.md`` and ``curve.png`` (mean ± std over seeds) into ``--out``.
"""
import argparse
import sys

from fnrl.algorithms import ddpg, sac, td3

from offpolicy_common import report, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="experiments/results/offpolicy_pendulum")
    args = parser.parse_args()
    results = {}
    for name, module in (("SAC", sac), ("TD3", td3), ("DDPG", ddpg)):
        config = module.Config(env="pendulum", total_steps=args.steps)
        results[name] = (config, *run(module, config, args.seeds))
        print(name, results[name][2][:, -1], flush=True)
    print(report("SAC, TD3 and DDPG on pendulum", results, -200.0, args.out, "python " + " ".join(sys.argv)))


if __name__ == "__main__":
    main()
