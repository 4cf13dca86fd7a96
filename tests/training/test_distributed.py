"""Several processes: ``accelerate launch --multi_gpu --num_processes 2`` runs DDP on gloo over the CPU here.

One run is launched with two processes and compared with the same global batch on one process: the logged
loss of every step (the loss per labelled token of the whole optimizer step) and the final weights agree to
float tolerance, which only holds when the per-token normalisation across processes is right. (A constant
factor on every gradient would go unseen: AdamW's update does not change when its gradients are scaled.) Only the main
process writes files and prints. Evaluating with two processes gives exactly the one-process metrics on a dev
set of 7 sentences, which no global batch divides (so the last batch is padded).

The model has no dropout, so both process counts compute the same function.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from seqtag.cli import main
from tests.tiny import make_tiny_model_dir, tiny_config, write_config

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("accelerate") is None, reason="the accelerate launcher is not installed")


def launch(*argv: str, cwd: Path, module: str = "seqtag", check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # under CI=true transformers lets its records propagate to the root logger as well as printing them, so the
    # main process shows each transformers warning twice; what this module counts is one per *process*
    env.pop("CI", None)
    cmd = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", "-m", module, *argv]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert res.returncode == 0 or not check, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(config dict, two-process run dir, its launch result, one-process run dir)."""
    tmp = tmp_path_factory.mktemp("ddp")
    make_tiny_model_dir(tmp / "model", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg = tiny_config(tmp, train={"batch_size": 4, "eval_batch_size": 2, "group_by_length": False})
    two = copy.deepcopy(cfg)
    two["train"]["output_dir"] = str(tmp / "two")
    res = launch("train", str(write_config(tmp / "two.yaml", two)), cwd=tmp)
    one = copy.deepcopy(cfg)
    one["train"].update(output_dir=str(tmp / "one"), batch_size=8)  # the same global batch on one process
    assert main(["train", str(write_config(tmp / "one.yaml", one))]) == 0
    return cfg, tmp / "two", res, tmp / "one"


def steps(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if '"type": "step"' in x]


def test_two_processes_train_to_completion_and_only_the_main_one_writes(runs):
    _, two, res, _ = runs
    info = json.loads((two / "run_info.json").read_text())
    assert (info["status"], info["processes"], info["total_batch_size"]) == ("finished", 2, 8)
    assert (info["global_steps"], info["epochs"]) == (6, 2)  # 24 sentences / 8 per step = 3 steps per epoch
    assert [s["step"] for s in steps(two)] == [1, 2, 3, 4, 5, 6]  # one history, each step once
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["last"]
    assert sorted(p.name for p in (two / "checkpoints" / "last").glob("random_states_*")) == [
        "random_states_0.pkl", "random_states_1.pkl"]  # both processes' RNG states in the one checkpoint
    # printed and logged once
    assert res.stdout.count("== dev") == 1 and res.stdout.count("run directory:") == 1
    assert res.stderr.count("training 24 examples") == 1 and res.stderr.count("epoch 1: dev f1") == 1
    assert res.stderr.count("LOAD REPORT") <= 1
    assert "Traceback" not in res.stderr


def test_per_token_loss_normalisation_matches_one_process(runs):
    import torch
    from safetensors.torch import load_file

    _, two, _, one = runs
    s2, s1 = steps(two), steps(one)
    assert [s["labelled_tokens"] for s in s2] == [s["labelled_tokens"] for s in s1]
    for a, b in zip(s2, s1, strict=True):
        # float32 reductions in another order differ by ~1e-7; normalising by each process's own token count
        # instead of the window's total (a bug this catches) moves step 2 by ~1e-5
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6), (a, b)
        assert a["lr"] == pytest.approx(b["lr"])
    w2, w1 = load_file(two / "model.safetensors"), load_file(one / "model.safetensors")
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6)
    assert s1[0]["loss"] != pytest.approx(s1[1]["loss"])  # the steps differ: the comparison has teeth


def test_two_process_evaluation_equals_one_process(runs, tmp_path):
    cfg, two, _, _ = runs
    dev = cfg["data"]["dev"]
    launch("evaluate", str(two), "--data", dev, "--output", str(tmp_path / "m2.json"), "--predictions",
           str(tmp_path / "p2.txt"), cwd=tmp_path)
    assert main(["evaluate", str(two), "--data", dev, "--output", str(tmp_path / "m1.json"),
                 "--predictions", str(tmp_path / "p1.txt")]) == 0
    m1, m2 = (json.loads((tmp_path / f"m{i}.json").read_text()) for i in (1, 2))
    assert m2 == m1
    assert (tmp_path / "p2.txt").read_text() == (tmp_path / "p1.txt").read_text()
    rows = [r for r in (tmp_path / "p1.txt").read_text().split("\n\n") if r.strip()]
    assert len(rows) == 7  # every dev sentence once: none dropped, none duplicated by the padded last batch
    assert sum(s["support"] for s in m1["per_type"].values()) == 14  # 7 PER + 7 LOC spans in tiny dev
    # the run's own final dev metrics were computed with two processes: the same again
    assert json.loads((two / "metrics.json").read_text())["dev"] == m1


