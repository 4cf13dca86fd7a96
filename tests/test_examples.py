"""The scripts in examples/ run end to end (on a slice of their data)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_trainer_focal_example_trains_and_prints_f1(minilm_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRANSFORMERS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, str(REPO / "examples" / "trainer_focal.py"), "--sentences", "64",
                          "--steps", "3", "--output-dir", str(tmp_path / "run")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    f1 = re.fullmatch(r"dev entity F1: (\d\.\d{4})", res.stdout.strip().splitlines()[-1])
    assert f1 and 0.0 <= float(f1.group(1)) <= 1.0, res.stdout[-2000:]
    assert "'train_loss'" in res.stdout + res.stderr  # the Trainer ran its steps with the focal loss
