"""Analytic policy gradients on pendulum, 5 seeds each: a deterministic policy trained by
backpropagating the return through the model (fnrl.algorithms.apg, the lectures' MBRL v2.0) --

- through pendulum's true dynamics (``model=true``: the environment's own differentiable step);
- through an ensemble fitted to the real data after every episode (``model=learned``: the
  members' mean, with the known reward).

    python experiments/apg_pendulum.py                  # both; writes experiments/results/apg_pendulum/
    python experiments/apg_pendulum.py --only learned   # one variant, written to its own directory

The issue asks both for >= -200. Steps are real environment steps: with the true model each update
also differentiates through 50 x 64 x 50 simulator steps that are not counted (fnrl.algorithms.apg).
"""
import argparse
import sys

from common import SEEDS, Variant, report, run

TARGET = -200.0
VARIANTS = [Variant("true", "apg", "pendulum", 3_000), Variant("learned", "apg", "pendulum", 3_000, {"model": "learned"})]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--only", choices=[v.label for v in VARIANTS])
    parser.add_argument("--out", default="experiments/results/apg_pendulum")
    args = parser.parse_args()
    variants = [v for v in VARIANTS if args.only in (None, v.label)]
    out = args.out if args.only is None else f"{args.out}/{args.only}"
    results = [run(v, args.seeds) for v in variants]
    print(report("APG on pendulum: gradients through the true dynamics and a learned ensemble", results, TARGET, out,
                 "python " + " ".join(sys.argv)))
