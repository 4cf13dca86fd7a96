"""The training loop: one function, top to bottom in the order things happen.

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
import math
import os
import platform
import signal
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from seqtag import __version__, runs
from seqtag.config import Config, dump_config, to_dict
from seqtag.errors import SeqtagError

log = logging.getLogger(__name__)


class TrainingStopped(SeqtagError):
    """Training stopped on purpose (non-finite loss); the last good checkpoint is kept."""


class Interrupted(SeqtagError):
    """SIGINT/SIGTERM: a resumable checkpoint was saved."""


def make_accelerator(mixed_precision: str, grad_accum: int):
    from accelerate import Accelerator

    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise SeqtagError("train.mixed_precision=fp16 needs a GPU; on CPU use bf16 or no")
    from accelerate.state import AcceleratorState, PartialState

    if AcceleratorState._shared_state and PartialState().num_processes == 1:
        # a second run in the same single process (tests, notebooks): accelerate keeps its state in a
        # process-wide singleton that refuses a new mixed-precision setting, so start it afresh
        AcceleratorState._reset_state(reset_partial_state=True)
    # cpu=True when there is no GPU: a plain Accelerator() under torchrun on CPU would run independent jobs
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=grad_accum,
                       cpu=not torch.cuda.is_available())


def param_groups(model, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only (``p.ndim >= 2``): never on biases and LayerNorm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def _dynamics(loss, logits, targets, entity_ids: list[int]) -> dict:
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


def train(cfg: Config) -> Path:
    """Train as the config says and return the finished run directory.

    Everything that can be wrong with the inputs (output directory, data, tags, model path) is found before the
    run directory is created or changed, so a failed start leaves nothing behind. Once training runs, a failure
    or an interruption leaves ``run_info.json`` with status ``failed`` or ``interrupted`` (never ``finished``).
    """
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from seqtag.data.batching import LengthGroupedBatches, collate
    from seqtag.losses import get_loss
    from seqtag.model import load_tokenizer
    from seqtag.tasks import setup_task

    t0 = time.time()
    tc = cfg.train
    run_dir = Path(tc.output_dir)
    # saved with resume/overwrite off, so re-running the saved config never deletes or continues by accident
    config_text = dump_config(replace(cfg, train=replace(tc, resume=False, overwrite=False)))
    runs.check_run_dir(run_dir, config_text, overwrite=tc.overwrite, resume=tc.resume)  # every process; writes nothing
    accelerator = make_accelerator(tc.mixed_precision, tc.grad_accum)
    main = accelerator.is_main_process
    set_seed(tc.seed)

    # ---- data, model, loss: a data or model error stops here, before the run directory is touched
    tokenizer = load_tokenizer(cfg.model)
    task = setup_task(cfg, tokenizer, accelerator)
    loss = get_loss(cfg.loss.name, **cfg.loss.params)
    sampler = LengthGroupedBatches(task.train_features["length"], tc.batch_size, shuffle=True, seed=tc.seed,
                                   group=tc.group_by_length)
    # A DataLoader draws a seed from its generator every time it is iterated; its own generator keeps that draw
    # off the global RNG, so a resumed run's dropout masks are those of an uninterrupted one.
    train_loader = DataLoader(task.train_features.select_columns(task.columns), batch_sampler=sampler,
                              collate_fn=partial(collate, pad_token_id=tokenizer.pad_token_id),
                              generator=torch.Generator().manual_seed(tc.seed))

    # ---- optimizer and schedule (the scheduler is stepped by hand, once per optimizer step)
    # fused AdamW (one kernel for all parameters, CPU and GPU): the unfused update was ~30 % of a MiniLM step
    # on CPU (torch.profiler, scripts/bench_train.py --profile); fused is ~20 % faster per step end to end
    optimizer = torch.optim.AdamW(param_groups(task.model, tc.weight_decay), lr=tc.learning_rate, fused=True)
    model, optimizer, train_loader = accelerator.prepare(task.model, optimizer, train_loader)
    steps_per_epoch = math.ceil(len(train_loader) / tc.grad_accum)
    total_steps = steps_per_epoch * tc.epochs if tc.max_steps is None else min(tc.max_steps, steps_per_epoch * tc.epochs)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(tc.warmup_ratio * total_steps), total_steps)
    accelerator.register_for_checkpointing(scheduler)
    total_batch = tc.batch_size * tc.grad_accum * accelerator.num_processes
    if main:
        log.info("training %d examples, %d epochs, %d optimizer steps, total batch %d (%d per device x %d "
                 "accumulation x %d processes), loss %s %s", len(task.train_features), tc.epochs, total_steps,
                 total_batch, tc.batch_size, tc.grad_accum, accelerator.num_processes, cfg.loss.name, cfg.loss.params)

    # ---- the run directory: created (or, to resume, tidied) only now that setup succeeded
    if main:
        runs.prepare_run_dir(run_dir, config_text, overwrite=tc.overwrite, resume=tc.resume)
    accelerator.wait_for_everyone()

    # ---- state, resume
    state = {"epoch": 0, "batch_in_epoch": 0, "global_step": 0, "best_f1": -1.0, "best_epoch": None,
             "epochs_without_improvement": 0, "skipped_batches": 0, "elapsed_s": 0.0}
    history = run_dir / runs.HISTORY_FILE
    if tc.resume:
        ckpt = runs.checkpoint_path(run_dir)
        accelerator.load_state(str(ckpt))  # model, optimizer, scheduler, RNG states of every process
        state.update(json.loads((ckpt / "seqtag_state.json").read_text()))
        if main:
            runs.truncate_history(history, state["global_step"], state["epoch"])  # steps done after the checkpoint
            log.info("resumed from %s at epoch %d, batch %d, step %d", ckpt, state["epoch"] + 1,
                     state["batch_in_epoch"], state["global_step"])
    elapsed_before = state["elapsed_s"]
    if main:
        _write_info(run_dir, cfg, status="running", state=state)

    def record(obj: dict) -> None:
        if main:
            with open(history, "a", encoding="utf-8") as f:
                f.write(json.dumps(obj) + "\n")

    saved_at: list[int] = []  # global step of the newest checkpoint written by this process

    def save_checkpoint() -> None:
        # one temporary directory for all processes (each writes its own RNG state into it), renamed into place
        # by the main process once every process has finished writing
        tmp = run_dir / runs.CHECKPOINT_DIR / f".tmp-{state['global_step']}"
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if main:
            state["elapsed_s"] = elapsed_before + time.time() - t0
            runs.write_json_atomic(tmp / "seqtag_state.json", state)
            runs.swap_in_checkpoint(run_dir, tmp)
        accelerator.wait_for_everyone()
        saved_at[:] = [state["global_step"]]

    def stop_if_signalled() -> None:
        """On SIGINT/SIGTERM (in any process): save a checkpoint unless one holds this exact state, and stop."""
        if not accelerator.reduce(torch.tensor([float(bool(stop_signal))], device=accelerator.device), "max").item():
            return
        if saved_at != [state["global_step"]]:
            save_checkpoint()
        raise Interrupted(f"stopped by a signal at epoch {state['epoch'] + 1}, step {state['global_step']}; a "
                          f"resumable checkpoint is saved in {run_dir / runs.CHECKPOINT_DIR / 'last'}. Continue with: "
                          f"seqtag train {run_dir / runs.CONFIG_FILE} train.resume=true")

    # ---- signals: the first one finishes the current optimizer step, saves and stops; a second stops at once
    stop_signal: list[int] = []

    def on_signal(signum, _frame) -> None:
        if stop_signal:
            raise KeyboardInterrupt
        stop_signal.append(signum)
        if main:
            log.warning("%s: stopping after this step and saving a checkpoint (send it again to stop at once)",
                        signal.Signals(signum).name)

    handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    bar = None
    last_dev: tuple[int, dict] | None = None
    try:
        done = state["global_step"] >= total_steps
        while state["epoch"] < tc.epochs and not done:
            epoch = state["epoch"]
            sampler.use_epoch(epoch)
            model.train()
            loader = accelerator.skip_first_batches(train_loader, state["batch_in_epoch"]) if state["batch_in_epoch"] else train_loader
            bar = tqdm(total=len(train_loader), initial=state["batch_in_epoch"], disable=not main,
                       desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch", dynamic_ncols=True)
            it = iter(loader)
            seen_tokens, t_epoch = 0, time.time()  # real (unpadded) input tokens, for the tokens/s readout
            while True:
                window = [b for _, b in zip(range(tc.grad_accum), it, strict=False)]  # next grad_accum batches
                if not window:
                    break
                # labelled tokens in the whole accumulation window, over all processes
                n_local = sum(int((b["labels"] >= 0).sum()) if "labels" in b else len(b["input_ids"]) for b in window)
                n_window = accelerator.reduce(torch.tensor([n_local], device=accelerator.device), "sum").item()
                step_loss, step_tokens, bad = 0.0, 0, False
                for b in window:
                    with accelerator.accumulate(model):
                        loss_sum, n_lab, logits, targets = task.loss_step(model, b, loss)
                        finite = accelerator.reduce(torch.isfinite(loss_sum.detach()).float().reshape(1), "min").item()
                        if finite < 1:
                            bad = True
                            if tc.nan_policy == "stop":
                                raise TrainingStopped(_nan_message(state, run_dir, task.describe_examples(b)))
                            loss_sum = loss_sum.nan_to_num(0.0, 0.0, 0.0) * 0.0
                        # accelerator.backward divides by grad_accum; multiply back so the sum over the window is
                        # (sum of token losses) / (labelled tokens in the window), and by the process count
                        # because DDP averages gradients over processes
                        scale = tc.grad_accum * accelerator.num_processes / max(n_window, 1)
                        accelerator.backward(loss_sum * scale)
                        if accelerator.sync_gradients and tc.max_grad_norm > 0:
                            accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
                        if not bad:
                            optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                    step_loss += loss_sum.item() if not bad else 0.0
                    step_tokens += int(n_lab)
                    seen_tokens += int(b["attention_mask"].sum()) * accelerator.num_processes
                state["batch_in_epoch"] += len(window)
                bar.update(len(window))
                if bad:
                    state["skipped_batches"] += 1
                    if main:
                        log.warning("skipped a batch with a non-finite loss at step %d (%d skipped so far)",
                                    state["global_step"] + 1, state["skipped_batches"])
                    stop_if_signalled()
                    continue
                lr = scheduler.get_last_lr()[0]  # the rate this step used
                scheduler.step()
                state["global_step"] += 1
                step = state["global_step"]
                if step % tc.log_every == 0 or step == 1:
                    # the loss per labelled token of the whole optimizer step, summed over all processes
                    totals = accelerator.reduce(torch.tensor([step_loss, float(step_tokens)], dtype=torch.float64,
                                                             device=accelerator.device), "sum").tolist()
                    rec = {"type": "step", "step": step, "epoch": epoch + 1, "loss": totals[0] / max(totals[1], 1.0),
                           "lr": lr, "labelled_tokens": n_window,
                           "tokens_per_s": round(seen_tokens / max(time.time() - t_epoch, 1e-9), 1),
                           "time_s": round(elapsed_before + time.time() - t0, 2)}
                    if tc.dynamics:
                        rec.update(_dynamics(loss, logits.detach(), targets, task.info.get("entity_label_ids", [])))
                    record(rec)
                    bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}", tok_s=f"{rec['tokens_per_s']:.0f}")
                if step >= total_steps:
                    done = True
                    break
                stop_if_signalled()
            bar.close()

            # ---- end of epoch: evaluate on dev, keep the best model
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
            metrics = task.evaluate(model, "dev", accelerator, tc.eval_batch_size) if "dev" in task.eval_splits else {}
            last_dev = (state["epoch"], metrics)  # the weights in memory and what dev made of them
            f1 = metrics.get("f1", 0.0)
            record({"type": "epoch", "epoch": state["epoch"], "step": state["global_step"], "dev": metrics,
                    "time_s": round(elapsed_before + time.time() - t0, 2)})
            if main:
                log.info("epoch %d: dev f1 %.4f", state["epoch"], f1)
            if f1 > state["best_f1"] or "dev" not in task.eval_splits:
                state.update(best_f1=f1, best_epoch=state["epoch"], epochs_without_improvement=0)
                _save_model(accelerator, model, tokenizer, run_dir)
            else:
                state["epochs_without_improvement"] += 1
            if tc.save_every_epoch or done:
                save_checkpoint()
            if tc.early_stopping_patience and state["epochs_without_improvement"] >= tc.early_stopping_patience:
                if main:
                    log.info("early stopping: no dev improvement for %d epochs", tc.early_stopping_patience)
                break
            if state["epoch"] < tc.epochs and not done:
                stop_if_signalled()

        # ---- final evaluation with the best weights. When the best epoch is the one that just ended in this
        # process, the model already holds those weights and dev has just been evaluated on them: neither is
        # repeated (a dev pass was ~4 % of a CoNLL epoch's run).
        accelerator.wait_for_everyone()
        in_memory = last_dev is not None and last_dev[0] == state["best_epoch"]
        if not in_memory:
            _load_best(accelerator, model, run_dir)
        results = {split: last_dev[1] if in_memory and split == "dev" else
                   task.evaluate(model, split, accelerator, tc.eval_batch_size) for split in task.eval_splits}
    except BaseException as e:
        if bar is not None:
            bar.close()  # so the error starts on a line of its own
        if main:
            interrupted = isinstance(e, (Interrupted, KeyboardInterrupt))
            _write_info(run_dir, cfg, status="interrupted" if interrupted else "failed", state=state,
                        error=str(e).split("\n")[0][:500] or type(e).__name__)
        raise
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)

    if main:
        runs.write_json_atomic(run_dir / runs.METRICS_FILE, results)
        state["elapsed_s"] = elapsed_before + time.time() - t0
        if tc.plot:
            from seqtag.plots import plot_history

            plot_history(history, run_dir / runs.CURVES_FILE)
        _write_info(run_dir, cfg, status="finished", state=state, task=task, total_batch=total_batch,
                    processes=accelerator.num_processes)
        if not tc.keep_checkpoint:  # a finished run needs no resumable state (sweeps: saves disk)
            import shutil

            shutil.rmtree(run_dir / runs.CHECKPOINT_DIR, ignore_errors=True)
    accelerator.wait_for_everyone()
    if cfg.hub.repo_id and main:
        from seqtag.hub import push_run

        push_run(run_dir, cfg.hub.repo_id, private=cfg.hub.private)
    return run_dir


def _nan_message(state: dict, run_dir: Path, examples: list[str]) -> str:
    ckpt = runs.checkpoint_path(run_dir)
    if ckpt is not None:
        kept = (f"the last good checkpoint ({ckpt}) is kept: continue from it with seqtag train "
                f"{run_dir / runs.CONFIG_FILE} train.resume=true (after changing what caused this)")
    else:
        kept = "no checkpoint had been saved yet"
    shown = " | ".join(examples[:4]) or "(not available)"
    return (f"non-finite (NaN or infinite) loss at epoch {state['epoch'] + 1}, optimizer step "
            f"{state['global_step'] + 1}, batch {state['batch_in_epoch'] + 1} of the epoch; {kept}. The batch's examples "
            f"begin: {shown}. Lower train.learning_rate, use train.mixed_precision=no, check the loss parameters, or "
            f"set train.nan_policy=skip to skip such batches (they are counted in run_info.json)")


def _save_model(accelerator, model, tokenizer, run_dir: Path) -> None:
    """Save weights (safetensors), config and tokenizer at the top of the run directory, file by file atomically."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=".best-"))
        accelerator.unwrap_model(model).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            os.replace(f, run_dir / f.name)
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()


