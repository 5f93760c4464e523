"""Run outputs: the metrics log (``metrics.jsonl`` and TensorBoard) and learning-curve plots.

A run directory written by ``fnrl train`` holds ``config.json`` (``{"algo", "env", "seed",
"config"}``, written at the start), ``metrics.jsonl`` (one JSON object per evaluation point,
appended as the run goes, with at least ``step``), TensorBoard event files
(``events.out.tfevents.*``; ``tensorboard --logdir`` over several run directories compares
them), and at the end ``summary.json`` and ``curve.png``.

Non-finite values: ``metrics.jsonl`` is strict JSON (``jq`` and every JSON reader take each
line), and JSON has no NaN or infinity, so a value that does not exist -- the mean return of
training episodes when none ended, a diverged loss -- is written as ``null`` (the non-finite
guard's message names the value that stopped a run). TensorBoard gets only finite values.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
from collections.abc import Sequence

import numpy as np

METRICS = "metrics.jsonl"

# TensorBoard tag group of each metric; every other metric is a training metric.
_GROUPS = {"episode_return": "eval", "sps": "perf", "wall_s": "perf"}


def _plain(value):
    """A NumPy or JAX scalar (what host callbacks deliver) as a Python number, an array as a
    list of them; others as is."""
    return value.tolist() if hasattr(value, "tolist") else value


def _finite_or_none(value):
    """``None`` for a NaN or infinite float (JSON has neither), elementwise in a list; any
    other value as is."""
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


class RunLogger:
    """Appends evaluation rows to ``out_dir/metrics.jsonl`` and to TensorBoard event files.

    ``metrics.jsonl`` is flushed after every row, so a killed process keeps every row it
    logged; TensorBoard's writer flushes every few seconds. ``log`` is thread-safe (host
    callbacks may arrive on another thread).

    ``resume_step``: the step of the checkpoint a resumed run continues from. Rows after it
    are dropped from ``metrics.jsonl`` (atomically; they will be logged again) and the
    TensorBoard writer purges events after it, so neither shows a step twice.

    ``members``: the names of the runs of a sweep (:mod:`fnrl.sweep`), whose rows hold a list
    of values per metric, one per member, in this order (the metrics every member shares, such
    as ``sps``, stay numbers); each member's TensorBoard events go to
    ``out_dir/tensorboard/<name>/``, so that TensorBoard overlays them as runs.
    """

    def __init__(self, out_dir: str, resume_step: int | None = None, members: Sequence[str] | None = None):
        from tensorboardX import SummaryWriter

        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, METRICS)
        if resume_step is not None and os.path.exists(path):
            _truncate(path, resume_step)
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")
        # After a resume, a new event file (its own name even within the same second) hides later steps.
        resumed = {} if resume_step is None else dict(purge_step=resume_step + 1,
                                                      filename_suffix=f".resume{resume_step}")
        directories = [out_dir] if members is None else [os.path.join(out_dir, "tensorboard", m) for m in members]
        self._writers = [SummaryWriter(d, flush_secs=5, **resumed) for d in directories]

    def log(self, row: dict) -> None:
        """Writes ``row`` (with an integer ``step``) as one strict-JSON line (non-finite numbers
        as ``null``) and its finite numbers as scalars."""
        row = {key: _finite_or_none(_plain(value)) for key, value in row.items()}
        step = int(row["step"])
        line = json.dumps(row, allow_nan=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            for i, writer in enumerate(self._writers):
                for key, value in row.items():
                    value = value[i] if isinstance(value, list) else value
                    if key != "step" and isinstance(value, (int, float)):
                        writer.add_scalar(f"{_GROUPS.get(key, 'train')}/{key}", value, step)

    def close(self) -> None:
        """Flushes and closes both logs."""
        with self._lock:
            self._file.close()
            for writer in self._writers:
                writer.close()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_lines(path: str) -> list[tuple[str, dict]]:
    """Each line of a metrics file with its row; a one-line ValueError if missing or corrupt."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file; expected a run directory written by `fnrl train`") from None
    parsed = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {number}: corrupt JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise ValueError(f"{path} line {number}: expected a JSON object with an integer 'step'")
        parsed.append((line, row))
    return parsed


def _truncate(path: str, last_step: int) -> None:
    """Rewrites ``path`` keeping only the lines with ``step <= last_step``, atomically."""
    kept = [line for line, row in _read_lines(path) if row["step"] <= last_step]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_metrics(out_dir: str) -> list[dict]:
    """The rows of ``out_dir/metrics.jsonl`` in step order (callbacks may log out of order)."""
    rows = [row for _, row in _read_lines(os.path.join(out_dir, METRICS))]
    return sorted(rows, key=lambda row: row["step"])


@dataclasses.dataclass(frozen=True)
class Curve:
    """One line of a plot: a metric's mean over ``runs`` runs at ``steps``, and its std (0 for one run)."""

    label: str
    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    runs: int


