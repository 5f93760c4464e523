"""SAC on brax/inverted_pendulum (its preset: 4 environments, 2 updates per 4 steps), 5 seeds.

    python experiments/offpolicy_brax.py        # writes experiments/results/offpolicy_brax/
"""
from common import Variant, main

VARIANTS = [Variant("SAC", "sac", "brax/inverted_pendulum", 200_000)]

if __name__ == "__main__":
    main("SAC on brax/inverted_pendulum", VARIANTS, 900.0, "experiments/results/offpolicy_brax")
