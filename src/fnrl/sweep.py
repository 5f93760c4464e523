"""Many runs in one program: seeds and hyperparameter sweeps, vmapped.

    sweep = fnrl.sweep.make_sweep(ppo, config, seeds=[0, 1, 2], grid={"learning_rate": [1e-3, 3e-4]})
    result = fnrl.runner.run(sweep, sweep.keys)          # progress, checkpoints, resume, as for one run
    learners, metrics = jax.jit(sweep)(sweep.keys)        # or the whole thing as one program

The *members* are the points of the grid (every combination of the swept values, the first
key varying slowest) times the seeds. Member ``(values, seed)`` is the run
``module.make_train(config with values)`` from ``jax.random.PRNGKey(seed)`` -- the computation
of ``fnrl train --seed SEED --set KEY=VALUE ...``, with the same keys, though batched arithmetic
rounds differently (equal to float32 rounding over a short run; over a long one the two drift
apart as any two orderings of a chaotic computation do) -- and a :class:`Sweep` is a
:class:`fnrl.loops.core.Train` whose three pieces are those of every member, ``jax.vmap``-ed:
its carry and metrics have a leading member axis. Every point of a grid uses the same seeds.

Swept values are traced, not compiled in: one program serves the whole grid. So only number
fields (``float``: learning rates, coefficients, γ, λ, clip ε ...) can be swept, and only where
the algorithm uses them as values; :func:`check_traceable` names a key whose value decides the
program's structure (a Python ``if`` or an array shape) instead. Each grid point is validated
as a config first, so a bad value fails like ``--set`` would.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import typing
from typing import Any, Callable

import jax
import jax.numpy as jnp

from fnrl.config import ConfigError, apply
from fnrl.loops.core import Train

__all__ = ["Sweep", "check_traceable", "make_sweep", "member_name", "sweepable"]


def sweepable(config) -> list[str]:
    """The fields of ``config`` that a sweep may trace: those of type ``float``."""
    hints = typing.get_type_hints(type(config))
    return [f.name for f in dataclasses.fields(config) if hints[f.name] is float]


def member_name(member: dict) -> str:
    """``learning_rate=0.001,seed=2``: a member's swept values and seed (a directory name)."""
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in member.items())


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity, as jax.jit needs
class Sweep(Train):
    """A :class:`~fnrl.loops.core.Train` over ``members`` (each ``{**values, "seed": s}``);
    ``keys`` are their start keys, ``member(values)`` the single run with ``values`` (a dict of
    traced scalars; the run's ``act`` is what an evaluation of that member takes) and
    ``values`` the swept values per member, ``{key: [members]}``."""

    members: tuple[dict, ...] = ()
    keys: Any = None
    member: Callable | None = None
    values: dict = dataclasses.field(default_factory=dict)


def _traced(config, values: dict):
    """``config`` with ``values`` (tracers) in place, without validation: every grid point was
    validated with concrete values already, and a tracer cannot be compared."""
    config = copy.copy(config)
    for key, value in values.items():
        object.__setattr__(config, key, value)
    return config


def make_sweep(module, config, seeds, grid: dict[str, list] | None = None) -> Sweep:
    """The runs of ``module.make_train`` over ``grid`` (``{field: [values]}``; may be empty) ×
    ``seeds`` (integers), as one :class:`Sweep`.

    Raises:
      fnrl.config.ConfigError: one line, for a key that is not a number field of the config or
        a value that the config refuses.
    """
    grid = dict(grid or {})
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("a sweep needs at least one seed")
    allowed = sweepable(config)
    for key, values in grid.items():
        if key not in allowed:
            kind = "unknown config key" if not hasattr(config, key) else "not a number field"
            raise ConfigError(f"cannot sweep {key!r}: {kind}; only number fields are traced in one program "
                              f"(others change array shapes or the program's structure): {', '.join(allowed)}")
        if not values:
            raise ConfigError(f"cannot sweep {key!r}: no values given")
    points = []
    for combination in itertools.product(*grid.values()):  # each point must be a valid config on its own
        try:
            point = apply(config, dict(zip(grid, combination)))
        except ConfigError as e:
            raise ConfigError(f"--sweep: {e}") from None
        points.append({key: getattr(point, key) for key in grid})
    members = tuple({**point, "seed": seed} for point in points for seed in seeds)
    values = {key: jnp.array([m[key] for m in members], jnp.float32) for key in grid}
    keys = jnp.stack([jax.random.PRNGKey(m["seed"]) for m in members])

    def member(point: dict) -> Train:
        return module.make_train(_traced(config, point))

    init, advance, evaluate = _vmapped(member, values)
    fields = {f.name: getattr(module.make_train(config), f.name) for f in dataclasses.fields(Train)}
    fields.update(init=init, advance=advance, evaluate=evaluate, on_eval=None)
    return Sweep(**fields, members=members, keys=keys, member=member, values=values)


def _vmapped(member: Callable, values: dict):
    """``(init, advance, evaluate)`` of the runs ``member(values of one member)``, vmapped over
    the members' ``values`` (``{key: [members]}``)."""
    def init(keys):
        return jax.vmap(lambda v, k: member(v).init(k))(values, keys)

    def advance(carry):
        return jax.vmap(lambda v, c: member(v).advance(c))(values, carry)

    def evaluate(carry, metrics):
        carry, row = jax.vmap(lambda v, c, m: member(v).evaluate(c, m))(values, carry, metrics)
        return carry, {**row, "step": row["step"][0]}  # every member has taken the same steps

    return init, advance, evaluate


def check_traceable(sweep: Sweep) -> None:
    """Traces ``sweep`` (compiles nothing); a one-line :class:`~fnrl.config.ConfigError` naming
    the swept keys whose values the algorithm needs as Python values (an ``if``, a shape)."""
    def trace(values):
        init, advance, evaluate = _vmapped(sweep.member, values)
        jax.eval_shape(lambda keys: evaluate(*advance(init(keys))), sweep.keys)

    try:
        trace(sweep.values)
    except jax.errors.JAXTypeError:
        culprits = []
        for key in sweep.values:
            try:
                trace({key: sweep.values[key]})
            except jax.errors.JAXTypeError:
                culprits.append(key)
        raise ConfigError(f"cannot sweep {', '.join(culprits) or ', '.join(sweep.values)} in one program: the "
                          "algorithm needs its value while building the program (a Python condition or an "
                          "array size); train one run per value instead") from None