def _run_info(run_dir: str) -> dict:
    """``config.json`` of a run (or, for runs written before it existed, ``summary.json``,
    which holds the same keys), checked for ``algo``, ``env`` and ``config``."""
    for name in ("config.json", "summary.json"):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    info = json.load(f)
                info["config"] = dict(info["config"])
                if not (isinstance(info["algo"], str) and isinstance(info["env"], str)):
                    raise TypeError
                return info
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                raise ValueError(f"{path}: corrupt; expected a JSON object with algo, env and config") from None
    raise ValueError(f"{run_dir}: no config.json; expected a run directory written by `fnrl train`")


def _runs(run_dir: str, metric: str) -> list[tuple[dict, dict[int, float]]]:
    """``(identity, {step: value})`` of ``metric`` for each run in ``run_dir``: the run, or each
    member of a sweep (``members`` in its ``config.json``), whose identity is the config with the
    member's swept values. A one-line ValueError naming the metrics if ``metric`` is absent."""
    info = _run_info(run_dir)
    members = info.get("members") or [None]
    rows = read_metrics(run_dir)
    runs = []
    for i, member in enumerate(members):
        def value(row):
            v = row.get(metric)
            return v[i] if member is not None and isinstance(v, list) else v

        series = {row["step"]: float(value(row)) for row in rows if isinstance(value(row), (int, float))}
        if not series:
            available = sorted({k for row in rows for k, v in row.items()
                                if k != "step" and isinstance(v, (int, float, list))})
            raise ValueError(f"unknown metric {metric!r} in {os.path.join(run_dir, METRICS)}; "
                             f"available: {', '.join(available) or 'none'}")
        swept = {k: v for k, v in (member or {}).items() if k != "seed"}
        runs.append(({"algo": info["algo"], "env": info["env"], "config": {**info["config"], **swept}}, series))
    return runs


def group_runs(run_dirs: Sequence[str], metric: str = "episode_return") -> list[Curve]:
    """Groups runs that differ only in their seed; each group is one :class:`Curve`.

    A directory holding a sweep (``fnrl train --seeds/--sweep``) counts as its members. A
    group's curve is the mean and (population) standard deviation over its runs at the
    steps every run of the group evaluated at. Labels are ``"<algo> on <env>"``, plus the
    config fields that tell groups of the same algorithm and environment apart.
    """
    if not run_dirs:
        raise ValueError("no run directories given; pass one or more directories written by `fnrl train`")
    groups: dict[str, tuple[dict, list[dict[int, float]]]] = {}
    for run_dir in run_dirs:
        for identity, series in _runs(run_dir, metric):
            groups.setdefault(json.dumps(identity, sort_keys=True), (identity, []))[1].append(series)

    identities = [identity for identity, _ in groups.values()]
    curves = []
    for identity, runs in groups.values():
        label = _label(identity, identities)
        steps = sorted(set.intersection(*(set(series) for series in runs)))
        if not steps:
            raise ValueError(f"the runs of {label} share no evaluation step; cannot average them")
        values = np.array([[series[s] for s in steps] for series in runs])
        curves.append(Curve(label, np.array(steps), values.mean(0), values.std(0), len(runs)))
    return curves


def _label(identity: dict, identities: list[dict]) -> str:
    """``"<algo> on <env>"``, plus the config fields in which groups of that algo and env differ."""
    name = f"{identity['algo']} on {identity['env']}"
    configs = [other["config"] for other in identities
               if (other["algo"], other["env"]) == (identity["algo"], identity["env"])]
    differing = [k for k in identity["config"] if len({json.dumps(c.get(k)) for c in configs}) > 1]
    return " ".join([name] + [f"{k}={identity['config'][k]}" for k in differing])


def _draw(curves: Sequence[Curve], path: str, ylabel: str, title: str) -> None:
    """Writes ``curves`` against environment steps to ``path``, each with a ±std band if averaged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for curve in curves:
        label = f"{curve.label} ({curve.runs} runs, mean ± std)" if curve.runs > 1 else curve.label
        (line,) = ax.plot(curve.steps, curve.mean, marker="o", markersize=3, label=label)
        if curve.runs > 1:
            ax.fill_between(curve.steps, curve.mean - curve.std, curve.mean + curve.std,
                            color=line.get_color(), alpha=0.2)
    if any(curve.label for curve in curves):
        ax.legend(fontsize="small")
    ax.set(xlabel="environment steps", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_runs(run_dirs: Sequence[str], path: str, metric: str = "episode_return", title: str = "") -> None:
    """Overlays the runs in ``run_dirs`` (``fnrl plot``): seeds of one config as mean ± std.

    Raises a one-line ValueError for a directory that is not a run, a metric it lacks, runs of
    one group with no common step, or an output path whose directory does not exist.
    """
    if not os.path.isdir(os.path.dirname(path) or "."):
        raise ValueError(f"cannot write {path}: directory {os.path.dirname(path)} does not exist")
    curves = group_runs(run_dirs, metric)
    ylabel = "mean evaluation return" if metric == "episode_return" else metric
    _draw(curves, path, ylabel, title)
