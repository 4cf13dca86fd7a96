"""Tests for seqtag.modeling.accel: the warning for bf16 on a CPU that has no native bf16 kernels, ``auto``, fp16
refused on a CPU, and the precision ``accelerate launch`` asks for."""

from __future__ import annotations

import logging

import pytest
import torch

from seqtag.errors import ConfigError, SeqtagError
from seqtag.modeling import accel


class FakeAccelerator:
    """Stands in for accelerate's: a real one changes process-wide state that later tests would inherit."""

    def __init__(self, mixed_precision, gradient_accumulation_steps, cpu, dataloader_config):
        self.mixed_precision, self.cpu, self.non_blocking = mixed_precision, cpu, dataloader_config.non_blocking


@pytest.fixture(autouse=True)
def fake_accelerator(monkeypatch):
    monkeypatch.setattr("accelerate.Accelerator", FakeAccelerator)


@pytest.mark.parametrize("machine, capability, emulated", [("x86_64", "AVX2", True), ("x86_64", "DEFAULT", True),
                                                            ("x86_64", "AVX512", False), ("AMD64", "AVX2", True),
                                                            ("aarch64", "DEFAULT", False)])
def test_bf16_is_emulated_on_x86_without_avx512(monkeypatch, machine, capability, emulated):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accel.platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert accel.bf16_is_emulated() is emulated


@pytest.mark.parametrize("capability, precision, warned", [("AVX2", "bf16", True), ("AVX2", "no", False),
                                                           ("AVX512", "bf16", False)])
def test_make_accelerator_warns_for_emulated_bf16(monkeypatch, caplog, capability, precision, warned):
    monkeypatch.setattr(accel.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    with caplog.at_level(logging.WARNING, logger="seqtag.modeling.accel"):
        accelerator = accel.make_accelerator(precision)
    assert accelerator.mixed_precision == precision
    messages = [r.getMessage() for r in caplog.records if r.name == "seqtag.modeling.accel"]
    if warned:
        assert messages == ["bf16 on this CPU is emulated (torch reports AVX2, no AVX-512): it runs many times slower "
                            "than fp32 (about 20x for a training step on an AVX2 CPU). Use fp32: train.mixed_precision=no or "
                            "auto, and seqtag predict without --bf16."]
    else:
        assert messages == []


@pytest.mark.parametrize("flags, expected", [({"avx2", "amx_bf16", "avx512_bf16"}, "bf16"), ({"avx2"}, "no"),
                                             ({"avx512f", "avx512_bf16"}, "no"), (set(), "no")])
def test_auto_precision_on_cpu_is_bf16_only_with_amx(monkeypatch, flags, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(accel, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")  # no emulation warning
    assert accel.resolve_precision("auto") == expected
    assert accel.inference_precision("auto") == expected
    assert accel.make_accelerator("auto").mixed_precision == expected
    for explicit in ("no", "bf16", "fp16"):
        assert accel.resolve_precision(explicit) == explicit


@pytest.mark.parametrize("bf16_supported, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_precision_on_a_gpu(monkeypatch, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_supported)
    assert accel.resolve_precision("auto") == expected


def test_cpu_flags_reads_proc_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse avx2 amx_bf16\n\nprocessor\t: 1\n")
    real_path = accel.Path
    monkeypatch.setattr(accel, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert accel.cpu_flags() == {"fpu", "sse", "avx2", "amx_bf16"}
    monkeypatch.setattr(accel, "Path", lambda p: tmp_path / "missing")
    assert accel.cpu_flags() == frozenset()


def test_fp16_on_a_cpu_is_refused_naming_the_alternatives(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SeqtagError, match=r"fp16 needs a GPU; on a CPU use auto \(fp32 here, bf16 on CPUs with AMX\), "
                                          r"bf16 or no"):
        accel.make_accelerator("fp16")


@pytest.mark.parametrize("gpu", [False, True])
def test_batches_are_copied_without_blocking_only_to_a_gpu(monkeypatch, gpu):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    acc = accel.make_accelerator("no")
    assert (acc.cpu, acc.non_blocking) == (not gpu, gpu)


def test_train_precision_follows_an_explicit_launcher_and_refuses_a_conflict(monkeypatch):
    monkeypatch.delenv(accel.LAUNCHER_PRECISION_ENV, raising=False)
    assert [accel.train_precision(p) for p in ("no", "bf16", "fp16", "auto")] == ["no", "bf16", "fp16", "auto"]
    monkeypatch.setenv(accel.LAUNCHER_PRECISION_ENV, "no")  # also what accelerate launch sets when asked for nothing
    assert [accel.train_precision(p) for p in ("no", "bf16", "auto")] == ["no", "bf16", "auto"]
    monkeypatch.setenv(accel.LAUNCHER_PRECISION_ENV, "bf16")  # accelerate launch --mixed_precision bf16
    assert accel.train_precision("auto") == "bf16" and accel.train_precision("bf16") == "bf16"
    with pytest.raises(ConfigError) as e:
        accel.train_precision("no")
    assert str(e.value) == ("train.mixed_precision is no in the config but accelerate launch asked for --mixed_precision "
                            "bf16 (ACCELERATE_MIXED_PRECISION=bf16); make them agree: set train.mixed_precision=bf16 "
                            "(or auto, which follows the launcher), or launch with --mixed_precision no")
    with pytest.raises(ConfigError, match="train.mixed_precision is fp16 in the config .* --mixed_precision bf16"):
        accel.train_precision("fp16")
    monkeypatch.setenv(accel.LAUNCHER_PRECISION_ENV, "fp8")
    with pytest.raises(ConfigError, match="--mixed_precision fp8 .* is not a precision seqtag trains at"):
        accel.train_precision("auto")
