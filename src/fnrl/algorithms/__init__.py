"""Algorithms, one module each, composed from the primitives.

Every module exposes ``Config`` (a validated dataclass), ``make_agent(config, spec)`` (its
:class:`fnrl.agent.Agent`: ``init``, ``act``, ``update``, over a typed ``Learner``) and
``make_train(config) -> train``, the agent on its family's loop (:mod:`fnrl.loops`), where
``train(key) -> (learner, metrics)`` is pure: ``jax.jit(train)(key)`` is one whole training run
and ``jax.vmap(train)(keys)`` trains many seeds at once. ``train`` is a
:class:`fnrl.loops.core.Train`, whose pieces :func:`fnrl.runner.run` drives for progress and
checkpoints.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from types import ModuleType

# Name -> module under fnrl.algorithms.
_ALGORITHMS = ("reinforce", "a2c", "ppo", "npg", "trpo",  # on-policy
               "dqn", "bootdqn", "ddpg", "td3", "sac",  # off-policy
               "bc", "gcbc", "td3_bc", "iql", "awac", "cql", "bcq", "fqe",  # offline (fnrl.loops.offline)
               "dagger", "dyna_q", "pets", "mbpo", "apg")  # on the model-based loop


def names() -> list[str]:
    """Names of every algorithm, sorted."""
    return sorted(_ALGORITHMS)


def get(name: str) -> ModuleType:
    """The module ``fnrl.algorithms.<name>``, or, for a name ending in ``.py``, that file loaded
    as a module: your own algorithm, with ``Config`` and ``make_train`` like the built-in ones
    (and optionally ``SUPPORTS``), e.g. ``experiments/tutorial_expectile_ppo.py``.

    Raises:
      ValueError: one line naming the unknown algorithm and what is accepted.
    """
    if name.endswith(".py"):
        return _from_file(name)
    if name not in _ALGORITHMS:
        close = difflib.get_close_matches(name, _ALGORITHMS, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown algorithm {name!r}{hint}; accepted: {', '.join(names())}, "
                         "or a .py file defining Config and make_train")
    return importlib.import_module(f"fnrl.algorithms.{name}")


def _from_file(path: str) -> ModuleType:
    if not os.path.isfile(path):
        raise ValueError(f"no algorithm file {path!r}")
    name = "fnrl_user_" + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    missing = [attr for attr in ("Config", "make_train") if not hasattr(module, attr)]
    if missing:
        raise ValueError(f"{path} is not an algorithm: it defines no {' and no '.join(missing)}")
    return module
