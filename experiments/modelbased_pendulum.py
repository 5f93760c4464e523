"""Model-based RL on pendulum, 5 seeds each, against SAC (experiments/offpolicy_pendulum.py):

- PETS (an ensemble fitted after every episode, CEM-MPC on it): the lectures' MBRL v1.5;
- MBPO (SAC on one-step branches of the ensemble from real states, 10 SAC updates per real step).

    python experiments/modelbased_pendulum.py                # both; writes experiments/results/modelbased_pendulum/
    python experiments/modelbased_pendulum.py --only PETS    # one variant, written to its own directory

The target is SAC's final return after 100k steps (experiments/results/offpolicy_pendulum/table.md:
-140.8 ± 24.3); the issue asks PETS for >= -250 within 5,000 steps and MBPO for SAC's 100k-step
return within a third of the steps.
"""
import argparse
import sys

from common import SEEDS, Variant, report, run

SAC_100K = -140.8
VARIANTS = [Variant("PETS", "pets", "pendulum", 3_200), Variant("MBPO", "mbpo", "pendulum", 15_000)]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--only", choices=[v.label for v in VARIANTS])
    parser.add_argument("--out", default="experiments/results/modelbased_pendulum")
    args = parser.parse_args()
    variants = [v for v in VARIANTS if args.only in (None, v.label)]
    out = args.out if args.only is None else f"{args.out}/{args.only.lower()}"
    results = [run(v, args.seeds) for v in variants]
    print(report("Model-based RL on pendulum", results, SAC_100K, out, "python " + " ".join(sys.argv)))
