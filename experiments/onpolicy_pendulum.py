"""PPO, NPG and TRPO on pendulum (their pendulum presets: why each setting, in
``fnrl/presets.yaml``), 5 seeds each.

    python experiments/onpolicy_pendulum.py     # writes experiments/results/onpolicy_pendulum/

Target (issue 4): PPO reaches a mean evaluation return >= -250 within 1M environment steps.

A2C is not included: with one gradient step per batch it did not learn pendulum within 1M steps
in the settings tried (Adam 1e-3 and 3e-4, γ 0.9 and 0.95, 64 to 512 steps per update).
"""
from common import Variant, main

VARIANTS = [Variant(name, name.lower(), "pendulum", 1_000_000) for name in ("PPO", "NPG", "TRPO")]

if __name__ == "__main__":
    main("On-policy algorithms on pendulum", VARIANTS, -250.0, "experiments/results/onpolicy_pendulum")
