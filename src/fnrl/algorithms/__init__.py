"""Algorithms, one module each, composed from the primitives.

Every module exposes ``Config`` (a validated dataclass) and ``make_train(config) -> train``,
where ``train(key) -> (state, metrics)`` is pure: ``jax.jit(train)(key)`` is one whole
training run and ``jax.vmap(train)(keys)`` trains many seeds at once. ``train`` is a
:class:`fnrl.loop.Train`, whose pieces the command line drives for progress and checkpoints.
"""
from __future__ import annotations

import difflib
import importlib
from types import ModuleType

# Name -> module under fnrl.algorithms.
_ALGORITHMS = ("reinforce", "a2c", "ppo", "npg", "trpo", "dqn", "ddpg", "td3", "sac")


def names() -> list[str]:
    """Names of every algorithm, sorted."""
    return sorted(_ALGORITHMS)


def get(name: str) -> ModuleType:
    """The module ``fnrl.algorithms.<name>``.

    Raises:
      ValueError: one line naming the unknown algorithm and what is accepted.
    """
    if name not in _ALGORITHMS:
        close = difflib.get_close_matches(name, _ALGORITHMS, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown algorithm {name!r}{hint}; accepted: {', '.join(names())}")
    return importlib.import_module(f"fnrl.algorithms.{name}")
