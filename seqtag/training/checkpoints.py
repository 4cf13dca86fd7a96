"""Signals and checkpoints: SIGINT/SIGTERM stop after the current optimizer step with a resumable
checkpoint, written atomically for all processes; resuming restores it."""

from __future__ import annotations

import json
import logging
import signal
from dataclasses import asdict, replace

import torch

from seqtag import runs
from seqtag.errors import Interrupted
from seqtag.training.state import Run, TrainState

log = logging.getLogger(__name__)


def resume(run: Run) -> None:
    """Restore model, optimizer, scheduler and every process's RNG states, and where training was."""
    ckpt = runs.checkpoint_path(run.run_dir)
    run.accelerator.load_state(str(ckpt))
    run.state = TrainState(**json.loads((ckpt / "seqtag_state.json").read_text()))
    run.checkpointed_step = run.state.global_step
    if run.main:
        # history records written after the checkpoint are of steps that will be trained again
        runs.truncate_history(run.run_dir / runs.HISTORY_FILE, run.state.global_step, run.state.epoch)
        log.info("resumed from %s at epoch %d, batch %d, step %d", ckpt, run.state.epoch + 1,
                 run.state.batch_in_epoch, run.state.global_step)


def install_signal_handlers(run: Run) -> dict:
    """SIGINT/SIGTERM: the first finishes the current optimizer step, saves a checkpoint and stops
    (:func:`stop_if_signalled`); a second stops at once. Returns the previous handlers."""

    def on_signal(signum, _frame) -> None:
        if run.stop_signal:
            raise KeyboardInterrupt
        run.stop_signal.append(signum)
        if run.main:
            log.warning("%s: stopping after this step and saving a checkpoint (send it again to stop at once)",
                        signal.Signals(signum).name)

    return {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}


def stop_if_signalled(run: Run) -> None:
    """If any process received a signal: save a checkpoint unless one holds this exact state, and stop."""
    acc = run.accelerator
    if not acc.reduce(torch.tensor([float(bool(run.stop_signal))], device=acc.device), "max").item():
        return
    if run.checkpointed_step != run.state.global_step:
        save_checkpoint(run)
    signum = run.stop_signal[0] if run.stop_signal else signal.SIGINT  # the signal may have reached another process
    raise Interrupted(f"stopped by {signal.Signals(signum).name} at epoch {run.state.epoch + 1}, step "
                      f"{run.state.global_step}; a "
                      f"resumable checkpoint is saved in {run.run_dir / runs.CHECKPOINT_DIR / 'last'}. Continue with: "
                      f"seqtag train {run.run_dir / runs.CONFIG_FILE} train.resume=true", signum=int(signum))


def save_checkpoint(run: Run) -> None:
    """Write ``checkpoints/last`` atomically: one temporary directory for all processes (each writes its own RNG
    state into it), renamed into place by the main process once every process has finished writing."""
    acc = run.accelerator
    tmp = run.run_dir / runs.CHECKPOINT_DIR / f".tmp-{run.state.global_step}"
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if run.main:
        runs.write_json_atomic(tmp / "seqtag_state.json", asdict(replace(run.state, elapsed_s=run.elapsed())))
        runs.swap_in_checkpoint(run.run_dir, tmp)
    acc.wait_for_everyone()
    run.checkpointed_step = run.state.global_step


