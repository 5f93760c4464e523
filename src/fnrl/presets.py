"""Tuned settings per (algorithm, environment), kept as data in ``fnrl/presets.yaml``.

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
from fnrl.config import apply, read_yaml

__all__ = ["config", "get", "table"]


@functools.cache
def table() -> dict[str, dict[str, dict]]:
    """``{algorithm: {environment: {field: value}}}``, as in ``fnrl/presets.yaml``."""
    text = importlib.resources.files("fnrl").joinpath("presets.yaml").read_text(encoding="utf-8")
    return read_yaml(text)


def get(algo: str, env: str) -> dict:
    """The preset of ``algo`` on ``env``: its config fields, ``{}`` when there is none."""
    return dict(table().get(algo, {}).get(env, {}))


def config(algo: str, env: str, **changes):
    """``algo``'s validated ``Config`` on ``env``: the defaults, then the preset, then ``changes``."""
    module = algorithms.get(algo)
    preset = apply(module.Config(env=env), get(algo, env), source=f"preset {algo}/{env}")
    return apply(preset, changes)
