"""Example inputs for every public primitive, run under jit, vmap and grad by
``tests/test_primitives_transform.py``.

Each module here (one per primitive module: ``estimators``, ``losses``, ``transforms``) defines
``CASES``: a list of :class:`Case`, and ``MODULE``: the fnrl module whose ``__all__`` it covers.
A public name with no case must be listed in ``EXEMPT`` with the reason.
"""
from __future__ import annotations

from typing import Callable, NamedTuple


class Case(NamedTuple):
    """One primitive call.

    name: the public name it exercises (``fn`` may wrap it with partial/static arguments).
    fn: ``fn(*args)`` -> a pytree of float arrays.
    make_args: ``make_args(key)`` -> tuple of arrays (no Python scalars: those go in ``fn``).
    argnums: the positions of the float arguments to differentiate with respect to.
    """

    name: str
    fn: Callable
    make_args: Callable
    argnums: tuple[int, ...] = (0,)
