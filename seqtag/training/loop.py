"""The training loop: :func:`train` reads top to bottom in the order things happen; each step it takes is a named
function below it.

It runs unchanged on one CPU, one GPU, or several processes under ``accelerate launch`` / ``torchrun``.
Only the main process writes files and shows progress.

Loss normalisation (one rule, here): a micro-batch's loss is the **sum** over its labelled tokens divided by
the number of labelled tokens in the whole accumulation window across all processes, so an optimizer step
minimises the mean loss per labelled token of everything it saw, whatever the batch padding, accumulation or
process count.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from seqtag import runs
from seqtag.config import Config
from seqtag.data.batching import LengthGroupedBatches, collate, loader_settings
from seqtag.errors import TrainingStopped
from seqtag.losses import get_loss
from seqtag.modeling.accel import make_accelerator, train_precision
from seqtag.modeling.heads import crf_of
from seqtag.modeling.loading import load_tokenizer
from seqtag.tasks import setup_task
from seqtag.tasks.checks import check_loaded_model, check_start, saved_config_text
from seqtag.training.budget import optimizer_steps
from seqtag.training.checkpoints import (
    abandon,
    drop_replaced,
    install_signal_handlers,
    resume,
    save_checkpoint,
    stop_if_signalled,
)
from seqtag.training.finish import final_evaluation, finish, save_model, write_info
from seqtag.training.plots import loss_label
from seqtag.training.state import Run

log = logging.getLogger(__name__)


def train(cfg: Config) -> Path:
    """Train as the config says and return the finished run directory.

    Everything that can be wrong with the inputs (output directory, data, tags, model path, a damaged checkpoint)
    is found before the run directory is created or changed, so a failed start leaves nothing behind. Once
    training runs, a failure or an interruption leaves ``run_info.json`` with status ``failed`` or ``interrupted``
    (never ``finished``), except before anything is worth keeping (:func:`seqtag.training.checkpoints.abandon`): an
    overwrite then puts the old run back, a new run leaves no directory.
    """
    run = start(cfg)
    tc = cfg.train
    handlers = install_signal_handlers(run)
    last_dev: tuple[int, dict] | None = None
    try:
        done = run.state.global_step >= run.total_steps
        while run.state.epoch < tc.epochs and not done:
            done = train_epoch(run)
            dev = end_epoch(run, done)
            last_dev = (run.state.epoch, dev)  # the weights in memory and what dev made of them
            if tc.early_stopping_patience and run.state.epochs_without_improvement >= tc.early_stopping_patience:
                if run.main:
                    log.info("early stopping: no dev improvement for %d epochs", tc.early_stopping_patience)
                break
            if run.state.epoch < tc.epochs and not done:
                stop_if_signalled(run)
        results = final_evaluation(run, last_dev)
    except BaseException as e:
        if run.main:
            abandon(run, e)
        raise
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        if run.lock is not None:
            run.lock.close()  # the run directory's lock (see seqtag.runs.lock_run_dir)
    finish(run, results)
    return run.run_dir


def start(cfg: Config) -> Run:
    """Check the output directory, load data and model, build the optimizer; only then create (or tidy, to
    resume) the run directory and restore a checkpoint. A data or model error stops before anything is written."""
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from transformers import get_linear_schedule_with_warmup

    tc = cfg.train
    run_dir = Path(tc.output_dir)
    config_text = saved_config_text(cfg)
    for note in check_start(cfg, read_labels=False):  # every process; reads only (what `seqtag validate` checks)
        log.debug(note)
    accelerator = make_accelerator(train_precision(tc.mixed_precision), tc.grad_accum)  # follows accelerate launch
    set_seed(tc.seed)

    tokenizer = load_tokenizer(cfg.model)
    task = setup_task(cfg, tokenizer, accelerator)
    check_loaded_model(cfg, task.model)  # a Hub model's position limit, when its config was not cached
    loss = get_loss(cfg.loss.name, **cfg.loss.params)
    sampler = LengthGroupedBatches(task.train_features["length"], tc.batch_size, shuffle=True, seed=tc.seed,
                                   group=tc.group_by_length)
    # A DataLoader draws a seed from its generator every time it is iterated; its own generator keeps that draw
    # off the global RNG, so a resumed run's dropout masks are those of an uninterrupted one.
    feed = loader_settings(accelerator.device.type)  # GPU: widths a multiple of 8, pinned memory; CPU: neither
    train_loader = DataLoader(task.train_features.select_columns(task.columns), batch_sampler=sampler,
                              collate_fn=partial(collate, pad_token_id=tokenizer.pad_token_id,
                                                 pad_to_multiple_of=feed.pad_to_multiple_of,
                                                 max_length=cfg.data.max_length),
                              pin_memory=feed.pin_memory, generator=torch.Generator().manual_seed(tc.seed))

    # fused AdamW (one kernel for all parameters, CPU and GPU): the unfused update was ~30 % of a MiniLM step
    # on CPU (torch.profiler, scripts/bench_train.py --profile); fused is ~20 % faster per step end to end
    optimizer = torch.optim.AdamW(param_groups(task.model, tc.weight_decay, tc.crf_learning_rate),
                                  lr=tc.learning_rate, fused=True)
    model, optimizer, train_loader = accelerator.prepare(task.model, optimizer, train_loader)
    total_steps = optimizer_steps(len(train_loader), tc)
    # the scheduler is stepped by hand, once per optimizer step
    scheduler = get_linear_schedule_with_warmup(optimizer, int(tc.warmup_ratio * total_steps), total_steps)
    accelerator.register_for_checkpointing(scheduler)
    run = Run(cfg=cfg, run_dir=run_dir, accelerator=accelerator, task=task, loss=loss, model=model,
              optimizer=optimizer, scheduler=scheduler, sampler=sampler, train_loader=train_loader,
              tokenizer=tokenizer, total_steps=total_steps,
              total_batch=tc.batch_size * tc.grad_accum * accelerator.num_processes)
    if run.main:
        log.info("training %d examples, %d epochs, %d optimizer steps, total batch %d (%d per device x %d "
                 "accumulation x %d processes), %s, precision %s", len(task.train_features), tc.epochs, total_steps,
                 run.total_batch, tc.batch_size, tc.grad_accum, accelerator.num_processes, trained_on(cfg),
                 precision_label(accelerator.mixed_precision, tc.mixed_precision))
        run.lock = runs.prepare_run_dir(run_dir, config_text, overwrite=tc.overwrite, resume=tc.resume)
        replaced = runs.replaced_path(run_dir)
        run.replaced = replaced if tc.overwrite and replaced.is_dir() else None
    try:
        accelerator.wait_for_everyone()
        if tc.resume:
            resume(run)
        if run.main:
            write_info(run, status="running")
    except BaseException as e:
        if run.main:
            abandon(run, e)
            run.lock.close()
        raise
    return run


def trained_on(cfg: Config) -> str:
    """What the model is trained to minimise, for the log: the CRF's own loss, or the configured one.

    >>> from seqtag.config import from_dict
    >>> trained_on(from_dict({"model": {"name_or_path": "m", "head": "crf"}, "data": {"train": "t.txt"}}))
    'loss: the CRF sequence negative log-likelihood'
    >>> trained_on(from_dict({"model": {"name_or_path": "m"}, "data": {"train": "t.txt"},
    ...                       "loss": {"name": "focal", "gamma": 2.0}}))
    'loss: focal (gamma=2.0)'
    """
    if cfg.task == "ner" and cfg.model.head == "crf":
        return "loss: the CRF sequence negative log-likelihood"
    return f"loss: {loss_label(cfg.loss.name, cfg.loss.params)}"


def precision_label(resolved: str, configured: str) -> str:
    """The precision training runs at, and what it was resolved from.

    >>> precision_label("no", "auto"), precision_label("bf16", "bf16")
    ('fp32 (mixed_precision: auto)', 'bf16')
    """
    name = "fp32" if resolved == "no" else resolved
    return f"{name} (mixed_precision: {configured})" if configured != resolved else name


def param_groups(model, weight_decay: float, crf_learning_rate: float | None = None) -> list[dict]:
    """Weight decay on matrices only (``p.ndim >= 2``): never on biases and LayerNorm gains, nor on a CRF head,
    whose scores train at their own rate (``train.crf_learning_rate``).

    The CRF's transition scores form a ``(C, C)`` matrix but play the part of biases: they are added to scores,
    not multiplied with activations, and decaying them would pull every move towards "no preference" (0), a
    prior nobody asked for; so the CRF's transitions, start and end scores are not decayed. Their own rate: Adam
    moves a parameter by about the learning rate per step, so at an encoder's 5e-5 the transitions would move
    by less than 0.1 in a few thousand steps and the CRF would stay at its initial (all-zero, constrained)
    scores. Both rates follow the same warmup and decay.
    """
    crf = crf_of(model)
    own = {id(p) for p in crf.parameters()} if crf is not None else set()
    params = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    if crf is not None:
        groups.append({"params": list(crf.parameters()), "weight_decay": 0.0,
                       **({"lr": crf_learning_rate} if crf_learning_rate is not None else {})})
    return groups


def train_epoch(run: Run) -> bool:
    """Train from where the epoch stands to its end (or to ``total_steps``); True when ``total_steps`` is reached."""
    from tqdm.auto import tqdm

    tc, state = run.cfg.train, run.state
    run.sampler.use_epoch(state.epoch)
    run.model.train()
    loader = run.accelerator.skip_first_batches(run.train_loader, state.batch_in_epoch) if state.batch_in_epoch else run.train_loader
    bar = tqdm(total=len(run.train_loader), initial=state.batch_in_epoch, disable=not run.main,
               desc=f"epoch {state.epoch + 1}/{tc.epochs}", unit="batch", dynamic_ncols=True)
    batches = iter(loader)
    seen_tokens, t_epoch = 0, time.time()  # real (unpadded) input tokens, for the tokens/s readout
    try:
        while window := [b for _, b in zip(range(tc.grad_accum), batches, strict=False)]:  # next grad_accum batches
            step = optimizer_step(run, window)
            state.batch_in_epoch += len(window)
            bar.update(len(window))
            if step is None:  # a non-finite loss under nan_policy=skip
                state.skipped_batches += 1
                if run.main:
                    log.warning("skipped a batch with a non-finite loss at step %d (%d skipped so far)",
                                state.global_step + 1, state.skipped_batches)
                stop_if_signalled(run)
                continue
            seen_tokens += step.input_tokens
            if not step.stepped:  # fp16: the loss scaler found inf/NaN gradients, lowered its scale, kept the weights
                if run.main:
                    log.debug("the loss scaler skipped the update at step %d (inf/NaN gradients)", state.global_step + 1)
                stop_if_signalled(run)
                continue
            lr = run.scheduler.get_last_lr()[0]  # the rate this step used
            run.scheduler.step()
            state.global_step += 1
            if state.global_step % tc.log_every == 0 or state.global_step in (1, run.total_steps):
                rec = log_step(run, step, lr, seen_tokens / max(time.time() - t_epoch, 1e-9))
                bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{lr:.2e}", tok_s=f"{rec['tokens_per_s']:.0f}")
            if state.global_step >= run.total_steps:
                return True
            stop_if_signalled(run)
        return False
    finally:
        bar.close()  # also on errors, so a message starts on a line of its own


@dataclass
class StepResult:
    """One accumulation window whose losses were all finite, summed over all processes."""

    stepped: bool  # False when the fp16 loss scaler found inf/NaN gradients and skipped the update
    loss_sum: float  # summed loss of the window's labelled tokens
    tokens: int  # labelled tokens of the window (the normaliser)
    input_tokens: int  # real (unpadded) input tokens of the window, for the tokens/s readout
    logits: torch.Tensor  # of this process's last micro-batch (N, C), for the dynamics diagnostics
    targets: torch.Tensor


def optimizer_step(run: Run, window: list[dict]) -> StepResult | None:
    """One optimizer step over an accumulation window of micro-batches; None when it was skipped (non-finite
    loss under ``train.nan_policy=skip``).

    Every process runs the forward and backward pass of every micro-batch, so DDP's gradient all-reduce always
    has all processes; then the window is judged in one all-reduce of ``(non-finite flag per process and
    micro-batch, loss sum, labelled tokens, input tokens)``, read back to the host once. (The flags are summed:
    accelerate's ``reduce`` knows only ``sum``, ``mean`` and ``max`` and sums for any other name.) A non-finite
    loss in any process's micro-batch stops every process (``nan_policy=stop``) or drops the window on every
    process (``skip``): its gradients, NaN everywhere after the all-reduce, are zeroed without clipping,
    unscaling or stepping, so the weights and an fp16 loss scaler stay exactly as they were. The only other
    collective is the window's labelled-token count, needed before the first backward pass; nothing else is
    read back per micro-batch.

    Clipping and ``optimizer.step()`` run once, after the window's last backward pass. (The window's
    micro-batches are fetched before the first one runs, so in an epoch's last window accelerate already knows
    the data loader is exhausted and synchronises every micro-batch: a step after each would update the weights
    more than once per window.) Under fp16 the loss scaler may still skip the update (inf/NaN gradients):
    :attr:`StepResult.stepped` says whether the weights moved, read from the scaler's scale, which drops exactly
    when it skips. (accelerate's ``optimizer_step_was_skipped`` stays False with the fused AdamW used here: the
    scaler hands the inf check to the fused kernel and always calls its ``step``.)
    """
    tc, acc = run.cfg.train, run.accelerator
    n_local = torch.zeros(1, dtype=torch.float64, device=acc.device)
    for b in window:
        n_local += (b["labels"] >= 0).sum() if "labels" in b else len(b["input_ids"])
    n_window = acc.reduce(n_local, "sum")[0]
    # accelerator.backward divides by grad_accum; multiply back so the sum over the window is (sum of token losses)
    # / (labelled tokens in the window), and by the process count because DDP averages gradients over processes
    scale = tc.grad_accum * acc.num_processes / n_window.clamp_min(1)
    # flags (process, micro-batch) first, then loss sum, labelled tokens, input tokens; summed over processes
    width = tc.grad_accum * acc.num_processes
    stats = torch.zeros(width + 3, dtype=torch.float64, device=acc.device)
    for i, b in enumerate(window):
        with acc.accumulate(run.model):
            loss_sum, n_lab, logits, targets = run.task.loss_step(run.model, b, run.loss)
            loss = loss_sum.detach()
            stats[acc.process_index * tc.grad_accum + i] = (~torch.isfinite(loss)).double()
            stats[width] += loss.double()
            stats[width + 1] += n_lab
            stats[width + 2] += b["attention_mask"].sum()
            acc.backward(loss_sum * scale.to(loss_sum.dtype))
    totals = acc.reduce(stats, "sum").tolist()
    flagged = [k for k in range(width) if totals[k] > 0]
    if flagged:
        process, i = divmod(min(flagged, key=lambda k: (k % tc.grad_accum, k)), tc.grad_accum)
        run.optimizer.zero_grad(set_to_none=True)
        if tc.nan_policy == "stop":
            examples = run.task.describe_examples(window[i]) if process == acc.process_index else []
            raise TrainingStopped(nan_message(run, examples, run.state.batch_in_epoch + i + 1,
                                              process if acc.num_processes > 1 else None))
        return None
    scaler = getattr(acc, "scaler", None)  # a GradScaler under fp16, else None
    scale_before = scaler.get_scale() if scaler is not None else None
    if acc.sync_gradients and tc.max_grad_norm > 0:
        acc.clip_grad_norm_(run.model.parameters(), tc.max_grad_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    stepped = scaler is None or scaler.get_scale() >= scale_before
    loss_total, tokens, input_tokens = totals[width:]
    return StepResult(stepped, loss_total, int(tokens), int(input_tokens), logits.detach(), targets)


def log_step(run: Run, step: StepResult, lr: float, tokens_per_s: float) -> dict:
    """Append a step record to ``history.jsonl``: the loss per labelled token of the whole optimizer step over
    all processes, and (``train.dynamics``) the loss-weight diagnostics of the main process's last micro-batch."""
    rec = {"type": "step", "step": run.state.global_step, "epoch": run.state.epoch + 1,
           "loss": step.loss_sum / max(step.tokens, 1), "lr": lr, "labelled_tokens": step.tokens,
           "tokens_per_s": round(tokens_per_s, 1), "time_s": round(run.elapsed(), 2)}
    if run.cfg.train.dynamics:
        rec.update(dynamics(run.loss, step.logits, step.targets, run.task.entity_label_ids))
    record(run, rec)
    return rec


