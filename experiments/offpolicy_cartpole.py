"""DQN on cartpole: double-Q with 3-step targets (the defaults), and the ablation (plain DQN,
double only, 3-step only), 5 seeds each.

    python experiments/offpolicy_cartpole.py    # writes experiments/results/offpolicy_cartpole/
"""
from common import Variant, main

VARIANTS = [
    Variant("double + 3-step", "dqn", "cartpole", 500_000),
    Variant("double", "dqn", "cartpole", 500_000, {"n_step": 1}),
    Variant("3-step", "dqn", "cartpole", 500_000, {"double_q": False}),
    Variant("plain DQN", "dqn", "cartpole", 500_000, {"double_q": False, "n_step": 1}),
]

if __name__ == "__main__":
    main("DQN on cartpole", VARIANTS, 475.0, "experiments/results/offpolicy_cartpole")
