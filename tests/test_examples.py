"""The scripts in examples/ run end to end (on a slice of their data)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs an example with seqtag.hf.trainer_loss wrapped, so that the loss the Trainer calls is recorded, then prints
# what the example computed (its globals) as one JSON line after the example's own output.
DRIVER = """
import json, runpy, sys
import seqtag.hf

plain, made, values = seqtag.hf.trainer_loss, [], []

def recording(name, **params):
    made.append([name, params])
    loss = plain(name, **params)
    def call(*args, **kwargs):
        value = loss(*args, **kwargs)
        values.append(float(value))
        return value
    return call

seqtag.hf.trainer_loss = recording
sys.argv = sys.argv[1:]
g = runpy.run_path(sys.argv[0], run_name="__main__")
print(json.dumps({"made": made, "values": values, "steps": g["trainer"].state.global_step, "labels": g["labels"],
                  "pred": g["pred"], "gold": [list(s.tags) for s in g["dev"]]}))
"""


@pytest.mark.slow
def test_trainer_focal_example_trains_with_focal_and_prints_the_f1_of_its_predictions(minilm_dir, tmp_path):
    from seqeval.metrics import f1_score

    env = {**os.environ, "PYTHONPATH": str(REPO), "TRANSFORMERS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", DRIVER, str(REPO / "examples" / "trainer_focal.py"), "--sentences",
                          "64", "--steps", "3", "--output-dir", str(tmp_path / "run")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    *_, printed, record = res.stdout.strip().splitlines()
    ran = json.loads(record)
    # the Trainer trained 3 steps, each with seqtag's focal loss (one micro-batch of 32 windows a step)
    assert ran["made"] == [["focal", {"gamma": 2.0}]]
    assert ran["steps"] == 3 and len(ran["values"]) == 3 and all(v == v and 0 < v < 1e3 for v in ran["values"])
    # every dev word got one tag, and the printed F1 is that of these tags
    assert [len(p) for p in ran["pred"]] == [len(g) for g in ran["gold"]] and len(ran["gold"]) == 64
    f1 = f1_score(ran["gold"], [[ran["labels"][i] for i in row] for row in ran["pred"]])
    assert re.fullmatch(r"dev entity F1: \d\.\d{4}", printed) and printed == f"dev entity F1: {f1:.4f}"
