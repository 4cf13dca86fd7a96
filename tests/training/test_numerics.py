"""The training loop's numbers pinned: the loss of every step and the final weights of short tiny runs (a linear
head with gradient accumulation, stopped by max_steps before the epoch's last window; a CRF head over two
epochs), recorded from the loop as it was on 2026-12-07.

Any change to how the loop counts tokens, scales, accumulates or reads back the loss that is more than float
rounding moves these values (a normalisation error moves a step's loss by 1e-5 or more, see
tests/training/test_distributed.py). On the machine they were recorded on the values are reproduced bit for bit;
the tolerance (relative 1e-6) allows other CPUs' kernels to sum in another order.
"""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from seqtag.config import from_dict
from seqtag.training.loop import train
from tests.tiny import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

RUNS = {
    "linear": {"n_train": 40, "train": {"grad_accum": 2, "epochs": 1, "max_steps": 4, "batch_size": 4,
                                        "learning_rate": 3e-3}},
    "crf": {"model": {"head": "crf"}, "train": {"epochs": 2, "batch_size": 4, "learning_rate": 3e-3}},
}


def fingerprint(tmp_path, overrides: dict) -> dict:
    """The logged steps (loss, lr, labelled tokens) and two sums over the final weights of a tiny run."""
    run = train(from_dict(tiny_config(tmp_path, **{"n_dev": 7, "n_test": 0, **overrides})))
    steps = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if '"type": "step"' in x]
    weights = load_file(str(run / "model.safetensors"))
    return {
        "loss": [s["loss"] for s in steps],
        "lr": [s["lr"] for s in steps],
        "labelled_tokens": [s["labelled_tokens"] for s in steps],
        "weight_sum": sum(float(w.double().sum()) for w in weights.values()),
        "weight_sq": sum(float(w.double().square().sum()) for w in weights.values()),
    }


RECORDED = {  # fingerprint() of each run, 2026-12-07, torch 2.13 CPU, one thread
    "linear": {"loss": [1.6063117980957031, 1.4673921411687678, 1.3776047446511008, 1.3501313951280383],
               "lr": [0.003, 0.0022500000000000003, 0.0015, 0.00075], "labelled_tokens": [45, 44, 44, 45],
               "weight_sum": 158.34566841754094, "weight_sq": 167.148338823205},
    "crf": {"loss": [1.25859800974528, 1.1353055000305177, 1.0557930946350098, 0.9597726119192023,
                     0.9334274927775065, 0.9116427103678385, 0.881419817606608, 0.7296637535095215,
                     0.7370088978817588, 0.7272905349731446, 0.7351853847503662, 0.7023770014444987],
            "lr": [0.003, 0.00275, 0.0025, 0.0022500000000000003, 0.002, 0.0017500000000000003, 0.0015, 0.00125,
                   0.001, 0.00075, 0.0005, 0.00025],
            "labelled_tokens": [24, 20, 20, 19, 24, 24, 24, 20, 19, 20, 24, 24],
            "weight_sum": 159.38741039310725, "weight_sq": 168.34297807564653},
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_loss_history_and_final_weights_are_unchanged(tmp_path, name):
    got, want = fingerprint(tmp_path, RUNS[name]), RECORDED[name]
    assert got["labelled_tokens"] == want["labelled_tokens"] and got["lr"] == want["lr"]
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-6, abs=0)
    assert got["weight_sum"] == pytest.approx(want["weight_sum"], rel=1e-6, abs=0)
    assert got["weight_sq"] == pytest.approx(want["weight_sq"], rel=1e-6, abs=0)
    assert len(set(got["loss"])) == len(got["loss"]) == {"linear": 4, "crf": 12}[name]  # the comparison has teeth