def test_two_process_prediction_equals_one_process(runs, tmp_path):
    """`accelerate launch ... seqtag predict`: the processes share each chunk's batches, the main one writes
    one output in input order, the same bytes as one process writes."""
    _, two, _, _ = runs
    words = ["John", "lives", "in", "Paris", "Mary", "visited", "Rome", "and", "London", "."]
    lines = [" ".join(words[(i + j) % 10] for j in range(1 + (7 * i) % 40)) for i in range(150)]  # 1-40 words
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    res = launch("predict", str(two), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out2.jsonl"),
                 "--batch-size", "8", cwd=tmp_path)
    assert main(["predict", str(two), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out1.jsonl"),
                 "--batch-size", "8"]) == 0
    out2 = (tmp_path / "out2.jsonl").read_text()
    assert out2 == (tmp_path / "out1.jsonl").read_text()
    assert [json.loads(x)["line"] for x in out2.splitlines()] == list(range(1, 151))  # input order
    assert res.stderr.count("wrote 150 records") == 1 and "Traceback" not in res.stderr



def test_crf_head_two_processes_match_one_process(tmp_path):
    """The CRF lives inside the model accelerate prepares: DDP all-reduces its gradients, so two processes train
    the same transitions (and encoder) as one process with the same global batch, step for step."""
    import torch
    from safetensors.torch import load_file

    from seqtag.modeling.crf import TRANSITIONS_FILE, load_transitions

    make_tiny_model_dir(tmp_path / "model", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg = tiny_config(tmp_path, n_dev=0, n_test=0, model={"head": "crf"},
                      train={"epochs": 1, "batch_size": 4, "group_by_length": False})
    two = copy.deepcopy(cfg)
    two["train"]["output_dir"] = str(tmp_path / "two")
    launch("train", str(write_config(tmp_path / "two.yaml", two)), cwd=tmp_path)
    one = copy.deepcopy(cfg)
    one["train"].update(output_dir=str(tmp_path / "one"), batch_size=8)
    assert main(["train", str(write_config(tmp_path / "one.yaml", one))]) == 0
    s2, s1 = steps(tmp_path / "two"), steps(tmp_path / "one")
    assert len(s1) == 3 and s1[0]["loss"] != pytest.approx(s1[1]["loss"])
    for a, b in zip(s2, s1, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6), (a, b)
    w2, w1 = load_file(tmp_path / "two" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-5, atol=1e-6)
    t2, t1 = (load_transitions(tmp_path / run / TRANSITIONS_FILE)[1] for run in ("two", "one"))
    finite = torch.isfinite(t1)
    assert torch.equal(finite, torch.isfinite(t2)) and t1[finite].abs().max() > 0.01  # learned, not initial
    torch.testing.assert_close(t2[finite], t1[finite], rtol=1e-5, atol=1e-6)


def _nan_on_one_rank(tmp_path, nan_policy: str) -> tuple[subprocess.CompletedProcess, Path, list[list[dict]]]:
    """Two processes, one epoch of 3 windows (24 sentences, 4 per process); process 1's second micro-batch has a
    NaN loss, process 0's does not. Returns the launch result, the run directory and each process's windows
    (tests/training/nan_rank.py)."""
    cfg = tiny_config(tmp_path, n_test=0, train={"epochs": 1, "batch_size": 4, "group_by_length": False,
                                                 "nan_policy": nan_policy, "save_every_epoch": False})
    config = write_config(tmp_path / "config.yaml", cfg)
    res = launch(str(tmp_path), "1", "2", "train", str(config), cwd=tmp_path, module="tests.training.nan_rank",
                 check=False)
    windows = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    return res, Path(cfg["train"]["output_dir"]), windows


def test_a_nan_on_one_process_stops_every_process(tmp_path):
    """The processes agree that the window holds a non-finite loss and stop at that step, each with the
    message; the one that saw it names its batch."""
    res, run, windows = _nan_on_one_rank(tmp_path, "stop")
    assert res.returncode != 0
    msg = "non-finite (NaN or infinite) loss at epoch 1, optimizer step 2, batch 2 of the epoch in process 1"
    assert res.stderr.count(f"seqtag train: error: {msg}") == 2, res.stderr[-3000:]
    assert "The batch's examples begin: [CLS]" in res.stderr  # process 1 shows its examples
    assert "seqtag/training" not in res.stderr  # no traceback from seqtag (the launcher prints its own)
    for w in windows:  # both stopped in window 2, before any step of theirs moved the weights
        assert len(w) == 2 and w[1]["before"] == w[1]["after"]
    assert windows[0][1]["after"] == windows[1][1]["after"]
    assert json.loads((run / "run_info.json").read_text())["status"] == "failed"


def test_a_nan_on_one_process_is_skipped_by_every_process(tmp_path):
    """nan_policy=skip: every process skips the window, leaves its weights exactly as they were, and the
    replicas stay identical; the run counts one skipped batch and takes the other two steps."""
    res, run, windows = _nan_on_one_rank(tmp_path, "skip")
    assert res.returncode == 0, res.stderr[-3000:]
    assert [[w["skipped"] for w in ws] for ws in windows] == [[False, True, False]] * 2
    for ws in windows:
        assert ws[1]["after"] == ws[1]["before"] != ws[0]["before"]  # window 1 stepped, window 2 did not
        assert ws[2]["after"] != ws[2]["before"]
    assert [w["after"] for w in windows[0]] == [w["after"] for w in windows[1]]  # the replicas agree
    info = json.loads((run / "run_info.json").read_text())
    assert (info["status"], info["skipped_batches"], info["global_steps"]) == ("finished", 1, 2)
    assert [s["step"] for s in steps(run)] == [1, 2]
