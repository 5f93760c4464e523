"""fnrl: composable, functional reinforcement learning in JAX.

Algorithms are pure functions composed from three kinds of primitives:

- :mod:`fnrl.estimators` -- returns, advantages, importance weights, off-policy evaluation;
- :mod:`fnrl.losses` -- policy-gradient, value, offline and generative losses;
- :mod:`fnrl.transforms` -- optax-compatible update transforms (natural gradient, TRPO step,
  target networks, dual ascent).

Environments live in :mod:`fnrl.envs`; algorithms in :mod:`fnrl.algorithms`.
"""

__version__ = "0.1.0"
