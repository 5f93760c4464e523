"""SAC, TD3 and DDPG on pendulum (their defaults: 4 environments, one update per 4 steps, 64×64
networks), 5 seeds each.

    python experiments/offpolicy_pendulum.py    # writes experiments/results/offpolicy_pendulum/
"""
from common import Variant, main

VARIANTS = [Variant(name, name.lower(), "pendulum", 100_000) for name in ("SAC", "TD3", "DDPG")]

if __name__ == "__main__":
    main("SAC, TD3 and DDPG on pendulum", VARIANTS, -200.0, "experiments/results/offpolicy_pendulum")
