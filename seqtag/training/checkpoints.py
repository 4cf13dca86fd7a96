"""Signals and checkpoints: SIGINT/SIGTERM stop after the current optimizer step with a resumable
checkpoint, written atomically for all processes (a second signal stops at once); resuming restores it."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import signal
from dataclasses import asdict, replace

import torch

from seqtag import runs
from seqtag.errors import Interrupted, SeqtagError
from seqtag.training.finish import write_info
from seqtag.training.state import Run, TrainState

log = logging.getLogger(__name__)


def resume(run: Run) -> None:
    """Restore model, optimizer, scheduler and every process's RNG states, and where training was.

    The checkpoint's files were checked before anything was loaded (:func:`seqtag.runs.check_run_dir`); what
    still fails to load here is damaged in a way those checks cannot see, and is reported the same way."""
    ckpt = runs.checkpoint_path(run.run_dir)
    try:
        run.accelerator.load_state(str(ckpt))
        run.state = TrainState(**json.loads((ckpt / "seqtag_state.json").read_text()))
    except (RuntimeError, OSError, ValueError, TypeError, KeyError, EOFError, pickle.UnpicklingError) as e:
        raise SeqtagError(f"the checkpoint in {ckpt} is damaged: {type(e).__name__}: {' '.join(str(e).split())[:300]}; "
                          f"{runs.checkpoint_fix(run.run_dir)}") from None
    run.checkpointed_step = run.state.global_step
    if run.main:
        # history records written after the checkpoint are of steps that will be trained again
        runs.truncate_history(run.run_dir / runs.HISTORY_FILE, run.state.global_step, run.state.epoch)
        log.info("resumed from %s at epoch %d, batch %d, step %d", ckpt, run.state.epoch + 1,
                 run.state.batch_in_epoch, run.state.global_step)


class StoppedAtOnce(KeyboardInterrupt):
    """A second SIGINT/SIGTERM while the first was being handled: training stops where it is. A KeyboardInterrupt,
    so that no ``except Exception`` in a library on the way swallows it; ``signum`` is the signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def install_signal_handlers(run: Run) -> dict:
    """SIGINT/SIGTERM: the first finishes the current optimizer step, saves a checkpoint and stops
    (:func:`stop_if_signalled`); a second stops at once. Returns the previous handlers."""

    def on_signal(signum, _frame) -> None:
        if run.stop_signal:
            raise StoppedAtOnce(stopped_at_once_message(run, signum), signum=int(signum))
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


def stopped_at_once_message(run: Run, signum: int) -> str:
    """What a second signal stopped, and what to do: resume from the checkpoint if one exists."""
    where = f"at epoch {run.state.epoch + 1}, step {run.state.global_step}"
    ckpt = runs.checkpoint_path(run.run_dir)
    if ckpt is not None:
        then = (f"the last resumable checkpoint is kept in {ckpt}. Continue with: seqtag train "
                f"{run.run_dir / runs.CONFIG_FILE} train.resume=true")
    else:
        then = f"no checkpoint had been saved: {without_checkpoint(run)}"
    return f"stopped at once by a second {signal.Signals(signum).name} {where}; {then}"


def _nothing_to_keep(run: Run) -> bool:
    return run.state.global_step == 0 and run.checkpointed_step is None and not run.cfg.train.resume


def without_checkpoint(run: Run) -> str:
    """What :func:`abandon` leaves of a run that stops before its first checkpoint, and what to do next."""
    if run.replaced is not None:
        return f"the run it was to replace is put back in {run.run_dir}"
    if _nothing_to_keep(run):
        return "no run directory is left behind, so the same command can simply be run again"
    return f"the run cannot be resumed; {runs.next_step(run.run_dir)}"


def abandon(run: Run, e: BaseException) -> None:
    """Leave the run directory as a run that failed or was interrupted should (main process):

    * an overwrite whose new run has no checkpoint or saved weights yet puts the old run back;
    * a run that failed before its first optimizer step, with nothing to resume from, leaves no directory, so
      the same command can simply be run again;
    * otherwise ``run_info.json`` says ``interrupted`` or ``failed``, with the first line of the message.
    """
    if run.replaced is not None:
        runs.restore_replaced(run.run_dir)
        run.replaced = None
    elif _nothing_to_keep(run):
        shutil.rmtree(run.run_dir, ignore_errors=True)
    else:
        interrupted = isinstance(e, (Interrupted, KeyboardInterrupt))
        write_info(run, status="interrupted" if interrupted else "failed",
                   error=str(e).split("\n")[0][:500] or type(e).__name__)


def save_checkpoint(run: Run) -> None:
    """Write ``checkpoints/last`` atomically: one temporary directory for all processes (each writes its own RNG
    state into it), renamed into place by the main process once every process has finished writing. The files
    get the permissions any new file gets (safetensors writes 0600).

    Every process writes into, and the main process renames, one directory: this assumes all processes see the
    same filesystem at ``train.output_dir`` (one machine, or a shared filesystem across machines); so does
    reading the best weights back at the end (:func:`seqtag.training.finish.load_best`)."""
    acc = run.accelerator
    tmp = run.run_dir / runs.CHECKPOINT_DIR / f".tmp-{run.state.global_step}"
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if run.main:
        runs.write_json_atomic(tmp / "seqtag_state.json", asdict(replace(run.state, elapsed_s=run.elapsed())))
        for f in tmp.rglob("*"):
            if f.is_file():
                runs.usual_permissions(f)
        runs.swap_in_checkpoint(run.run_dir, tmp)
        drop_replaced(run)
    acc.wait_for_everyone()
    run.checkpointed_step = run.state.global_step


def drop_replaced(run: Run) -> None:
    """The new run has its first checkpoint or saved weights: delete the old run ``train.overwrite`` set aside."""
    if run.main and run.replaced is not None:
        runs.drop_replaced(run.run_dir)
        run.replaced = None


