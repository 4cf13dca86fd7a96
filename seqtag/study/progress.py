"""How long a sweep takes: the estimate printed before it starts, and the progress line before each run.

The pace (seconds per optimizer step) is measured, never assumed: the wall time over the optimizer steps that the
finished runs of the sweep directory record in their ``run_info.json``. That time is the run's training with its
dev evaluations and the final dev and test scores; it leaves out the start of each ``seqtag train`` process
(imports, loading the model and the data), so the estimate runs a little short. A directory with no finished run
has no pace: the sweep prints its estimate once its first run has finished.

Pure, except :func:`measured_pace` (reads run directories) and :func:`planned_steps` (reads the training file).

>>> estimate_line(12, 3, 240, Pace(0.5, runs=3, steps=720, source="runs/sweep/runs"))
'12 runs to train (3 already done), about 2,880 optimizer steps; estimated 24 min at 0.50 s/step (from 3 finished runs in runs/sweep/runs: run_info.json wall time over optimizer steps, evaluation included)'
>>> progress_line(4, 15, "focal_gamma2-lr2e-4-s1", elapsed_s=730, left_s=2400)
'run 4 of 15: focal_gamma2-lr2e-4-s1 (elapsed 12 min, about 40 min left)'
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seqtag.config import Config
from seqtag.data.ner import read_train
from seqtag.runs import is_finished_run, read_run_info
from seqtag.training.budget import optimizer_steps


@dataclass(frozen=True)
class Pace:
    """Seconds per optimizer step, and what it was measured on."""

    s_per_step: float
    runs: int  # finished runs measured
    steps: int  # their optimizer steps, together
    source: str  # the directory that holds them

    @property
    def steps_per_run(self) -> int:
        """The mean optimizer steps of the runs measured (what a run takes when the config cannot say)."""
        return round(self.steps / self.runs)

    def describe(self) -> str:
        return (f"from {self.runs} finished run{'s' * (self.runs != 1)} in {self.source}: run_info.json wall time "
                f"over optimizer steps, evaluation included")


def measured_pace(runs_dir: str | Path) -> Pace | None:
    """The pace of the finished runs in ``runs_dir`` (their summed ``wall_time_s`` over their summed
    ``global_steps``); None when no finished run took a step. Re-decoded runs have no ``run_info.json`` and are
    not counted."""
    runs_dir = Path(runs_dir)
    seconds, steps, n = 0.0, 0, 0
    for run_dir in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        if run_dir.is_dir() and is_finished_run(run_dir):
            info = read_run_info(run_dir)
            if info.global_steps > 0:
                seconds, steps, n = seconds + info.wall_time_s, steps + info.global_steps, n + 1
    return Pace(seconds / steps, n, steps, str(runs_dir)) if n else None


def planned_steps(cfg: Config) -> int | None:
    """The optimizer steps one run of ``cfg`` takes on one process: ``train.max_steps`` or ``train.epochs`` passes
    over the training sentences, a batch of ``train.batch_size`` each (a sentence longer than ``data.max_length``
    is more than one window, so the count is a floor); None for a QA or Hub-dataset run, whose count needs the
    tokenized data."""
    if cfg.task != "ner" or cfg.data.format == "hub":
        return None
    return optimizer_steps(math.ceil(len(read_train(cfg.data)) / cfg.train.batch_size), cfg.train)


def duration(seconds: float) -> str:
    """``12 min``, ``3 h 05 min``: whole minutes, rounded.

    >>> duration(29), duration(731), duration(3 * 3600 + 5 * 60 + 10)
    ('0 min', '12 min', '3 h 05 min')
    """
    minutes = math.floor(seconds / 60 + 0.5)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def estimate_line(to_train: int, done: int, steps_per_run: int | None, pace: Pace | None) -> str:
    """What a sweep says before it starts (and, when it had no pace then, after its first run).

    >>> estimate_line(4, 0, 240, None)
    '4 runs to train (0 already done), about 960 optimizer steps; the time estimate follows the first run (no finished run to measure s/step on yet)'
    >>> estimate_line(1, 5, 240, Pace(0.25, runs=5, steps=1200, source="d"))[:75]
    '1 run to train (5 already done), about 240 optimizer steps; estimated 1 min'
    """
    head = f"{to_train} run{'s' * (to_train != 1)} to train ({done} already done)"
    if steps_per_run is not None:
        head += f", about {to_train * steps_per_run:,} optimizer steps"
    left = time_left(to_train, steps_per_run, pace)
    if left is None:
        return f"{head}; the time estimate follows the first run (no finished run to measure s/step on yet)"
    return f"{head}; estimated {duration(left)} at {pace.s_per_step:.2f} s/step ({pace.describe()})"


def time_left(runs_to_train: int, steps_per_run: int | None, pace: Pace | None) -> float | None:
    """Seconds of training ahead: runs x steps per run x seconds per step; None without a pace or a step count.

    >>> time_left(3, 1250, Pace(0.4, runs=2, steps=2500, source="d")), time_left(3, None, None)
    (1500.0, None)
    """
    if pace is None or steps_per_run is None:
        return None
    return max(runs_to_train, 0) * steps_per_run * pace.s_per_step


def progress_line(k: int, n: int, name: str, elapsed_s: float, left_s: float | None) -> str:
    """The line before run ``k`` of ``n``: time since the sweep started and, once a pace is known, the training
    time still ahead (this run included).

    >>> progress_line(1, 6, "cross_entropy-s1", 0, None)
    'run 1 of 6: cross_entropy-s1 (elapsed 0 min, time left known after the first run)'
    """
    left = f"about {duration(left_s)} left" if left_s is not None else "time left known after the first run"
    return f"run {k} of {n}: {name} (elapsed {duration(elapsed_s)}, {left})"


class SweepProgress:
    """What one sweep says about its time: the estimate (:meth:`estimate`), the line before each run
    (:meth:`before`), and the estimate again once its first run gave it a pace (:meth:`trained`). ``clock`` gives
    seconds (tests pass a fake one)."""

    def __init__(self, runs_dir: str | Path, to_train: int, done: int, steps_per_run: int | None,
                 clock: Callable[[], float] = time.monotonic):
        self.runs_dir, self.to_train, self.done, self.clock = Path(runs_dir), to_train, done, clock
        self.pace = measured_pace(self.runs_dir)
        self.steps_per_run = steps_per_run if steps_per_run is not None or self.pace is None else self.pace.steps_per_run
        self.started = clock()

    def estimate(self) -> str:
        return estimate_line(self.to_train, self.done, self.steps_per_run, self.pace)

    def before(self, k: int, n: int, name: str, trains: bool = True) -> str:
        """The progress line before run ``k`` of ``n`` (``trains``: it is trained, not decoded again, so its own
        training counts in the time left)."""
        left = time_left(max(self.to_train, int(trains)), self.steps_per_run, self.pace)
        return progress_line(k, n, name, self.clock() - self.started, left)

    def trained(self, finished: bool) -> str | None:
        """A training run ended: count it and measure the pace again. Returns the estimate when this run gave the
        sweep its first pace, else None."""
        self.to_train = max(self.to_train - 1, 0)
        self.done += int(finished)
        first = self.pace is None
        self.pace = measured_pace(self.runs_dir) or self.pace
        if self.steps_per_run is None and self.pace is not None:
            self.steps_per_run = self.pace.steps_per_run
        return self.estimate() if first and self.pace is not None else None

    def drop(self, runs: int) -> None:
        """``runs`` counted to train will not run (settings not repeated with the other seeds)."""
        self.to_train = max(self.to_train - runs, 0)
