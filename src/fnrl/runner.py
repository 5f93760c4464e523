"""Running a :class:`fnrl.loops.core.Train` the way ``fnrl train`` does, from Python.

:func:`run` compiles the run's three programs ahead of time (:class:`Compiled`), then drives
it chunk by chunk (:func:`drive`): it logs each evaluation (``metrics.jsonl`` and TensorBoard),
shows progress, stops at the first non-finite metric (:class:`NonFinite`), saves a checkpoint
every ``checkpoint_every`` evaluations, and resumes from the newest usable checkpoint
(:mod:`fnrl.checkpoint`). Every random key comes from the carry, so a resumed run ends with
exactly the parameters of an uninterrupted one. A :class:`fnrl.sweep.Sweep` (many seeds or
hyperparameter values in one program) runs the same way, from its ``keys``; its rows hold one
value per member.

SIGINT (Ctrl-C) and SIGTERM (how schedulers preempt a job) are handled alike: the chunk that
is running finishes, a checkpoint of it is saved, and :class:`Interrupted` is raised; the
command line then exits with ``128 + signal number`` (130 and 143, as a shell reports a
process ended by that signal), and ``fnrl train --resume DIR`` continues bit-exactly. A second
Ctrl-C while that checkpoint is written stops at once (``KeyboardInterrupt``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from typing import Any, Callable

import jax
import numpy as np

from fnrl.checkpoint import Checkpoints
from fnrl.logging import RunLogger, read_metrics
from fnrl.loops.core import Train
from fnrl.progress import Progress
from fnrl.sweep import Sweep, member_name

__all__ = ["Compiled", "Interrupted", "NonFinite", "Result", "drive", "run", "stop_on_signals"]


class NonFinite(Exception):
    """Training produced a non-finite metric (one-line message)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run after saving a checkpoint (one-line message);
    ``exit_code`` is ``128 + signum``."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class _Signals:
    """The first SIGINT or SIGTERM received, recorded rather than acted on."""

    def __init__(self):
        self.received: int | None = None

    def handle(self, signum, frame) -> None:
        if self.received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.received = self.received or signum


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM set ``.received`` of the object it yields instead of
    ending the process (only in the main thread, where Python delivers signals)."""
    signals = _Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return
    previous = {s: signal.signal(s, signals.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Compiled:
    """A run's three programs (:class:`fnrl.loops.core.Train`), jitted and compiled ahead of running,
    each for the shardings the previous one produces (a run over several devices shards them);
    ``seconds`` is the time that took."""

    def __init__(self, train: Train, key):
        def like(shapes, shardings):
            return jax.tree_util.tree_map(lambda s, d: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=d),
                                          shapes, shardings)

        start = time.perf_counter()
        self.init = jax.jit(train.init).lower(key).compile()
        self.carry_shape = like(jax.eval_shape(train.init, key), self.init.output_shardings)
        self.advance = jax.jit(train.advance, donate_argnums=0).lower(self.carry_shape).compile()
        _, metrics = like(jax.eval_shape(train.advance, self.carry_shape), self.advance.output_shardings)
        self.evaluate = jax.jit(train.evaluate, donate_argnums=0).lower(self.carry_shape, metrics).compile()
        self.seconds = time.perf_counter() - start


def _to_host(metrics: dict) -> dict:
    """Metrics as Python floats (lists of them for the runs of a sweep), in one transfer
    from the device."""
    return {k: np.asarray(v, float).tolist() for k, v in jax.device_get(metrics).items()}


def _non_finite(row: dict, may_be_nan: tuple[str, ...], members: tuple[dict, ...] = ()) -> list[str]:
    """``name=value`` for each non-finite value of ``row`` but those named in ``may_be_nan``
    (:attr:`fnrl.loops.core.Train.may_be_nan`), with the member of a sweep it is of."""
    bad = []
    for k, v in row.items():
        for i, x in enumerate(v) if isinstance(v, list) else [(None, v)]:
            if k not in may_be_nan and not math.isfinite(x):
                bad.append(f"{k}={x}" if i is None else f"{k}={x} ({member_name(members[i])})")
    return bad


def drive(train: Train, compiled: Compiled, carry: Any, done: int = 0, *, logger=None,
          checkpoints: Checkpoints | None = None, checkpoint_every: int = 1, signals=None) -> tuple[Any, float]:
    """Runs chunks ``done + 1 ..`` of ``train`` from ``carry``; returns the final carry and the
    wall time.

    Each evaluation row gets ``sps`` and ``wall_s`` and goes to ``logger.log`` (e.g. a
    :class:`fnrl.logging.RunLogger`); a checkpoint is saved
    every ``checkpoint_every`` evaluations and after the last chunk. A chunk's metrics are read
    back while the next chunk runs, so the device does not wait for the host; evaluations and
    checkpoints wait for the chunk they follow. When ``signals`` (from :func:`stop_on_signals`)
    has received a signal, the running chunk finishes, is checked, and is checkpointed.

    Raises:
      NonFinite: at the first non-finite metric, naming it and the last finite checkpoint.
      Interrupted: after a signal, once the checkpoint is saved.
    """
    start, start_step = time.perf_counter(), train.step(done)

    def check(chunk: int, values: dict) -> None:
        if bad := _non_finite(values, train.may_be_nan, train.members if isinstance(train, Sweep) else ()):
            last = checkpoints.latest() if checkpoints is not None else None
            kept = (f"the last finite checkpoint is {checkpoints.directory}/{last} (step {train.step(last)})"
                    if last is not None else "no checkpoint was written")
            raise NonFinite(f"training stopped at step {train.step(chunk)}: non-finite {', '.join(bad)}; {kept}")

    def check_chunk(chunk: int, metrics) -> None:
        check(chunk, _to_host(metrics))
        progress.update(train.step(chunk))

    def interrupt(chunk: int) -> None:
        name = signal.Signals(signals.received).name
        if checkpoints is None:
            raise Interrupted(f"{name}: stopped at step {train.step(chunk)}; no checkpoint kept", signals.received)
        if checkpoints.latest() != chunk:
            checkpoints.save(chunk, carry)
        raise Interrupted(f"{name}: stopped at step {train.step(chunk)}; saved {checkpoints.directory}/{chunk}, "
                          f"continue with `fnrl train --resume {os.path.dirname(checkpoints.directory)}`",
                          signals.received)

    with Progress(train.step(train.num_chunks)) as progress:
        progress.update(start_step)
        previous = None  # (chunk, metrics) not yet read back
        for chunk in range(done + 1, train.num_chunks + 1):
            if signals is not None and signals.received:
                if previous is not None:
                    check_chunk(*previous)
                interrupt(chunk - 1)
            carry, metrics = compiled.advance(carry)  # dispatched; runs while the host checks the previous one
            if previous is not None:
                check_chunk(*previous)
            previous = (chunk, metrics)
            if chunk % train.chunks_per_eval:
                continue
            check_chunk(*previous)
            previous = None
            carry, row = compiled.evaluate(carry, metrics)
            elapsed = time.perf_counter() - start
            row = _to_host(row)
            row.update(step=int(row["step"]), sps=(train.step(chunk) - start_step) / max(elapsed, 1e-9),
                       wall_s=elapsed)
            if logger is not None:
                logger.log(row)
            progress.evaluation(row["step"], row["episode_return"])
            check(chunk, row)
            if checkpoints is not None and (chunk // train.chunks_per_eval % checkpoint_every == 0
                                            or chunk == train.num_chunks):
                checkpoints.save(chunk, carry)
    return carry, time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class Result:
    """What :func:`run` returns: the final ``carry`` (``carry.learner`` is the trained
    learner), the evaluation ``rows`` of the whole run, and its timings. ``start_step`` is
    the step a resumed run continued from (0 for a fresh one)."""

    carry: Any
    rows: list[dict]
    wall_s: float
    compile_s: float
    start_step: int


def run(train: Train, key, out: str | None = None, *, resume: bool = False, checkpoint_every: int = 1,
        checkpoint: bool = True, say: Callable[[str], None] = print, compiled: Compiled | None = None,
        signals=None) -> Result:
    """Trains ``train`` from ``key`` chunk by chunk, as ``fnrl train`` does.

    With ``out``, evaluation rows go to ``out/metrics.jsonl`` and TensorBoard and checkpoints to
    ``out/checkpoints`` (every ``checkpoint_every`` evaluations; the newest two kept); with
    ``resume``, the run continues from the newest usable checkpoint there (corrupt ones are
    reported through ``say`` and passed over) and ends bit-identical to an uninterrupted run.
    ``checkpoint=False`` keeps no checkpoints (a multi-process run, whose processes each hold
    only their shards). Without ``out`` nothing is written and the rows are only returned.
    SIGINT and SIGTERM stop the run after a checkpoint (:class:`Interrupted`). ``compiled``:
    the run's :class:`Compiled` programs, if already built; ``signals``: a
    :func:`stop_on_signals` object already in force (a signal received while compiling then
    stops the run before its first chunk, with a checkpoint of its start).

    Raises:
      NonFinite, Interrupted: see :func:`drive`.
      fnrl.checkpoint.CheckpointError: one line, when resuming from ``out`` holding
        checkpoints of which none is usable.
    """
    compiled = compiled or Compiled(train, key)
    with contextlib.nullcontext(signals) if signals is not None else stop_on_signals() as signals:
        if out is None:
            rows = _Rows()
            carry, wall_s = drive(train, compiled, compiled.init(key), logger=rows, signals=signals)
            return Result(carry, rows.rows, wall_s, compiled.seconds, 0)
        kept = Checkpoints(os.path.join(out, "checkpoints")) if checkpoint else contextlib.nullcontext()
        with kept as checkpoints:
            done = None
            if resume and checkpoints is not None:
                done, carry = checkpoints.restore_usable(compiled.carry_shape, report=say)
                checkpoints.discard_after(done)
            if done is None:
                carry, done = compiled.init(key), 0
            else:
                say(f"resuming {out} after step {train.step(done)}")
            members = [member_name(m) for m in train.members] if isinstance(train, Sweep) else None
            with RunLogger(out, resume_step=train.step(done) if resume else None, members=members) as logger:
                carry, wall_s = drive(train, compiled, carry, done, logger=logger, checkpoints=checkpoints,
                                      checkpoint_every=checkpoint_every, signals=signals)
    return Result(carry, read_metrics(out), wall_s, compiled.seconds, train.step(done))


class _Rows:
    """A logger that keeps the rows in memory (:func:`run` without ``out``)."""

    def __init__(self):
        self.rows: list[dict] = []

    def log(self, row: dict) -> None:
        self.rows.append(row)
