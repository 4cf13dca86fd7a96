"""The accelerate ``Accelerator`` every entry point uses (training, evaluation, prediction), and a description
of the hardware for the run record."""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path

import torch

from seqtag.errors import ConfigError, SeqtagError

log = logging.getLogger(__name__)


def bf16_is_emulated() -> bool:
    """Whether bf16 on this machine's CPU runs without native kernels: an x86 CPU for which torch reports no
    AVX-512 (``torch.backends.cpu.get_cpu_capability()`` is ``AVX2`` or ``DEFAULT``). bf16 matmuls there are
    converted to fp32 and back: a MiniLM training step under bf16 autocast took about 20x an fp32 one on a 2-core
    AMD EPYC with AVX2 (``python scripts/bench_precision.py``, docs/benchmarks.md).
    False with a GPU, and off x86 (where torch names other capabilities)."""
    if torch.cuda.is_available() or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    return not torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((line for line in text.splitlines() if line.startswith(("flags", "Features"))), "")
    return frozenset(line.partition(":")[2].split())


def resolve_precision(mixed_precision: str) -> str:
    """``train.mixed_precision=auto`` made concrete for this machine; other values pass through.

    bf16 on a GPU that supports it, fp16 on one that does not; on a CPU bf16 only with AMX (the ``amx_bf16`` flag),
    the one kind of CPU where bf16 autocast measured faster than fp32 (about 1.5x a MiniLM training step, a
    2-core Intel Xeon with AMX); fp32 elsewhere: bf16 was 0.58x fp32 speed on an AVX-512 Xeon without AMX and
    about 0.05x on an AVX2 AMD EPYC (docs/benchmarks.md).

    >>> resolve_precision("no"), resolve_precision("bf16")
    ('no', 'bf16')
    """
    if mixed_precision != "auto":
        return mixed_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if "amx_bf16" in cpu_flags() else "no"


LAUNCHER_PRECISION_ENV = "ACCELERATE_MIXED_PRECISION"
"""Where ``accelerate launch --mixed_precision X`` (or its config file) puts the precision it was asked for."""


def train_precision(configured: str) -> str:
    """The precision to train at: ``train.mixed_precision`` (``configured``) reconciled with ``accelerate launch``.

    ``accelerate launch`` passes its ``--mixed_precision`` (or its config file's) in the environment
    (:data:`LAUNCHER_PRECISION_ENV`), where an ``Accelerator`` made with an explicit precision, as seqtag makes
    it, would ignore it. So: with ``train.mixed_precision: auto`` the launcher's choice is followed; a config
    naming another precision than the launcher's is refused (:class:`ConfigError` naming both), never silently
    overridden. The launcher's ``no`` is not a choice: it is also what it sets when none was asked for, so the
    config decides then.

    >>> train_precision("bf16")  # no launcher, or one that asked for nothing
    'bf16'
    """
    launcher = os.environ.get(LAUNCHER_PRECISION_ENV, "no").lower()
    if launcher == "no" or launcher == configured:
        return configured
    if launcher not in ("bf16", "fp16"):
        raise ConfigError(f"accelerate launch --mixed_precision {launcher} ({LAUNCHER_PRECISION_ENV}={launcher}) is "
                          "not a precision seqtag trains at; launch with --mixed_precision bf16, fp16 or no, and set "
                          "train.mixed_precision in the config")
    if configured == "auto":
        return launcher
    raise ConfigError(f"train.mixed_precision is {configured} in the config but accelerate launch asked for "
                      f"--mixed_precision {launcher} ({LAUNCHER_PRECISION_ENV}={launcher}); make them agree: set "
                      f"train.mixed_precision={launcher} (or auto, which follows the launcher), or launch with "
                      f"--mixed_precision {configured}")


def check_precision(mixed_precision: str, setting: str = "train.mixed_precision") -> str:
    """``mixed_precision`` resolved for this machine (:func:`resolve_precision`), or a :class:`SeqtagError` naming
    ``setting`` (``train.mixed_precision``, ``--bf16``) when this machine cannot run it: fp16 without a GPU, bf16 on
    a GPU without bf16 (where torch's autocast raises a RuntimeError and accelerate a ValueError).

    >>> check_precision("no")
    'no'
    """
    resolved = resolve_precision(mixed_precision)
    flag = setting.startswith("--")
    given = setting if flag else f"{setting}={mixed_precision}"
    if resolved == "fp16" and not torch.cuda.is_available():
        raise SeqtagError(f"{given} needs a GPU; on a CPU use auto (fp32 here, bf16 on CPUs with AMX), bf16 "
                          "or no")
    if resolved == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        fix = f"run without {setting} (fp32)" if flag else f"use {setting}=fp16, or auto (fp16 on this GPU)"
        raise SeqtagError(f"{given} asks for bf16, which this GPU ({torch.cuda.get_device_name()}) does not support; "
                          f"{fix}")
    return resolved


def warn_if_bf16_emulated(mixed_precision: str) -> None:
    """Log a warning when ``mixed_precision`` (resolved) is bf16 and this CPU emulates it (:func:`bf16_is_emulated`)."""
    if mixed_precision == "bf16" and bf16_is_emulated():
        log.warning("bf16 on this CPU is emulated (torch reports %s, no AVX-512): it runs many times slower than "
                    "fp32 (about 20x for a training step on an AVX2 CPU). Use fp32: train.mixed_precision=no or auto, "
                    "and seqtag predict without --bf16.",
                    torch.backends.cpu.get_cpu_capability())


def make_accelerator(mixed_precision: str, grad_accum: int = 1, setting: str = "train.mixed_precision"):
    """An ``Accelerator`` for one process, one GPU, or several processes under ``accelerate launch``/``torchrun``.

    ``cpu=True`` when there is no GPU: a plain ``Accelerator()`` under torchrun on CPU would silently run
    independent rank-0 jobs instead of DDP over gloo. ``mixed_precision`` is checked (:func:`check_precision`,
    whose errors name ``setting``) and warned about (:func:`warn_if_bf16_emulated`).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DataLoaderConfiguration

    mixed_precision = check_precision(mixed_precision, setting)
    warn_if_bf16_emulated(mixed_precision)
    if AcceleratorState._shared_state and PartialState().num_processes == 1:
        # a second run in the same single process (tests, notebooks): accelerate keeps its state in a
        # process-wide singleton that refuses a new mixed-precision setting, so start it afresh
        AcceleratorState._reset_state(reset_partial_state=True)
    gpu = torch.cuda.is_available()
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=grad_accum, cpu=not gpu,
                       dataloader_config=DataLoaderConfiguration(non_blocking=gpu))


def inference_precision(mixed_precision: str) -> str:
    """The precision to evaluate a run in: the one it was trained with (``auto`` resolved on this machine), except
    fp16 on a machine without a GPU and bf16 on a GPU without bf16, which evaluate in fp32."""
    mixed_precision = resolve_precision(mixed_precision)
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        return "no"
    if mixed_precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return "no"
    return mixed_precision


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
