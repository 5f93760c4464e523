"""Progress display: bounded plain lines off a terminal, a rich bar on one, rates from the first update."""
import io
import re
import threading

import numpy as np

from fnrl import progress
from fnrl.progress import Progress


class _Clock:
    """Stands in for time.monotonic so that rates and intervals are exact."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_carry_steps_rate_return_and_eta(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    stream = io.StringIO()
    with Progress(100_000, stream=stream) as bar:
        clock.now += 60.0  # compilation: must not count against steps/s
        bar.update(np.int32(0))
        clock.now += 10.0
        bar.update(20_000)
        clock.now += 10.0
        bar.evaluation(np.int64(40_960), np.float32(187.34))
    # 40960 steps in 20 s since the first update; 59040 left at 2048 steps/s -> 28.8 s
    assert stream.getvalue() == "step 40960/100000 (40%)  2048 steps/s  return 187.3  eta 0:00:29\n"


def test_lines_are_bounded_however_often_update_is_called(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    stream = io.StringIO()
    evaluated = []
    with Progress(500_000, stream=stream, interval_s=30.0) as bar:
        for i in range(5000):  # 5000 updates over 250 s, an evaluation every 1000
            clock.now += 0.05
            bar.update(100 * i)
            if i % 1000 == 999:
                bar.evaluation(100 * i, float(i))
                evaluated.append(stream.getvalue().splitlines()[-1])
    lines = stream.getvalue().splitlines()
    assert [line.split("  ")[2] for line in evaluated] == [f"return {i}.0" for i in (999, 1999, 2999, 3999, 4999)]
    assert 5 < len(lines) <= 5 + 250 // 30  # one per evaluation, and at most one per interval besides
    assert all(re.fullmatch(r"step \d+/500000 \(\d+%\)  2000 steps/s  return (-|[\d.]+)  eta \d:\d\d:\d\d", line)
               for line in lines)


def test_before_any_rate_or_evaluation_fields_show_a_dash():
    stream = io.StringIO()
    with Progress(1000, stream=stream) as bar:
        bar.evaluation(0, float("nan"))
    assert stream.getvalue() == "step 0/1000 (0%)  - steps/s  return nan  eta -\n"


def test_updates_from_several_threads_keep_the_largest_step():
    stream = io.StringIO()
    with Progress(8000, stream=stream, interval_s=0.0) as bar:
        threads = [threading.Thread(target=lambda k=k: [bar.update(s) for s in range(k, 8001, 4)]) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bar.evaluation(7000, 1.0)  # an evaluation callback arriving late
    lines = stream.getvalue().splitlines()
    assert all(line.startswith("step ") for line in lines)  # no interleaved writes
    assert lines[-1].startswith("step 8000/8000 (100%)")


def test_terminal_shows_a_bar_with_steps_and_return():
    stream = _Terminal()
    with Progress(1000, stream=stream) as bar:
        bar.update(0)
        bar.update(500)
        bar.evaluation(600, 42.5)
    frames = re.split(r"[\r\n]", stream.getvalue())
    bars = [frame for frame in frames if "━" in frame]  # the bar, redrawn in place
    assert "step 600/1000 (60%)" in bars[-1] and "return 42.5" in bars[-1]
    assert "step 600/1000 (60%)" in "".join(frame for frame in frames if "━" not in frame)  # the evaluation line
