"""scripts/bench_train.py compares like with like: the tuned Trainer at the precision that is fast on the host, speed-ups
between configurations of one precision, and a matmul ceiling measured only for the precisions that run, capped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import _bench_common as bc  # noqa: E402
import bench_train as bt  # noqa: E402


@pytest.mark.parametrize(("auto", "tuned"), [("no", "hf-tuned-fp32"), ("bf16", "hf-tuned-bf16")])
def test_the_tuned_trainer_runs_at_autos_precision(auto, tuned):
    assert bt.select_configs(["seqtag-fp32", "hf-tuned"], auto) == ["seqtag-fp32", tuned]
    assert bt.CONFIGS[tuned] == {"kind": "hf", "precision": auto, "grouped": True}


def test_default_configurations_follow_the_host():
    fp32 = ["seqtag-fp32", "hf-default", "hf-tuned-fp32"]
    assert bt.select_configs(None, "no") == fp32  # AVX2 or AVX-512 without AMX: bf16 only when asked
    assert bt.select_configs(None, "bf16") == ["seqtag-fp32", "seqtag-bf16", "hf-default", "hf-tuned-fp32",
                                               "hf-tuned-bf16"]  # AMX: both precisions
    assert bt.select_configs(["seqtag-bf16", "hf-tuned-bf16"], "no") == ["seqtag-bf16", "hf-tuned-bf16"]
    assert bt.select_configs(None, "no", skip_baselines=True) == ["seqtag-fp32"]


def test_speed_ups_pair_configurations_of_one_precision():
    rows = [{"name": n, "precision": "bf16" if bt.CONFIGS[n]["precision"] == "bf16" else "fp32"} for n in bt.CONFIGS]
    pairs = {(a["name"], b["name"]) for a, b in bt.like_pairs(rows)}
    assert pairs == {("seqtag-fp32", "hf-default"), ("seqtag-fp32", "hf-tuned-fp32"),
                     ("seqtag-bf16", "hf-tuned-bf16")}


def test_the_ceiling_is_measured_for_the_precisions_that_run_within_the_cap(monkeypatch):
    calls = []
    rates = {"float32": 100.0, "bfloat16": 1.0}  # GFLOP/s; bf16 as an emulating CPU gives it

    def fake(m, k, n, dtype="float32", repeats=30, inner=10):
        calls.append((dtype, repeats, inner))
        return rates[dtype]

    monkeypatch.setattr(bc, "matmul_gflops", fake)
    per_repeat_s = sum(10 * 2 * m * k * n for m, k, n in bc.CEILING_SHAPES) / 100e9  # 0.41 s of fp32 products

    ceil = bt.measure_ceiling(1, {"float32"}, cap_s=2.0)
    assert ceil == {"float32": pytest.approx(100.0), "bfloat16": None}
    assert {c[0] for c in calls} == {"float32"}  # bf16 is never touched when no bf16 configuration runs
    assert calls[3:] == [("float32", int(2.0 / per_repeat_s), 10)] * 3 == [("float32", 4, 10)] * 3

    calls.clear()
    ceil = bt.measure_ceiling(1, {"float32", "bfloat16"}, cap_s=2.0)
    assert ceil == {"float32": pytest.approx(100.0), "bfloat16": pytest.approx(1.0)}
    assert ("bfloat16", 1, 10) in calls  # one repeat, not 30: 100x slower products, same cap

    calls.clear()
    bt.measure_ceiling(1, {"float32"}, cap_s=1000.0)
    assert calls[3:] == [("float32", 30, 10)] * 3  # never more than bc.ceiling's 30 repeats
