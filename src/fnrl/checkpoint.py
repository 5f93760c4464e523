"""Checkpoints of a training run's whole carry (learner, environments, replay buffer, keys), with
orbax.

A checkpoint is the :class:`fnrl.loop.Train` carry after some number of chunks, saved under
``DIR/<chunks>``. Orbax writes each one into a temporary directory and renames it when complete,
so a process killed while saving leaves the previous checkpoint intact; the newest ``keep`` are
kept. Restoring needs the carry's structure, which ``jax.eval_shape(train.init, key)`` gives
without running anything.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpoints"]


class Checkpoints:
    """The checkpoints of one run, in ``directory``; a context manager (closes orbax's threads)."""

    def __init__(self, directory: str, keep: int = 2):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(os.path.abspath(directory), options=options)

    def save(self, chunks: int, carry: Any) -> None:
        """Saves ``carry`` as the checkpoint after ``chunks`` chunks; returns once it is on disk."""
        self._manager.save(chunks, args=ocp.args.StandardSave(carry))
        self._manager.wait_until_finished()

    def latest(self) -> int | None:
        """The number of chunks of the newest complete checkpoint, None if there is none."""
        return self._manager.latest_step()

    def restore(self, like: Any, chunks: int | None = None) -> Any:
        """The carry saved after ``chunks`` chunks (default: the newest), shaped like ``like``
        (a carry or its ``jax.eval_shape``).

        Raises:
          ValueError: one line, when there is no such checkpoint or it does not fit ``like``.
        """
        chunks = self.latest() if chunks is None else chunks
        if chunks is None:
            raise ValueError(f"no checkpoint in {self._manager.directory}")
        abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), like)
        try:
            return self._manager.restore(chunks, args=ocp.args.StandardRestore(abstract))
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise ValueError(f"checkpoint {chunks} in {self._manager.directory} does not fit this run: "
                             f"{str(e).splitlines()[0]}") from None

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
