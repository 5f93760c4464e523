"""Mountaincar (reward −1 per step until the flag): DQN with ε-greedy, and with a SimHash count
bonus and an RND bonus, 5 seeds each, on the dqn/mountaincar preset.

    python experiments/exploration_mountaincar.py    # writes experiments/results/exploration_mountaincar/
"""
from common import Variant, main

VARIANTS = [
    Variant("DQN, ε-greedy", "dqn", "mountaincar", 200_000),
    Variant("DQN + SimHash counts (MBIE-EB, β = 10)", "dqn", "mountaincar", 200_000,
            {"bonus": "simhash", "bonus_scale": 10.0}),
    Variant("DQN + RND (β = 10)", "dqn", "mountaincar", 200_000, {"bonus": "rnd", "bonus_scale": 10.0}),
]

if __name__ == "__main__":
    main("DQN on mountaincar, with and without an exploration bonus", VARIANTS, -150.0,
         "experiments/results/exploration_mountaincar")
