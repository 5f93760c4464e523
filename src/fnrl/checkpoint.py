"""Checkpoints of a training run's whole carry (learner, environments, replay buffer, keys), with
orbax, that can be trusted.

A checkpoint is the :class:`fnrl.loops.core.Train` carry after some number of chunks, saved under
``DIR/<chunks>``; the newest ``keep`` are kept. Orbax writes each one into a temporary
directory and renames it when complete. After that, fnrl writes ``DIR/<chunks>/fnrl-manifest.json``:
the size and SHA-256 of every file orbax wrote. A checkpoint is *usable* only when its
manifest exists and every file still matches it, so one that a killed process left without
a manifest, or whose data was overwritten or truncated since, is detected before orbax reads
it (:meth:`Checkpoints.restore` raises :class:`CorruptCheckpoint`, one line naming it), and
:meth:`Checkpoints.restore_usable` falls back to the previous kept checkpoint.

Orbax refuses arrays with no elements (e.g. the empty n-step pending window of a 1-step
off-policy run); they are stored as one-element placeholders and restored empty. Restoring
needs the carry's structure, which ``jax.eval_shape(train.init, key)`` gives without running
anything.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "Checkpoints", "CorruptCheckpoint", "MANIFEST"]

MANIFEST = "fnrl-manifest.json"


class CheckpointError(ValueError):
    """No checkpoint to restore, or one that does not fit the run (one-line message)."""


class CorruptCheckpoint(CheckpointError):
    """A checkpoint is partial or its files changed since it was written (one-line message)."""


def _files(step_dir: str) -> dict[str, dict]:
    """``{relative path: {"bytes", "sha256"}}`` of every file under ``step_dir`` but the manifest."""
    files = {}
    for root, _, names in os.walk(step_dir):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, step_dir)
            if rel == MANIFEST:
                continue
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            files[rel] = {"bytes": os.path.getsize(path), "sha256": digest.hexdigest()}
    return files


def _stored(x):
    """What orbax stores for leaf ``x``: itself, or a one-element placeholder if it is empty."""
    return np.zeros((1,), x.dtype) if x.size == 0 else x


def _abstract(x):
    """The abstract array orbax restores for leaf ``x`` (a placeholder's for an empty leaf)."""
    return jax.ShapeDtypeStruct((1,) if x.size == 0 else x.shape, x.dtype)


class Checkpoints:
    """The checkpoints of one run, in ``directory`` (created unless ``create`` is False, for a
    reader); a context manager (closes orbax's threads)."""

    def __init__(self, directory: str, keep: int = 2, create: bool = True):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=False)
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def _step_dir(self, chunks: int) -> str:
        return os.path.join(self.directory, str(chunks))

    def save(self, chunks: int, carry: Any) -> None:
        """Saves ``carry`` as the checkpoint after ``chunks`` chunks; returns once it and its
        manifest are on disk."""
        self._manager.save(chunks, args=ocp.args.StandardSave(jax.tree_util.tree_map(_stored, carry)))
        self._manager.wait_until_finished()
        files = _files(self._step_dir(chunks))
        manifest = os.path.join(self._step_dir(chunks), MANIFEST)
        with open(manifest + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"chunks": chunks, "files": files}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(manifest + ".tmp", manifest)

    def steps(self) -> list[int]:
        """The chunk counts of the checkpoints on disk, newest first (usable or not)."""
        self._manager.reload()
        return sorted(self._manager.all_steps(), reverse=True)

    def latest(self) -> int | None:
        """The chunk count of the newest checkpoint on disk, None if there is none."""
        steps = self.steps()
        return steps[0] if steps else None

    def verify(self, chunks: int) -> None:
        """Raises :class:`CorruptCheckpoint` unless checkpoint ``chunks`` matches its manifest."""
        where = f"checkpoint {self._step_dir(chunks)}"
        try:
            with open(os.path.join(self._step_dir(chunks), MANIFEST), encoding="utf-8") as f:
                expected = json.load(f)["files"]
        except FileNotFoundError:
            raise CorruptCheckpoint(f"{where} is incomplete: it has no {MANIFEST}") from None
        except (ValueError, KeyError, TypeError):
            raise CorruptCheckpoint(f"{where} is corrupt: unreadable {MANIFEST}") from None
        found = _files(self._step_dir(chunks))
        for name in sorted(set(expected) | set(found)):
            if name not in found:
                raise CorruptCheckpoint(f"{where} is corrupt: {name} is missing")
            if name not in expected:
                raise CorruptCheckpoint(f"{where} is corrupt: {name} was not written with it")
            if found[name] != expected[name]:
                raise CorruptCheckpoint(f"{where} is corrupt: {name} does not match its checksum")

    def restore(self, like: Any, chunks: int | None = None) -> Any:
        """The carry saved after ``chunks`` chunks (default: the newest), shaped like ``like``
        (a carry or its ``jax.eval_shape``), after checking it against its manifest.

        Raises:
          CorruptCheckpoint: one line naming the checkpoint, when it is partial or changed.
          CheckpointError: one line, when there is no such checkpoint or it does not fit ``like``.
        """
        steps = self.steps()
        if chunks is None and not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        if chunks is not None and chunks not in steps:
            raise CheckpointError(f"no checkpoint {chunks} in {self.directory}")
        return self._load(like, steps[0] if chunks is None else chunks)

    def _load(self, like: Any, chunks: int) -> Any:
        """Checkpoint ``chunks``, which exists on disk, checked and restored (see :meth:`restore`)."""
        self.verify(chunks)
        try:
            stored = self._manager.restore(
                chunks, args=ocp.args.StandardRestore(jax.tree_util.tree_map(_abstract, like)))
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise CheckpointError(f"checkpoint {self._step_dir(chunks)} does not fit this run: "
                                  f"{str(e).splitlines()[0]}") from None
        return jax.tree_util.tree_map(lambda x, s: np.zeros(x.shape, x.dtype) if x.size == 0 else s, like, stored)

    def restore_usable(self, like: Any, report: Callable[[str], None] | None = print) -> tuple[int | None, Any]:
        """``(chunks, carry)`` of the newest usable checkpoint, ``(None, None)`` when there is
        none at all. Each corrupt or partial one on the way is reported (one line each, through
        ``report``; None: silently) and passed over.

        Raises:
          CheckpointError: one line, when there are checkpoints but none is usable.
        """
        problems = []
        for chunks in self.steps():
            try:
                carry = self._load(like, chunks)
            except CheckpointError as e:  # corrupt, partial, or not this run's
                problems.append(str(e))
                if report is not None:
                    report(f"skipping {e}")
                continue
            return chunks, carry
        if problems:
            raise CheckpointError(f"no usable checkpoint in {self.directory}: {len(problems)} found, "
                                  f"none usable (the newest: {problems[0]})")
        return None, None

    def discard_after(self, chunks: int | None) -> None:
        """Deletes the checkpoints newer than ``chunks`` (all of them for None): a run resumed
        from an older checkpoint writes them again."""
        for step in self.steps():
            if chunks is None or step > chunks:
                self._manager.delete(step)

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