def dynamics(loss, logits, targets, entity_ids: list[int]) -> dict:
    """Loss-weight diagnostics of one micro-batch: mean logit, mean weight and share of weights below 0.01,
    split by gold O versus entity tokens."""
    with torch.no_grad():
        keep = targets >= 0
        lg, tg = logits[keep].float(), targets[keep]
        w = loss.weights(lg, tg)
        is_ent = torch.isin(tg, torch.tensor(entity_ids, device=tg.device)) if entity_ids else torch.zeros_like(tg, dtype=torch.bool)
        fin = torch.isfinite(lg)  # QA pointer logits are -inf at masked positions
        out = {"mean_logit": lg[fin].mean().item()}
        for name, m in (("o", ~is_ent), ("entity", is_ent)):
            if m.any():
                out[f"weight_mean_{name}"] = w[m].mean().item()
                out[f"weight_below_0.01_{name}"] = (w[m] < 0.01).float().mean().item()
        return out


def record(run: Run, obj: dict) -> None:
    if run.main:
        with open(run.run_dir / runs.HISTORY_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(obj) + "\n")


def end_epoch(run: Run, done: bool) -> dict:
    """Evaluate on dev, save the weights if they are the best so far, write a checkpoint; return dev's scores.

    With ``train.eval_every_epoch=false`` dev is evaluated (and the weights saved) after the last epoch only, so
    the final weights are the run's result whatever dev said before. Without a dev split every evaluated epoch's
    weights are saved (``run_info.json`` then records no best epoch and no best dev F1)."""
    state = run.state
    state.epoch += 1
    state.batch_in_epoch = 0
    evaluate = run.cfg.train.eval_every_epoch or done or state.epoch >= run.cfg.train.epochs
    has_dev = "dev" in run.task.eval_splits
    metrics = (run.task.evaluate(run.model, "dev", run.accelerator, run.cfg.train.eval_batch_size)
               if evaluate and has_dev else {})
    f1 = metrics.get("f1", 0.0)
    record(run, {"type": "epoch", "epoch": state.epoch, "step": state.global_step, "dev": metrics,
                 "time_s": round(run.elapsed(), 2)})
    if evaluate:
        if run.main and has_dev:
            log.info("epoch %d: dev f1 %.4f", state.epoch, f1)
        elif run.main:
            log.info("epoch %d: no dev split (data.dev is not set), so nothing chooses the best epoch: the weights of "
                     "this epoch are saved, and the run's result is its last epoch", state.epoch)
        if f1 > state.best_f1 or not has_dev:
            state.best_f1, state.best_epoch, state.epochs_without_improvement = f1, state.epoch, 0
            save_model(run)
            drop_replaced(run)
        else:
            state.epochs_without_improvement += 1
    if run.cfg.train.save_every_epoch or done:
        save_checkpoint(run)
    return metrics


def nan_message(run: Run, examples: list[str], batch: int, process: int | None = None) -> str:
    """``batch``: the micro-batch's number in the epoch (1-based); ``process``: the process whose micro-batch it was,
    when there are several (``examples`` are empty on the others)."""
    state = run.state
    ckpt = runs.checkpoint_path(run.run_dir)
    if ckpt is not None:
        kept = (f"the last good checkpoint ({ckpt}) is kept: continue from it with seqtag train "
                f"{run.run_dir / runs.CONFIG_FILE} train.resume=true (after changing what caused this)")
    else:
        kept = "no checkpoint had been saved yet"
    where = "" if process is None else f" in process {process}"
    shown = " | ".join(examples[:4]) or (f"(shown by process {process})" if process is not None else "(not available)")
    return (f"non-finite (NaN or infinite) loss at epoch {state.epoch + 1}, optimizer step "
            f"{state.global_step + 1}, batch {batch} of the epoch{where}; {kept}. The batch's examples "
            f"begin: {shown}. Lower train.learning_rate, use train.mixed_precision=no, check the loss parameters, or "
            f"set train.nan_policy=skip to skip such batches (they are counted in run_info.json)")
