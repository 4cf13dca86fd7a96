"""pyproject.toml states the versions the code needs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def floor(requirement: str) -> tuple[int, ...]:
    """The ``>=`` version of ``requirement`` among pyproject's dependencies, as a tuple of ints."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(rf'^\s*"{requirement}>=([\d.]+)"', text, re.M)
    assert found, f"no {requirement}>= floor in pyproject.toml"
    return tuple(int(n) for n in found.group(1).split("."))


def test_the_torch_floor_has_fused_adamw_on_cpu():
    """The loop builds AdamW(fused=True) over CPU parameters when no GPU is present; torch 2.3 refuses that
    (fused was CUDA-only), 2.4 added the CPU kernels (pytorch/pytorch#123074)."""
    assert "fused=True" in (REPO / "seqtag" / "training" / "loop.py").read_text(encoding="utf-8")
    assert floor("torch") >= (2, 4)
