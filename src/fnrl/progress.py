"""Training progress on the host: ``fnrl train`` feeds it between the chunks of a run
(:mod:`fnrl.runner`); a host callback from inside a jitted run can feed it too.

On a terminal, a live bar (rich) with environment steps, steps/s, the latest evaluation
return and the time left; evaluation results also print as lines above the bar. Elsewhere
(CI, a redirected log), plain lines such as::

    step 40960/100000 (41%)  1234 steps/s  return 187.3  eta 0:00:48

one per evaluation and at most one per ``interval_s`` seconds otherwise, however often
``update`` is called. rich rather than tqdm: it is thread-safe, redraws from its own
thread at a fixed rate (so ``update`` only records a number), and prints lines above a
live bar without tearing it.

Steps/s count from the first ``update``, not from construction: the first update comes
after compilation, which can take many seconds.
"""
from __future__ import annotations

import datetime
import sys
import threading
import time
from typing import TextIO

import numpy as np


class Progress:
    """A progress display for ``total_steps`` environment steps written to ``stream``.

    ``update(step)`` and ``evaluation(step, episode_return)`` take what ``jax.debug.callback``
    passes (NumPy scalars are fine) and may be called from any thread. Use as a context
    manager: the bar is drawn between ``__enter__`` and ``__exit__``. Off a terminal,
    ``interval_s`` is the least time between two lines that no evaluation asked for.
    """

    def __init__(self, total_steps: int, stream: TextIO | None = None, interval_s: float = 30.0):
        self._total = int(total_steps)
        self._stream = sys.stderr if stream is None else stream
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._step = 0
        self._return: str | None = None
        self._start: tuple[float, int] | None = None  # (time, step) of the first update
        self._last_line = 0.0
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        if self._stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as Bar

            console = Console(file=self._stream, force_terminal=True)
            self._bar = Bar(BarColumn(), TextColumn("{task.description}", markup=False), console=console,
                            refresh_per_second=2)
            self._task = self._bar.add_task(self._line(time.monotonic()), total=self._total)
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, step) -> None:
        """Records that ``step`` environment steps are done; cheap."""
        now = time.monotonic()
        with self._lock:
            self._advance(int(step), now)
            if self._bar is None and now - self._last_line >= self._interval_s:
                self._write(self._line(now), now)

    def evaluation(self, step, episode_return) -> None:
        """Records an evaluation result at ``step`` (one return, or one per run of a sweep);
        prints it as a line."""
        now = time.monotonic()
        with self._lock:
            self._return = _returns(episode_return)
            self._advance(int(step), now)
            self._write(self._line(now), now)

    def _advance(self, step: int, now: float) -> None:
        if self._start is None:
            self._start = (now, step)
            self._last_line = now  # nothing worth a line yet: no rate
        self._step = max(self._step, step)  # callbacks from several devices may arrive out of order
        if self._bar is not None:
            self._bar.update(self._task, completed=self._step, description=self._line(now))

    def _write(self, line: str, now: float) -> None:
        if self._bar is not None:
            self._bar.console.print(line, markup=False, highlight=False)
        else:
            self._stream.write(line + "\n")
            self._stream.flush()
        self._last_line = now

    def _line(self, now: float) -> str:
        """``step S/T (P%)  R steps/s  return G  eta H:MM:SS``; ``-`` for what is not known yet."""
        percent = 100 * self._step // max(self._total, 1)
        parts = [f"step {self._step}/{self._total} ({percent}%)"]
        elapsed = now - self._start[0] if self._start else 0.0
        rate = (self._step - self._start[1]) / elapsed if elapsed > 0 else 0.0
        parts.append(f"{rate:.0f} steps/s" if rate > 0 else "- steps/s")
        parts.append(f"return {self._return or '-'}")
        eta = datetime.timedelta(seconds=round(max(self._total - self._step, 0) / rate)) if rate > 0 else "-"
        parts.append(f"eta {eta}")
        return "  ".join(parts)


def _returns(episode_return) -> str:
    """``187.3``, or for the runs of a sweep ``187.3 mean (min 150.2, max 200.0, 8 runs)``."""
    values = [float(x) for x in np.ravel(episode_return)]
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} mean (min {min(values):.1f}, max {max(values):.1f}, {len(values)} runs)"
