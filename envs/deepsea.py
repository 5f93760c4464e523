"""Deep Sea, bsuite's test of deep exploration, as a pure-JAX environment.

An N×N grid; the agent starts in the top-left cell (row 0, column 0) and falls one row per step,
choosing "left" or "right" each time, so every episode lasts exactly N steps. Which of the
actions 0 and 1 means "right" differs from cell to cell: ``mapping[row, column]`` is the action
that goes right, drawn once from ``np.random.RandomState(mapping_seed).binomial(1, 0.5, [N, N])``
exactly as bsuite draws it (the same numbers for the same seed). With c = unscaled_move_cost / N,
a step from (row r, column k) with action a is::

    right  = (a == mapping[r, k])
    reward = right · (1[k = N − 1] − c)                  (+1 only when going right in the last column)
    k'     = min(k + 1, N − 1) if right else max(k − 1, 0)
    r'     = r + 1;  the episode terminates when r' = N.

Going right all the way (N steps) is the only way to reach the treasure and returns 1 − N·c = 0.99
with the defaults; every other policy returns at most 0, and a dithering agent finds the treasure
with probability 2^−N, so it takes deep (not dithering) exploration (Osband, Van Roy, Russo & Wen,
"Deep Exploration via Randomized Value Functions", JMLR 2019, arXiv:1703.07608; Osband, Aslanides &
Cassirer, "Randomized Prior Functions for Deep RL", NeurIPS 2018; bsuite, Osband et al., ICLR 2020).

This follows bsuite 0.3.6's ``bsuite/environments/deep_sea.py`` step by step (tested against it):
the observation is the N×N one-hot grid of the cell, float32, shape (N, N) -- fnrl's networks
flatten observations to N² inputs -- and all zeros on the terminal observation; actions are int32
in {0, 1}; rewards equal bsuite's (as float32); ``termination = 1`` on the N-th step (bsuite's
discount 0), ``truncation`` is always 0 and :func:`fnrl.envs.make` adds no time limit.
``deterministic=False`` is bsuite's stochastic ("windy") version: "right" moves right only with
probability 1 − 1/N (it still costs c, and still earns the +1 in the last column), and in the last
row the cells of columns 0 and N − 1 add N(0, 1) noise to the reward; its randomness comes from
the key given to ``reset`` (bsuite's ``seed``), so it equals bsuite in distribution.
``randomize_actions=False`` is bsuite's debugging mode: action 1 is "right" everywhere. As in
bsuite, any action other than the cell's "right" one (an int32 outside {0, 1} included) goes left.

``state.internal`` is a :class:`DeepSeaState`. Its ``bad_episode`` is bsuite's flag: the agent
took "left" on the diagonal (row = column), leaving the only path to the treasure -- bsuite counts
such episodes (``total_bad_episodes``) to score exploration. Under :class:`fnrl.envs.wrappers.AutoReset`
the ending step's state is replaced by the next episode's, so count them from the episode
returns: in the deterministic version an episode is bad exactly when it misses the treasure,
i.e. when its return is below 0.5 (it is 1 − N·c or in [−N·c, 0]). Stepping an ended episode
again is absorbing (zero reward, zero observation, ``termination = 1``).

Names: ``deepsea/N`` for any positive integer N (``fnrl.envs.make("deepsea/20")``, with
``mapping_seed=42`` as bsuite's sweep uses for every size); :func:`fnrl.envs.list` shows bsuite's
sweep sizes 10, 12, ..., 50. Options go in the name: ``deepsea/20(deterministic=False)``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from fnrl.envs import register_sized
from fnrl.envs.core import Env, EnvState, Spec, as_float

BSUITE_SIZES: tuple[int, ...] = tuple(range(10, 51, 2))  # bsuite's deep_sea sweep (mapping_seed 42 each)


class DeepSeaState(NamedTuple):
    """The environment's own state (``EnvState.internal``), a pytree of scalars.

    row: int32 in [0, N]; N once the episode has ended.
    column: int32 in [0, N − 1].
    bad_episode: bool, bsuite's flag: "left" was taken somewhere on the diagonal row = column.
    key: the RNG key of the stochastic version (carried but unused when deterministic).
    """

    row: chex.Array
    column: chex.Array
    bad_episode: chex.Array
    key: chex.PRNGKey


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


@dataclasses.dataclass(frozen=True)
class DeepSea(Env):
    """``DeepSea(size, deterministic=True, unscaled_move_cost=0.01, randomize_actions=True,
    mapping_seed=42)``: bsuite's Deep Sea of size N = ``size`` (see the module docstring).

    ``mapping`` (set at construction, numpy int32 [N, N], read-only) is the action that moves
    right in each cell; equal configurations are equal (and hash equal) environments.
    """

    size: int
    deterministic: bool = True
    unscaled_move_cost: float = 0.01
    randomize_actions: bool = True
    mapping_seed: int = 42
    mapping: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)
    one_hot_observations: ClassVar[bool] = True

    def __post_init__(self):
        if not _is_int(self.size) or self.size < 1:
            raise ValueError(f"deepsea: size must be a positive integer, got {self.size!r}")
        if not _is_int(self.mapping_seed) or not 0 <= self.mapping_seed < 2**32:
            raise ValueError(f"deepsea: mapping_seed must be an integer in [0, 2**32), got {self.mapping_seed!r}")
        for flag in ("deterministic", "randomize_actions"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise ValueError(f"deepsea: {flag} must be True or False, got {getattr(self, flag)!r}")
        cost = self.unscaled_move_cost
        if isinstance(cost, bool) or not isinstance(cost, (int, float, np.floating, np.integer)) or not math.isfinite(cost):
            raise ValueError(f"deepsea: unscaled_move_cost must be a finite number, got {cost!r}")
        n = int(self.size)
        if self.randomize_actions:
            mapping = np.random.RandomState(self.mapping_seed).binomial(1, 0.5, [n, n])
        else:
            mapping = np.ones((n, n))
        mapping = mapping.astype(np.int32)
        mapping.flags.writeable = False
        object.__setattr__(self, "size", n)
        object.__setattr__(self, "mapping", mapping)

    @property
    def name(self) -> str:
        return f"deepsea/{self.size}"

    @property
    def spec(self) -> Spec:
        return Spec(observation_shape=(self.size, self.size), num_actions=2)

    @property
    def optimal_return(self) -> float:
        """The optimal policy's expected return, bsuite's ``_optimal_return``: 1 − unscaled_move_cost
        (deterministic), (1 − 1/N)^(N − 1) − unscaled_move_cost (stochastic)."""
        reach = 1.0 if self.deterministic else (1 - 1 / self.size) ** (self.size - 1)
        return reach - self.unscaled_move_cost

    def right_action(self, state: EnvState) -> chex.Array:
        """The action that moves right in ``state`` (int32, of the batch shape of a batched
        state); always taking it is the optimal policy."""
        internal = state.internal
        return jnp.asarray(self.mapping)[jnp.minimum(internal.row, self.size - 1), internal.column]

    def _observe(self, row, column) -> chex.Array:
        cells = jnp.arange(self.size)
        return ((cells[:, None] == row) & (cells[None, :] == column)).astype(jnp.float32)

    def reset(self, key: chex.PRNGKey) -> EnvState:
        zero, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        internal = DeepSeaState(zero_i, zero_i, jnp.zeros((), bool), key)
        return EnvState(obs=self._observe(zero_i, zero_i), reward=zero, termination=zero, truncation=zero,
                        internal=internal)

    def step(self, state: EnvState, action: chex.Array) -> EnvState:
        action = self.spec.check_action(action, self.name)
        n, cost = self.size, self.unscaled_move_cost / self.size
        row, column, bad, key = state.internal
        ended = row >= n
        right = action == self.right_action(state)
        # bsuite's reward in float64, then float32: 1 − c going right in the last column, −c elsewhere.
        reward = jnp.where(right, jnp.where(column == n - 1, np.float32(1.0 - cost), np.float32(-cost)),
                           jnp.float32(0.0))
        moved = right
        if not self.deterministic:
            key, wind, noise = jax.random.split(key, 3)
            moved = right & (jax.random.uniform(wind) > 1.0 / n)
            at_end = (row == n - 1) & ((column == 0) | (column == n - 1))
            reward = reward + jnp.where(at_end, jax.random.normal(noise), 0.0)
        bad = bad | (~right & (row == column))
        column = jnp.where(moved, jnp.minimum(column + 1, n - 1), jnp.where(right, column, jnp.maximum(column - 1, 0)))
        # An ended episode is absorbing: nothing moves, zero reward.
        row, column, bad = (jnp.where(ended, old, new) for old, new in
                            zip(state.internal[:3], (row + 1, column.astype(jnp.int32), bad)))
        return state.replace(obs=self._observe(row, column), reward=as_float(jnp.where(ended, 0.0, reward)),
                             termination=as_float(row >= n), truncation=jnp.zeros((), jnp.float32),
                             internal=DeepSeaState(row, column, bad, key))


register_sized("deepsea", DeepSea, listed=BSUITE_SIZES)

__all__ = ["DeepSea", "DeepSeaState", "BSUITE_SIZES"]