def _load_best(accelerator, model, run_dir: Path) -> None:
    """Copy the saved best weights into ``model`` in place, one tensor at a time (no second copy of the model
    in memory)."""
    from safetensors import safe_open

    unwrapped = accelerator.unwrap_model(model)
    params = unwrapped.state_dict(keep_vars=True)
    path = run_dir / "model.safetensors"
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


def _write_info(run_dir: Path, cfg: Config, *, status: str, state: dict | None = None, task=None,
                total_batch: int | None = None, processes: int | None = None, error: str | None = None) -> None:
    state = state or {}
    info = {
        "status": status, "task": cfg.task, "seqtag_version": __version__,
        "epochs": state.get("epoch"), "configured_epochs": cfg.train.epochs, "global_steps": state.get("global_step"),
        "best_epoch": state.get("best_epoch"), "best_dev_f1": state.get("best_f1"),
        "skipped_batches": state.get("skipped_batches", 0),
        "total_batch_size": total_batch, "processes": processes,
        "wall_time_s": round(state.get("elapsed_s", 0.0), 1), "hardware": hardware(),
        "mixed_precision": cfg.train.mixed_precision, "loss": {"name": cfg.loss.name, "params": cfg.loss.params},
        "base_model": cfg.model.name_or_path, "learning_rate": cfg.train.learning_rate, "seed": cfg.train.seed,
        "datasets": [v for v in (cfg.data.hub_dataset, cfg.data.train) if v],
        "torch_version": torch.__version__,
    }
    if error is not None:
        info["error"] = error
    if task is not None:
        info.update({k: v for k, v in task.info.items() if k != "entity_label_ids"})
        info["train_examples"] = task.info.get("train_examples", len(task.train_features))
    info["config"] = to_dict(cfg)
    runs.write_json_atomic(Path(run_dir) / runs.INFO_FILE, info)
