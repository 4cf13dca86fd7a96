"""scripts/gpu_check.py: the whole check as a dry run on CPU (every stage, a toy model), stage isolation, the
budget guard, the refusal without CUDA, the fp16 MiniLM export and the generated QA data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqtag.data.conll import read_conll
from seqtag.data.schemes import spans
from seqtag.data.squad import read_qa
from tests.tiny import make_tiny_model_dir, sentences, write_conll

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import _bench_common as bc  # noqa: E402
import bench_predict as bp  # noqa: E402
import gpu_check as gc  # noqa: E402

BUNDLED = REPO / "seqtag" / "data" / "bundled" / "wnut17"


# ------------------------------------------------------------------------------------------------ the dry run


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """One dry run of every stage on one thread; its exit status, JSON record and markdown report."""
    tmp = tmp_path_factory.mktemp("gpu-check")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--qa-data", "generated",
                           "--peak-tflops", "1", "--out", str(tmp / "out"), "--workdir", str(tmp / "work")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = json.loads((tmp / "out" / "gpu_check.json").read_text())
    return record, (tmp / "out" / "gpu_check.md").read_text(), tmp / "work"


def test_dry_run_passes_every_stage_in_order(dry_run):
    record, text, _ = dry_run
    assert [(s["name"], s["status"]) for s in record["stages"]] == [(s.name, "passed") for s in gc.STAGES]
    assert record["passed"] is True and record["dry_run"] is True and record["peak_tflops"] == 1.0
    for s in gc.STAGES:
        assert f"| {s.name} | passed |" in text


def test_dry_run_training_counts_tokens_flops_and_mfu(dry_run):
    record, _, work = dry_run
    stages = {s["name"]: s for s in record["stages"]}
    # the toy run's training windows, tokenised independently of the loop: 48 sentences, one epoch, batch 8
    words = [list(s.tokens) for s in read_conll(BUNDLED / "train.txt", 0, -1)[:48]]
    lengths = bp.token_lengths(work / "quickstart" / "run", words)
    dims = bc.model_dims(work / "toy-model", num_labels=13)
    for name in ("quickstart", "crf", "fp16"):
        s = stages[name]
        assert (s["precision"], s["epochs"], s["steps"]) == ("no", 1, 6)
        assert s["tokens"] == sum(lengths)
        assert s["flops"] == pytest.approx(bc.train_flops(lengths, dims))
        assert s["tokens_per_s"] == pytest.approx(s["tokens"] / s["loop_s"])
        assert s["mfu"] == pytest.approx(s["flops"] / s["loop_s"] / 1e12)
        assert 0 < s["loop_s"] < s["wall_s"] and s["peak_mib"] is None  # no CUDA: no GPU memory
        assert s["reference"]["dev_f1"] in (0.529, 0.5542)
    assert stages["accelerate"]["processes"] == 1 and stages["accelerate"]["steps"] == 6
    assert stages["accelerate"]["mfu"] == pytest.approx(6 * dims.matmul_params * stages["accelerate"]["tokens_per_s"]
                                                        / 1e12)
    qa = stages["qa-pointer"]
    assert qa["reference"] is None and "generated" in qa["data"] and qa["dev_em"] is not None


def test_dry_run_prediction_rows(dry_run):
    record, _, _ = dry_run
    predict = record["stages"][-1]
    words = [list(s.tokens) for s in read_conll(BUNDLED / "test.txt", 0, -1)[:32]]
    assert (predict["sentences"], predict["words"]) == (32, sum(len(w) for w in words))
    rows = {r["name"]: r for r in predict["rows"]}
    assert list(rows) == [name for name, _, _ in gc.PREDICT_ROWS] + ["seqtag-predict-cli"]
    for r in rows.values():
        assert r["words_per_s"] == pytest.approx(predict["words"] / r["predict_s"])
    me = rows["seqtag-tagger"]
    assert me["agreement"] == ([1.0, 1.0] if me["entities"] else [None, None])  # the reference agrees with itself


# ------------------------------------------------------------------------------------------------ the driver


def _ctx(tmp_path, dry_run=False, budget=100.0):
    import time

    return gc.Context(tmp_path, tmp_path, dry_run, "generated", 989.0, time.monotonic() + budget, 1, None)


def test_a_failing_stage_is_reported_and_the_rest_still_run(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(gc, "STAGE_FUNCTIONS", {"quickstart": broken, "crf": lambda ctx: {"tokens_per_s": 5.0},
                                                "qa-pointer": lambda ctx: {}})
    import time

    out = gc.run_stages(_ctx(tmp_path), ["quickstart", "crf", "qa-pointer"], budget_s=100, start=time.monotonic())
    assert [s["status"] for s in out] == ["failed", "passed", "skipped"]  # qa-pointer's 120 s do not fit in 100
    assert out[0]["error"] == "RuntimeError: CUDA error: an illegal memory access"
    assert out[1]["tokens_per_s"] == 5.0
    assert out[2]["error"] == "would not fit: estimated 120 s, 100 s of the 100 s budget left"


def test_exit_status_says_whether_every_stage_passed(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    argv = ["--dry-run", "--model", str(model), "--stages", "quickstart", "crf", "--out", str(tmp_path / "out"),
            "--workdir", str(tmp_path / "work")]
    monkeypatch.setattr(gc, "STAGE_FUNCTIONS", {"quickstart": lambda ctx: {}, "crf": lambda ctx: {}})
    assert gc.main(argv) == 0
    monkeypatch.setitem(gc.STAGE_FUNCTIONS, "crf", lambda ctx: 1 / 0)
    assert gc.main(argv) == 1
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text())["passed"] is False
    assert "## crf: failed\n\n```\nZeroDivisionError: division by zero\n```" in (
        tmp_path / "out" / "gpu_check.md").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_refuses_without_cuda(capsys):
    assert gc.main([]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--dry-run" in err


def test_peak_table_and_mfu():
    names = {"NVIDIA H100 80GB HBM3": 989.0, "NVIDIA H100 PCIe": 756.0, "NVIDIA H200": 989.0,
             "NVIDIA A100-SXM4-80GB": 312.0, "NVIDIA L4": 121.0, "Tesla T4": 65.0, "NVIDIA L40S": None}
    assert {n: gc.peak_tflops(n) for n in names} == names
    assert gc.mfu(989e12 * 3, 6.0, 989.0) == 0.5
    assert gc.mfu(1e12, 1.0, None) is None


def test_history_tokens_per_s_averages_the_last_step_of_each_epoch(tmp_path):
    records = [{"type": "step", "epoch": 1, "tokens_per_s": 100.0}, {"type": "step", "epoch": 1, "tokens_per_s": 300.0},
               {"type": "epoch", "epoch": 1}, {"type": "step", "epoch": 2, "tokens_per_s": 500.0}]
    (tmp_path / "h.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert gc.history_tokens_per_s(tmp_path / "h.jsonl") == 400.0


# ------------------------------------------------------------------------------------------------ data and models


def test_generated_qa_asks_one_question_per_entity_type_of_a_sentence(tmp_path):
    conll = write_conll(tmp_path / "s.txt", sentences(20, seed=5))
    path = gc.generated_qa(conll, tmp_path / "qa.json")
    examples = read_qa(path, "squad")  # checks every answer against its context's characters
    expected = sum(len({kind for kind, _, _ in spans(s.tags)}) for s in read_conll(conll, 0, -1))
    assert len(examples) == expected == 40  # every tiny sentence has one PER and one LOC
    first = examples[0]
    assert first.question == "Which PER is mentioned?"
    assert first.context.startswith(first.answers[0][0]) and first.answers[0][1] == 0


def test_find_squad_prefers_the_file_beside_the_model(tmp_path):
    assert gc.find_squad("generated", tmp_path) is None
    assert gc.find_squad(str(tmp_path / "x.json"), tmp_path) == tmp_path / "x.json"
    (tmp_path / gc.SQUAD_NAME).write_bytes(b"zip")
    assert gc.find_squad("auto", tmp_path) == tmp_path / gc.SQUAD_NAME


def test_export_writes_fp16_weights_that_load_as_fp32(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModel

    source = make_tiny_model_dir(tmp_path / "src")
    squad = tmp_path / "squad.zip"
    squad.write_bytes(b"squad")
    out = gc.export_minilm(tmp_path / "export", source, squad)
    weights = load_file(out / "model.safetensors")
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}
    assert (out / "model.safetensors").stat().st_size < 0.55 * (source / "model.safetensors").stat().st_size
    assert (out / gc.SQUAD_NAME).read_bytes() == b"squad" and (out / "vocab.txt").is_file()
    original, exported = AutoModel.from_pretrained(source), AutoModel.from_pretrained(out)
    assert exported.dtype == torch.float32
    for (name, a), b in zip(original.state_dict().items(), exported.state_dict().values()):
        assert torch.equal(a.half().float(), b), name
    assert math.isclose(json.loads((out / "config.json").read_text())["hidden_size"], 32)
    gc.export_minilm(out, source, None)  # an earlier export is replaced
    assert not (out / gc.SQUAD_NAME).exists() and not (tmp_path / "export.partial").exists()


def test_export_refuses_a_directory_it_did_not_write(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not written by --export-minilm"):
        gc.export_minilm(tmp_path / "mine", make_tiny_model_dir(tmp_path / "src"), None)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
