"""The state of one training run: :class:`TrainState` (where training is, saved with every checkpoint)
and :class:`Run` (the live objects the loop's steps share)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqtag.config import Config
from seqtag.data.batching import LengthGroupedBatches
from seqtag.tasks import TaskSetup


@dataclass
class TrainState:
    """Where training is; saved with every checkpoint (``seqtag_state.json``) and restored on resume."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # micro-batches of the current epoch already trained on
    global_step: int = 0  # optimizer steps taken
    best_f1: float = -1.0  # best dev F1 so far (-1: none yet)
    best_epoch: int | None = None
    epochs_without_improvement: int = 0
    skipped_batches: int = 0  # accumulation windows skipped for a non-finite loss
    elapsed_s: float = 0.0  # training time before this process started (resumed runs)


@dataclass
class Run:
    """The live objects of one training run, passed to the steps of :func:`train`."""

    cfg: Config
    run_dir: Path
    accelerator: Any
    task: TaskSetup
    loss: Any
    model: Any
    optimizer: Any
    scheduler: Any
    sampler: LengthGroupedBatches
    train_loader: Any
    tokenizer: Any
    total_steps: int
    total_batch: int
    state: TrainState = field(default_factory=TrainState)
    started: float = field(default_factory=time.time)
    checkpointed_step: int | None = None  # global step of the newest checkpoint this process wrote
    stop_signal: list[int] = field(default_factory=list)  # signals received (the handler appends)
    lock: Any = None  # the main process's exclusive lock on the run directory, held while training
    replaced: Path | None = None  # the old run train.overwrite set aside, until this one's first checkpoint

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def elapsed(self) -> float:
        return self.state.elapsed_s + time.time() - self.started
