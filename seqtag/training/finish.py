"""The end of a run: the best weights scored on every split, the weights and tokenizer saved, the
records written (``metrics.json``, ``run_info.json``, the curves, the model card)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from seqtag import __version__, runs
from seqtag.config import to_dict
from seqtag.errors import SeqtagError
from seqtag.modeling import encoders
from seqtag.modeling.accel import hardware
from seqtag.modeling.crf import TRANSITIONS_FILE
from seqtag.modeling.heads import CRFTagger
from seqtag.modeling.span_head import SPAN_HEAD_FILE, SpanTagger
from seqtag.publish.card import render_card
from seqtag.training.budget import zero_f1_advice
from seqtag.training.plots import loss_label, plot_history
from seqtag.training.state import Run

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
"""The model card a finished run holds (:func:`seqtag.publish.card.render_card`); ``seqtag push`` uploads its own
rendering, with the repo id."""


def final_evaluation(run: Run, last_dev: tuple[int, dict] | None) -> runs.Metrics:
    """Scores of the best weights on every evaluation split. When the best epoch is the one that just ended in
    this process, the model already holds those weights and dev has just been evaluated on them: neither is
    repeated (a dev pass was ~4 % of a CoNLL epoch's run)."""
    run.accelerator.wait_for_everyone()
    in_memory = last_dev is not None and last_dev[0] == run.state.best_epoch
    if not in_memory:
        load_best(run)
    bs = run.cfg.train.eval_batch_size
    return {split: runs.SplitScores.from_dict(last_dev[1] if in_memory and split == "dev" else
                                              run.task.evaluate(run.model, split, run.accelerator, bs))
            for split in run.task.eval_splits}


def finish(run: Run, results: runs.Metrics) -> None:
    """Write metrics, curves, the finished run record and the model card (``README.md``, as ``seqtag push``
    renders it without a repo id); drop the checkpoint unless it is to be kept. A dev F1 of 0 after very few
    optimizer steps gets advice in the log (:func:`seqtag.training.budget.zero_f1_advice`)."""
    if run.main:
        runs.write_metrics(run.run_dir / runs.METRICS_FILE, results)
        if run.cfg.train.plot:
            plot_history(run.run_dir / runs.HISTORY_FILE, run.run_dir / runs.CURVES_FILE, run_name=run.run_dir.name,
                         loss=loss_label(run.cfg.loss.name, run.cfg.loss.params), model=run.cfg.model.name_or_path)
        write_info(run, status="finished")
        try:
            runs.write_text_atomic(run.run_dir / CARD_FILE, render_card(run.run_dir))
        except SeqtagError as e:  # the run is finished and usable; push renders the card again
            log.warning("could not write the model card %s: %s", CARD_FILE, e)
        if not run.cfg.train.keep_checkpoint:  # a finished run needs no resumable state (sweeps: saves disk)
            shutil.rmtree(run.run_dir / runs.CHECKPOINT_DIR, ignore_errors=True)
        dev = results.get("dev")
        advice = zero_f1_advice(dev.f1 if dev is not None else None, run.state.global_step, run.cfg.train)
        if advice:
            log.warning(advice)
    run.accelerator.wait_for_everyone()


def save_model(run: Run) -> None:
    """Save weights (safetensors), config and tokenizer at the top of the run directory, file by file atomically
    (a CRF head writes its transitions file among them: :meth:`seqtag.modeling.heads.CRFTagger.save_pretrained`;
    a span head its weights: :meth:`seqtag.modeling.span_head.SpanTagger.save_pretrained`)."""
    acc = run.accelerator
    acc.wait_for_everyone()
    if run.main:
        tmp = Path(tempfile.mkdtemp(dir=run.run_dir, prefix=".best-"))
        acc.unwrap_model(run.model).save_pretrained(tmp, safe_serialization=True)
        # the one saved state, whatever the calls since loading left (QA windows switch truncation on)
        encoders.clear_call_state(run.tokenizer).save_pretrained(tmp)
        for f in tmp.iterdir():
            if f.is_file():
                runs.usual_permissions(f)
            os.replace(f, run.run_dir / f.name)
        shutil.rmtree(tmp)
    acc.wait_for_everyone()


def load_best(run: Run) -> None:
    """Copy the saved best weights into the model in place, one tensor at a time (no second copy of the model
    in memory)."""
    from safetensors import safe_open

    unwrapped = run.accelerator.unwrap_model(run.model)
    path = run.run_dir / "model.safetensors"
    for f in (path, run.run_dir / TRANSITIONS_FILE) if isinstance(unwrapped, CRFTagger) else (path,):
        problem = runs.file_problem(f)
        if problem is not None:
            raise SeqtagError(f"{f} (the best weights) is damaged: {problem}; {runs.checkpoint_fix(run.run_dir)}")
    if isinstance(unwrapped, CRFTagger):  # the transitions from their own file, the encoder's weights below
        unwrapped.load_transitions(run.run_dir / TRANSITIONS_FILE)
        unwrapped = unwrapped.encoder
    if isinstance(unwrapped, SpanTagger):  # likewise the span head's weights
        unwrapped.load_head(run.run_dir / SPAN_HEAD_FILE)
        unwrapped = unwrapped.encoder
    params = unwrapped.state_dict(keep_vars=True)
    # read on the CPU and copy to the model's device ("cpu:0" under several CPU processes is not a device
    # safetensors accepts)
    with safe_open(str(path), framework="pt", device="cpu") as f:
        keys = set(f.keys())
        missing = sorted(set(params) - keys - set(getattr(unwrapped, "_tied_weights_keys", None) or []))
        unexpected = sorted(keys - set(params))
        if missing or unexpected:
            raise SeqtagError(f"{path} does not match the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        with torch.no_grad():
            for k in keys:
                params[k].copy_(f.get_tensor(k))


def write_info(run: Run, *, status: str, error: str | None = None) -> None:
    """``run_info.json`` through its schema (:class:`seqtag.runs.RunInfo`); the task adds its own fields."""
    cfg, state = run.cfg, run.state
    has_dev = "dev" in run.task.eval_splits
    info = runs.RunInfo(
        status=status, task=cfg.task, seqtag_version=__version__, torch_version=torch.__version__,
        hardware=hardware(), error=error,
        epochs=state.epoch, configured_epochs=cfg.train.epochs, global_steps=state.global_step,
        # without a dev split the saved weights are the last epoch's: no epoch was chosen and there is no dev F1
        best_epoch=state.best_epoch if has_dev else None,
        best_dev_f1=state.best_f1 if has_dev and state.best_epoch is not None else None,
        skipped_batches=state.skipped_batches, wall_time_s=round(run.elapsed(), 1),
        total_batch_size=run.total_batch, processes=run.accelerator.num_processes,
        mixed_precision=run.accelerator.mixed_precision, loss=runs.LossRecord(cfg.loss.name, dict(cfg.loss.params)),
        base_model=cfg.model.name_or_path, learning_rate=cfg.train.learning_rate, seed=cfg.train.seed,
        datasets=[v for v in (cfg.data.hub_dataset, cfg.data.train) if v], config=to_dict(cfg),
    )
    runs.write_run_info(run.run_dir, replace(info, **run.task.info))
