"""The one functional interface every fnrl environment implements.

An environment is an immutable Python object (its configuration, hashable, static under jit);
everything that changes lives in the :class:`EnvState` pytree::

    state = env.reset(key)            # EnvState
    state = env.step(state, action)   # EnvState

``state.obs`` is the observation to act on, ``state.reward`` / ``state.termination`` /
``state.truncation`` describe the step that produced ``state``, ``state.info`` holds
wrapper bookkeeping (``final_obs``, episode statistics, ...) and ``state.internal`` the
environment's own state (physics, RNG key, step counter ...).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import chex
import jax.numpy as jnp


@chex.dataclass(frozen=True)
class EnvState:
    """State of one (or a batch of) environment(s); a pytree."""

    obs: chex.Array
    reward: chex.Array
    termination: chex.Array
    truncation: chex.Array
    internal: Any
    # Every ``step`` sets reward, termination and truncation afresh for the step it takes
    # (wrappers such as TimeLimit combine them with their own flags); only ``info`` is carried.
    info: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Spec:
    """Static description of an environment's observations and actions.

    Discrete environments set ``num_actions`` (actions are int32 scalars, ``action_shape == ()``);
    continuous ones set ``action_shape`` and the bounds ``action_low`` / ``action_high``.
    """

    observation_shape: tuple[int, ...]
    action_shape: tuple[int, ...] = ()
    num_actions: int | None = None
    action_low: Any = None
    action_high: Any = None

    @property
    def discrete(self) -> bool:
        return self.num_actions is not None

    def check_action(self, action, env_name: str) -> chex.Array:
        """``action`` as an array, after checking it fits this spec (rank, shape, dtype); a
        mismatch fails with a message naming ``env_name`` and what is accepted."""
        action = jnp.asarray(action)
        if self.discrete:
            msg = f"{env_name}: the action must be an int32 scalar in [0, {self.num_actions})"
            chex.assert_rank(action, 0, custom_message=msg)
            chex.assert_type(action, int, custom_message=msg)
            return action
        msg = f"{env_name}: the action must be a float array of shape {self.action_shape}"
        chex.assert_shape(action, self.action_shape, custom_message=msg)
        return as_float(action)

    def sample_action(self, key, batch_shape=()):
        """A uniformly random valid action (useful for benchmarks and exploration)."""
        import jax

        if self.discrete:
            return jax.random.randint(key, batch_shape, 0, self.num_actions)
        low = jnp.broadcast_to(jnp.asarray(self.action_low, jnp.float32), self.action_shape)
        high = jnp.broadcast_to(jnp.asarray(self.action_high, jnp.float32), self.action_shape)
        return jax.random.uniform(key, batch_shape + self.action_shape, minval=low, maxval=high)


class Env:
    """Base class: subclasses define ``spec``, ``reset`` and ``step``; all pure.

    ``one_hot_observations``: the observations are one-hot encodings of finitely many states
    (tabular MDPs, Deep Sea), which exact count bonuses count (:mod:`fnrl.exploration`).
    """

    spec: Spec
    one_hot_observations: ClassVar[bool] = False

    def reset(self, key: chex.PRNGKey) -> EnvState:
        raise NotImplementedError

    def step(self, state: EnvState, action: chex.Array) -> EnvState:
        raise NotImplementedError

    @property
    def unwrapped(self) -> "Env":
        return self


class Wrapper(Env):
    """Delegates to ``env``; subclasses override what they change."""

    def __init__(self, env: Env):
        self.env = env

    @property
    def spec(self) -> Spec:  # type: ignore[override]
        return self.env.spec

    def reset(self, key):
        return self.env.reset(key)

    def step(self, state, action):
        return self.env.step(state, action)

    @property
    def unwrapped(self) -> Env:
        return self.env.unwrapped

    def __getattr__(self, name):
        # Only reached for attributes not found normally: expose the inner env's extras
        # (e.g. exact solvers of tabular environments) through any stack of wrappers.
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)


def as_float(x) -> chex.Array:
    return jnp.asarray(x, dtype=jnp.float32)


__all__ = ["EnvState", "Spec", "Env", "Wrapper", "as_float"]
