"""Tuned settings per (algorithm or planner, environment), kept as data in ``fnrl/presets.yaml``.

The command line (``fnrl train ALGO --env ENV`` starts from the preset when there is one), the
experiments and the README's tables all read them from here, so a tuned setting lives in one
place::

    config = fnrl.presets.config("ppo", "pendulum", total_steps=1_000_000)

Precedence, lowest first: the algorithm's ``Config`` defaults, the preset, then the changes
given (on the command line: ``--config FILE``, ``--env``/``--steps``, ``--set``).
"""
from __future__ import annotations

import functools
import importlib.resources

from fnrl import algorithms
from fnrl.config import apply, parse_call, read_yaml

__all__ = ["config", "get", "key", "table"]


@functools.cache
def table() -> dict[str, dict[str, dict]]:
    """``{algorithm: {environment: {field: value}}}``, as in ``fnrl/presets.yaml``."""
    text = importlib.resources.files("fnrl").joinpath("presets.yaml").read_text(encoding="utf-8")
    return read_yaml(text)


def get(algo: str, env: str) -> dict:
    """The preset of ``algo`` on ``env``: its config fields, ``{}`` when there is none.

    The first entry found of: ``env`` itself, its name without arguments (``tabular/chain`` for
    ``tabular/chain(num_states=20)``), its family (``deepsea/*`` for ``deepsea/20``).
    """
    found = key(algo, env)
    return dict(table()[algo][found]) if found else {}


def key(algo: str, env: str) -> str | None:
    """The entry of ``presets.yaml`` that :func:`get` reads for ``algo`` on ``env``, or None."""
    entries = table().get(algo, {})
    name = parse_call(env, "environment")[0]
    return next((k for k in (env, name, name.rpartition("/")[0] + "/*") if k in entries), None)


def config(algo: str, env: str, **changes):
    """``algo``'s validated ``Config`` on ``env``: the defaults, then the preset, then ``changes``.

    ``algo`` may also name a planner of :mod:`fnrl.planning` (``cem``, ``mcts``, ...): its
    config has no ``env`` field, but its presets are per environment all the same."""
    from fnrl import planning

    defaults = planning.config_class(algo)() if algo in planning.names() else algorithms.get(algo).Config(env=env)
    preset = apply(defaults, get(algo, env), source=f"preset {algo}/{env}")
    return apply(preset, changes)
