"""fp16 with a loss scaler, on the CPU: the loop's handling of ``GradScaler`` steps and of windows it skips.

seqtag refuses fp16 without a GPU (accelerate would silently run fp32 there: it makes no scaler on a CPU), so
these tests build the accelerator by hand: accelerate's own ``Accelerator(mixed_precision="fp16", cpu=True)``
given torch's CPU ``GradScaler`` and native autocast, which is what a GPU run gets with ``torch.amp.GradScaler("cuda")``
(the model runs under fp16 autocast on the CPU, its gradients are scaled, unscaled for clipping, checked for
inf/NaN and the step skipped when they hold one).
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from seqtag.config import from_dict
from seqtag.training.loop import train
from tests.tiny import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def use_cpu_scaler(monkeypatch, **scaler_args) -> list:
    """Make the loop's accelerator fp16 with a CPU ``GradScaler(**scaler_args)``; return the accelerators made."""
    import seqtag.tasks.checks as checks
    import seqtag.training.loop as loop

    made = []

    def make_accelerator(mixed_precision, grad_accum=1):
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
        acc = Accelerator(mixed_precision="fp16", gradient_accumulation_steps=grad_accum, cpu=True)
        acc.scaler = torch.amp.GradScaler("cpu", **scaler_args)  # what accelerate makes on a GPU
        acc.native_amp = True  # so prepare() wraps the forward in fp16 autocast and clipping unscales
        made.append(acc)
        return acc

    monkeypatch.setattr(loop, "make_accelerator", make_accelerator)
    # the start checks refuse fp16 on a CPU, as they should for users: let this stand-in through
    monkeypatch.setattr(checks, "check_precision", lambda mixed_precision, setting="train.mixed_precision": "fp16")
    return made


def poison(monkeypatch, at_batch: int) -> None:
    """Make the loss of training micro-batch ``at_batch`` (1-based over the run) NaN."""
    import seqtag.tasks.ner as ner

    real, calls = ner.loss_step, [0]

    def loss_step(model, batch, loss):
        calls[0] += 1
        loss_sum, n, logits, targets = real(model, batch, loss)
        return (loss_sum * float("nan") if calls[0] == at_batch else loss_sum), n, logits, targets

    monkeypatch.setattr(ner, "loss_step", loss_step)


def _run(tmp_path, **train_args):
    cfg = tiny_config(tmp_path, n_test=0, train={"epochs": 1, "mixed_precision": "fp16", "learning_rate": 3e-3,
                                                  **train_args})
    run = train(from_dict(cfg))
    steps = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if '"type": "step"' in x]
    return run, json.loads((run / "run_info.json").read_text()), steps


def test_a_skipped_window_leaves_the_scaler_clean(tmp_path, monkeypatch):
    """nan_policy=skip under fp16: the skipped window neither unscales nor steps, so the next window clips and
    steps as usual (an unscaled but unstepped window makes the next unscale_() fail)."""
    made = use_cpu_scaler(monkeypatch, init_scale=2.0**8)
    poison(monkeypatch, at_batch=3)
    run, info, steps = _run(tmp_path, nan_policy="skip")
    assert made[0].scaler.get_scale() == 2.0**8  # the scaler found no inf of its own: every other window stepped
    assert (info["status"], info["skipped_batches"], info["global_steps"]) == ("finished", 1, 5)
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5]
    assert all(torch.isfinite(w).all() for w in load_file(run / "model.safetensors").values())


def test_the_schedule_advances_only_when_the_optimizer_stepped(tmp_path, monkeypatch):
    """A step the scaler skips (inf gradients: a scale of 2^40 overflows fp16 at once, then backs off to 2^10)
    is no optimizer step: the learning rate stays, no step is logged or counted, no batch is called skipped."""
    made = use_cpu_scaler(monkeypatch, init_scale=2.0**40, backoff_factor=2.0**-30)
    run, info, steps = _run(tmp_path)
    assert made[0].scaler.get_scale() == 2.0**10  # exactly one window overflowed
    assert (info["global_steps"], info["skipped_batches"]) == (5, 0)  # 24 sentences / 4 = 6 windows
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5]
    # linear decay over the 6 planned steps, no warmup: the first real step runs at the peak rate
    assert [s["lr"] for s in steps] == pytest.approx([3e-3 * (6 - k) / 6 for k in range(5)])
    assert all(torch.isfinite(w).all() for w in load_file(run / "model.safetensors").values())
