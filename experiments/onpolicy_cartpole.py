"""REINFORCE, A2C, PPO, NPG and TRPO on cartpole with their default configs: 5 seeds each, trained
at once with vmap; one table and one plot.

    python experiments/onpolicy_cartpole.py --steps 500000 --out experiments/results/onpolicy_cartpole

Target (issue 4): PPO, TRPO, NPG and A2C reach a mean evaluation return >= 475 within 500k
environment steps; REINFORCE is reported alongside.
"""
import argparse
import sys

from onpolicy_common import report, run

from fnrl.algorithms import a2c, npg, ppo, reinforce, trpo

ALGORITHMS = {"REINFORCE": reinforce, "A2C": a2c, "PPO": ppo, "NPG": npg, "TRPO": trpo}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="experiments/results/onpolicy_cartpole")
    args = parser.parse_args()
    results = {}
    for name, module in ALGORITHMS.items():
        results[name] = run(module, module.Config(env="cartpole", total_steps=args.steps, num_evals=25), args.seeds)
        print(f"{name}: final {results[name].returns[:, -1].round(1)} ({results[name].wall_s:.0f} s)", flush=True)
    print(report("On-policy algorithms on cartpole", results, 475.0, args.out, "python " + " ".join(sys.argv)))


if __name__ == "__main__":
    main()
