"""fnrl's environment suite: Brax, pure-JAX classic control, tabular MDPs and bandits.

    env = fnrl.envs.make("cartpole")
    state = env.reset(jax.random.PRNGKey(0))
    state = env.step(state, action)

``fnrl.envs.list()`` names every registered environment.
"""
from __future__ import annotations

import difflib
from typing import Callable

from fnrl.envs.core import Env, EnvState, Spec, Wrapper

_REGISTRY: dict[str, tuple[Callable[..., Env], int | None]] = {}


def register(name: str, factory: Callable[..., Env], max_episode_steps: int | None = None) -> None:
    """Registers ``factory(**kwargs) -> Env`` under ``name``.

    ``max_episode_steps`` is the environment's standard time limit: :func:`make` wraps the
    environment in :class:`fnrl.envs.wrappers.TimeLimit` with it unless the caller passes
    ``max_episode_steps=None`` (no limit) or another value.
    """
    _REGISTRY[name] = (factory, max_episode_steps)


def list() -> list[str]:  # noqa: A001 - public contract name
    """Names of every registered environment, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def make(name: str, **kwargs) -> Env:
    """Builds the environment registered as ``name``.

    Raises:
      ValueError: one line naming the unknown environment and its closest matches.
    """
    _load_builtin()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run `fnrl list` to see them all."
        raise ValueError(f"unknown environment {name!r}: {hint}")
    factory, default_limit = _REGISTRY[name]
    limit = kwargs.pop("max_episode_steps", default_limit)
    env = factory(**kwargs)
    if limit is not None:
        from fnrl.envs.wrappers import TimeLimit

        env = TimeLimit(env, limit)
    return env


_LOADED = False


def _load_builtin() -> None:
    """Imports the built-in environment modules, each of which registers its names."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib

    for module in _BUILTIN_MODULES:
        importlib.import_module(f"fnrl.envs.{module}")


# Modules whose import registers environments.
_BUILTIN_MODULES: tuple[str, ...] = ("classic", "tabular", "bandit", "brax_envs")

__all__ = ["Env", "EnvState", "Spec", "Wrapper", "make", "list", "register"]
