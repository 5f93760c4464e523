"""A 20-state chain whose myopic reward hides the far one: DQN with ε-greedy, and with a count
and an RND bonus, 5 seeds each.

    python experiments/exploration_chain.py    # writes experiments/results/exploration_chain/

``tabular/chain(num_states=20, slip=0.0, small_reward=0.1)``: "back" pays 0.1 and returns to the
start, "forward" pays nothing until the last state, where it pays 10 every step. 1,000-step
episodes: always going back returns 100, going forward 19 times and then staying returns 9,810,
and dithering reaches the end with probability about 2^−19 per attempt.
"""
from common import Variant, main

CHAIN = "tabular/chain(num_states=20, slip=0.0, small_reward=0.1)"
VARIANTS = [
    Variant("DQN, ε-greedy", "dqn", CHAIN, 100_000),
    Variant("DQN + count bonus (MBIE-EB, β = 1)", "dqn", CHAIN, 100_000, {"bonus": "count", "bonus_scale": 1.0}),
    Variant("DQN + RND (β = 0.1)", "dqn", CHAIN, 100_000, {"bonus": "rnd", "bonus_scale": 0.1}),
]

if __name__ == "__main__":
    main("DQN on a 20-state chain, with and without an exploration bonus", VARIANTS, 5000.0,
         "experiments/results/exploration_chain")
