"""The accelerate ``Accelerator`` every entry point uses (training, evaluation, prediction), and a description
of the hardware for the run record."""

from __future__ import annotations

import os
import platform

import torch

from seqtag.errors import SeqtagError


def make_accelerator(mixed_precision: str, grad_accum: int = 1):
    """An ``Accelerator`` for one process, one GPU, or several processes under ``accelerate launch``/``torchrun``.

    ``cpu=True`` when there is no GPU: a plain ``Accelerator()`` under torchrun on CPU would silently run
    independent rank-0 jobs instead of DDP over gloo.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise SeqtagError("train.mixed_precision=fp16 needs a GPU; on CPU use bf16 or no")
    if AcceleratorState._shared_state and PartialState().num_processes == 1:
        # a second run in the same single process (tests, notebooks): accelerate keeps its state in a
        # process-wide singleton that refuses a new mixed-precision setting, so start it afresh
        AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=grad_accum,
                       cpu=not torch.cuda.is_available())


def inference_precision(mixed_precision: str) -> str:
    """The precision to evaluate a run in: the one it was trained with, except fp16 on a machine without a GPU."""
    return "no" if mixed_precision == "fp16" and not torch.cuda.is_available() else mixed_precision


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
