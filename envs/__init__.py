"""fnrl's environment suite: Brax, pure-JAX classic control, tabular MDPs, bandits, Deep Sea and
goal reaching (``goal/point``; :mod:`fnrl.envs.goal`).

    env = fnrl.envs.make("cartpole")
    state = env.reset(jax.random.PRNGKey(0))
    state = env.step(state, action)

``fnrl.envs.list()`` names every registered environment.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import re
from typing import Callable

from fnrl.config import parse_call
from fnrl.envs.core import Env, EnvState, Spec, Wrapper
from fnrl.envs.wrappers import TimeLimit, wrap

_REGISTRY: dict[str, tuple[Callable[..., Env], int | None]] = {}
_SIZED: dict[str, tuple[Callable[..., Env], int | None]] = {}  # family -> entry; see register_sized


def register(name: str, factory: Callable[..., Env], max_episode_steps: int | None = None) -> None:
    """Registers ``factory(**kwargs) -> Env`` under ``name``.

    ``max_episode_steps`` is the environment's standard time limit: :func:`make` wraps the
    environment in :class:`fnrl.envs.wrappers.TimeLimit` with it unless the caller passes
    ``max_episode_steps=None`` (no limit) or another value.
    """
    _REGISTRY[name] = (factory, max_episode_steps)


def register_sized(family: str, factory: Callable[..., Env], listed: tuple[int, ...] = (),
                   max_episode_steps: int | None = None) -> None:
    """Registers the names ``family/N`` for every positive integer N: :func:`make` builds
    ``factory(N, **kwargs)``. The sizes in ``listed`` are also registered by name (so
    :func:`list` shows them); any other N is built on demand.
    """
    _SIZED[family] = (factory, max_episode_steps)
    for size in listed:
        register(f"{family}/{size}", functools.partial(factory, size), max_episode_steps)


def list() -> list[str]:  # noqa: A001 - public contract name
    """Names of every registered environment, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def make(name: str, **kwargs) -> Env:
    """Builds the environment registered as ``name``, with ``kwargs`` for its factory.

    The name may carry the keyword arguments itself, as Python literals --
    ``make("tabular/chain(num_states=20, slip=0.0)")`` equals
    ``make("tabular/chain", num_states=20, slip=0.0)`` -- which is how a config's ``env`` (and
    so ``fnrl train --env``) names a variant (:func:`fnrl.config.parse_call`). A family
    registered by :func:`register_sized` takes any positive integer size: ``make("deepsea/7")``.

    Raises:
      ValueError: one line naming the unknown environment and its closest matches, the bad
        size of a sized family, or the keyword arguments the environment does not accept.
    """
    name, arguments = parse_call(name, "environment")
    kwargs = {**arguments, **kwargs}
    _load_builtin(_modules_for(name))
    factory, default_limit = _lookup(name)
    limit = kwargs.pop("max_episode_steps", default_limit)
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as e:
        raise ValueError(f"environment {name!r}: {e}") from None
    env = factory(**kwargs)
    if limit is not None:
        env = TimeLimit(env, limit)
    return env


def _lookup(name: str) -> tuple[Callable[..., Env], int | None]:
    """The registry entry of ``name``: a registered name, or ``family/N`` of a sized family."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    family, _, size = name.rpartition("/")
    if family in _SIZED:
        if not re.fullmatch(r"[0-9]+", size) or int(size) < 1:
            raise ValueError(f"environment {name!r}: {family}/N needs a positive integer N ({family}/1, {family}/2, ...)")
        factory, limit = _SIZED[family]
        return functools.partial(factory, int(size)), limit
    _load_builtin()
    close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run `fnrl list` to see them all."
    raise ValueError(f"unknown environment {name!r}: {hint}")


# Modules whose import registers environments; ``brax/`` names live in brax_envs alone, so
# making any other environment never pays for importing Brax (seconds).
_BUILTIN_MODULES: tuple[str, ...] = ("classic", "tabular", "bandit", "deepsea", "goal", "brax_envs")
_LOADED: set[str] = set()


def _modules_for(name: str) -> tuple[str, ...]:
    if name.startswith("brax/"):
        return ("brax_envs",)
    return tuple(m for m in _BUILTIN_MODULES if m != "brax_envs")


def _load_builtin(modules: tuple[str, ...] = _BUILTIN_MODULES) -> None:
    """Imports the built-in environment modules, each of which registers its names."""
    import importlib

    for module in modules:
        if module not in _LOADED:
            _LOADED.add(module)
            importlib.import_module(f"fnrl.envs.{module}")


__all__ = ["Env", "EnvState", "Spec", "Wrapper", "make", "list", "register", "register_sized", "wrap"]
