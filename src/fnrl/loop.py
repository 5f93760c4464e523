"""A training run as data: the pieces the on- and off-policy loops share.

Both loops (:mod:`fnrl.training`, :mod:`fnrl.offpolicy`) build a :class:`Train`: three pure
functions over a ``carry`` pytree (a dict holding at least ``learner``, ``env_state``, the run's
``key`` and ``chunk``, the number of chunks done):

- ``init(key) -> carry``;
- ``advance(carry) -> (carry, metrics)`` -- one *chunk*: a fixed number of updates (with their
  rollouts), returning the last update's metrics;
- ``evaluate(carry, metrics) -> (carry, row)`` -- the evaluation that closes an evaluation
  period of ``chunks_per_eval`` chunks; ``row`` holds ``step``, ``episode_return`` and
  ``metrics``.

Calling the :class:`Train` runs all ``num_evals`` periods as one ``lax.scan`` -- one program
for ``jax.jit`` and ``jax.vmap`` over seeds. The command line instead calls the three jitted
pieces from Python, so that it can show progress between chunks, check for non-finite
metrics, and save checkpoints between periods that resume bit-for-bit: every random key is
derived from ``carry["key"]`` and ``carry["chunk"]`` alone, so the two ways of running give
the same stream of computations. (Progress comes from the host between chunks, not from host
callbacks inside the program, because JAX never writes executables holding host callbacks to
its persistent compilation cache.)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from fnrl import envs

# About this many progress reports per run when the run is driven chunk by chunk.
PROGRESS_REPORTS = 100


def chunk_size(updates_per_eval: int, num_evals: int) -> int:
    """Updates per chunk: the largest divisor of ``updates_per_eval`` that still gives about
    :data:`PROGRESS_REPORTS` chunks in the whole run (at least one chunk per evaluation)."""
    wanted = max(1, PROGRESS_REPORTS // num_evals)  # chunks per evaluation period
    return min(d for d in range(1, updates_per_eval + 1)
               if updates_per_eval % d == 0 and updates_per_eval // d <= wanted)


def _period_keys(key, period, num_evals: int):
    """``(train_key, eval_key)`` of evaluation period ``period``: ``split(split(key, num_evals)[period])``."""
    return jax.random.split(jax.random.split(key, num_evals)[period])


def update_keys(key, chunk, num_evals: int, updates_per_eval: int, size: int):
    """The ``size`` update keys of chunk number ``chunk`` (traced).

    Period ``p``'s updates take ``split(train_key, updates_per_eval)`` in order, ``size`` per
    chunk (:func:`_period_keys`), so the keys do not depend on how the run is cut into chunks or
    programs.
    """
    chunks_per_eval = updates_per_eval // size
    train_key, _ = _period_keys(key, chunk // chunks_per_eval, num_evals)
    keys = jax.random.split(train_key, updates_per_eval)
    return jax.lax.dynamic_slice_in_dim(keys, chunk % chunks_per_eval * size, size)


def eval_key(key, chunk, num_evals: int, chunks_per_eval: int):
    """The evaluation key of the period that chunk number ``chunk`` (traced) has just closed."""
    return _period_keys(key, chunk // chunks_per_eval - 1, num_evals)[1]


def obs_stats(carry):
    """The training environments' observation statistics in ``carry`` (None without
    observation normalisation): what an evaluation of the learner must apply, frozen."""
    return carry["env_state"].info.get("obs_stats")


@dataclasses.dataclass(frozen=True)
class Train:
    """``train(key) -> (learner, metrics)``, with the pieces it is made of (module docstring).

    Attributes beyond the three functions: ``num_evals`` periods of ``chunks_per_eval`` chunks
    of ``steps_per_chunk`` environment steps after ``initial_steps`` (an off-policy warm-up);
    ``env`` (the unbatched environment) and ``act(learner, obs, key)`` (the evaluation policy),
    which :func:`fnrl.training.evaluate` and :mod:`fnrl.render` take; ``on_eval(step,
    episode_return, metrics)``, called on the host at each evaluation of ``train(key)`` through
    ``jax.debug.callback``.
    """

    init: Callable
    advance: Callable
    evaluate: Callable
    num_evals: int
    chunks_per_eval: int
    steps_per_chunk: int
    env: envs.Env
    act: Callable
    initial_steps: int = 0
    on_eval: Callable | None = None
    ordered_callbacks: bool = True  # False across devices: ordered effects are single-device

    def __call__(self, key) -> tuple[Any, dict]:
        def period(carry, _):
            carry, metrics = jax.lax.scan(lambda c, _: self.advance(c), carry, None, self.chunks_per_eval)
            carry, row = self.evaluate(carry, jax.tree_util.tree_map(lambda x: x[-1], metrics))
            if self.on_eval is not None:
                jax.debug.callback(self.on_eval, row["step"], row["episode_return"],
                                   {k: v for k, v in row.items() if k not in ("step", "episode_return")},
                                   ordered=self.ordered_callbacks)
            return carry, row

        carry, metrics = jax.lax.scan(period, self.init(key), None, self.num_evals)
        return carry["learner"], metrics

    @property
    def num_chunks(self) -> int:
        return self.num_evals * self.chunks_per_eval

    def step(self, chunks_done: int) -> int:
        """Environment steps after ``chunks_done`` chunks."""
        return self.initial_steps + chunks_done * self.steps_per_chunk

