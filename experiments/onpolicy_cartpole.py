"""REINFORCE, A2C, PPO, NPG and TRPO on cartpole (their cartpole presets), 5 seeds each.

    python experiments/onpolicy_cartpole.py     # writes experiments/results/onpolicy_cartpole/

Target (issue 4): PPO, TRPO, NPG and A2C reach a mean evaluation return >= 475 within 500k
environment steps; REINFORCE is reported alongside.
"""
from common import Variant, main

VARIANTS = [Variant(name, name.lower(), "cartpole", 500_000) for name in ("REINFORCE", "A2C", "PPO", "NPG", "TRPO")]

if __name__ == "__main__":
    main("On-policy algorithms on cartpole", VARIANTS, 475.0, "experiments/results/onpolicy_cartpole")
