"""seqtag.inference.onnx: the ONNX graph computes the run's logits on any batch and length, prediction through it finds
the same entities, int8 mostly agrees, and bad input fails before anything is left on disk."""

import json

import pytest
import torch

from seqtag.config import from_dict
from seqtag.errors import ExportError, SeqtagError
from seqtag.inference.onnx import (
    CRF_FILE,
    EXPORT_INFO_FILE,
    ONNX_FILE,
    SOURCE_RUN_INFO_FILE,
    export_run,
    is_export_dir,
    load_export,
    read_export_info,
)
from seqtag.inference.predict import Tagger, entities, load_tagger
from tests.fake_run import make_run
from tests.tiny import sentences, tiny_config

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny BERT NER run trained until it tags entities (as in test_predict), with a CRF transitions file."""
    from seqtag.training.loop import train

    tmp = tmp_path_factory.mktemp("export")
    run = train(from_dict(tiny_config(tmp, n_train=64, train={"epochs": 4, "batch_size": 8, "learning_rate": 3e-3})))
    from seqtag.modeling.crf import CRF, save_transitions

    save_transitions(run / CRF_FILE, CRF(5), ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])  # a valid file, copied along
    return run


@pytest.fixture(scope="module")
def fp32(run, tmp_path_factory):
    return export_run(run, tmp_path_factory.mktemp("exports") / "fp32")


@pytest.fixture(scope="module")
def int8(run, tmp_path_factory):
    return export_run(run, tmp_path_factory.mktemp("exports") / "int8", quantize="int8")


def _sentences():
    sents = [[w for w, _ in s] for s in sentences(50, seed=11)]
    sents.append(sents[0] * 9)  # longer than max_length=32 subwords: three windows
    sents.append(["zebra", "qwerty"])  # words outside the vocabulary
    return sents


def onnx_tagger(export_dir, **kw) -> Tagger:
    exp = load_export(export_dir, threads=1)
    return Tagger(exp.model, exp.tokenizer, exp.labels, exp.scheme, exp.max_length, exp.stride, **kw)


def test_export_directory_holds_graph_tokenizer_labels_config_and_info(run, fp32):
    import onnx

    assert is_export_dir(fp32) and not is_export_dir(run)
    graph = onnx.load(str(fp32 / ONNX_FILE)).graph
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.input, *graph.output]}
    assert shapes == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"],
                      "logits": ["batch", "sequence", 5]}
    assert (fp32 / "seqtag_config.yaml").read_bytes() == (run / "seqtag_config.yaml").read_bytes()
    assert (fp32 / CRF_FILE).read_bytes() == (run / CRF_FILE).read_bytes()
    assert (fp32 / SOURCE_RUN_INFO_FILE).read_bytes() == (run / "run_info.json").read_bytes()
    assert not (fp32 / "run_info.json").exists()  # an export is not a run directory
    info = read_export_info(fp32)
    assert (info.format, info.opset, info.quantization, info.quantized_ops) == ("onnx", 18, None, [])
    assert info.source_run == str(run.resolve()) and info.max_abs_logit_diff < 1e-5
    assert set(info.versions) == {"seqtag", "torch", "transformers", "onnx", "onnxscript", "onnxruntime"}
    exp = load_export(fp32)
    assert exp.labels == load_tagger(run).labels and sorted(exp.labels) == ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
    assert (exp.scheme, exp.max_length, exp.stride) == ("IOB2", 32, 8)
    assert exp.crf_transitions == fp32 / CRF_FILE
    assert exp.tokenizer("john lives in paris")["input_ids"] == load_tagger(run).tokenizer("john lives in paris")[
        "input_ids"]
    assert not [p.name for p in fp32.parent.iterdir() if p.name.startswith(".")]  # no temporary directory left


@pytest.mark.parametrize("batch,length", [(1, 1), (1, 7), (4, 17), (9, 32), (2, 64)])
def test_onnx_logits_equal_torch_logits_for_any_batch_and_length(run, fp32, batch, length):
    torch_model = load_tagger(run, device="cpu").model
    onnx_model = load_export(fp32, threads=1).model
    gen = torch.Generator().manual_seed(batch * 100 + length)
    ids = torch.randint(0, torch_model.config.vocab_size, (batch, length), generator=gen)
    mask = torch.ones_like(ids)
    for row in range(1, batch):  # every row but the first padded to a random length
        mask[row, int(torch.randint(1, length + 1, (1,), generator=gen)):] = 0
    with torch.no_grad():
        want = torch_model(input_ids=ids, attention_mask=mask).logits
    got = onnx_model(input_ids=ids, attention_mask=mask).logits
    assert got.dtype == torch.float32 and got.shape == want.shape == (batch, length, 5)
    assert (got - want).abs().max().item() < 1e-4


def test_tagger_with_onnx_model_finds_the_torch_models_entities(run, fp32):
    sents = _sentences()
    want = load_tagger(run, batch_size=16, device="cpu").tag(sents)
    got = onnx_tagger(fp32, batch_size=16).tag(sents)
    n_entities = 0
    for words, (t_tags, t_scores), (o_tags, o_scores) in zip(sents, want, got):
        assert o_tags == t_tags
        assert o_scores == pytest.approx(t_scores, abs=1e-4)
        ents = entities(words, o_tags, o_scores, "IOB2")
        assert [(e["type"], e["start_token"], e["end_token"]) for e in ents] == [
            (e["type"], e["start_token"], e["end_token"]) for e in entities(words, t_tags, t_scores, "IOB2")]
        n_entities += len(ents)
    assert n_entities >= 50  # the run really tags: about two entities per sentence


def test_int8_export_quantizes_matmul_weights_and_mostly_agrees_with_fp32(fp32, int8):
    import onnx

    info = read_export_info(int8)
    assert (info.quantization, info.quantized_ops) == ("int8", ["MatMul"])
    ops = [n.op_type for n in onnx.load(str(int8 / ONNX_FILE)).graph.node]
    # 2 layers x (Q, K, V, attention output, feed-forward up, down) + the classifier; Q K^T and softmax V stay float
    assert ops.count("MatMulInteger") == 13 and ops.count("MatMul") == 4
    sents = _sentences()
    ref = [t for tags, _ in onnx_tagger(fp32).tag(sents) for t in tags]
    got = [t for tags, _ in onnx_tagger(int8).tag(sents) for t in tags]
    agree = sum(a == b for a, b in zip(ref, got)) / len(ref)
    # measured 1.000 on this run (its margins are wide); the bound leaves room for other CPUs' int8 kernels
    assert agree >= 0.98, agree


# ------------------------------------------------------------------------------------------------ bad input


def _assert_nothing_left(parent, name):
    assert not (parent / name).exists()
    assert not [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_existing_output_directory_is_refused_and_left_as_it_was(run, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="already exists; choose another output directory"):
        export_run(run, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("kind,match", [
    ("missing", "does not exist; pass the output_dir of a finished `seqtag train`"),
    ("unfinished", r"is not finished \(status: running\); it stopped before its first checkpoint"),
    ("qa", "is a qa run .pointer head.; export supports NER runs"),
    ("encoder", "not a token classification model"),
])
def test_runs_that_cannot_be_exported_fail_clearly_and_leave_nothing(tmp_path, kind, match):
    if kind == "missing":
        run = tmp_path / "no-such-run"
    elif kind == "unfinished":
        run = make_run(tmp_path, status="running", junk=False)
    elif kind == "qa":
        run = make_run(tmp_path, task="qa", junk=False)
    else:
        run = make_run(tmp_path, junk=False)
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "architectures": ["BertModel"]}))
    with pytest.raises(SeqtagError, match=match):
        export_run(run, tmp_path / "out")
    _assert_nothing_left(tmp_path, "out")


@pytest.mark.parametrize("kwargs,match", [({"fmt": "tflite"}, "format 'tflite' is not supported; choose one of onnx"),
                                          ({"quantize": "int4"}, "quantization 'int4' is not supported")])
def test_unknown_format_or_quantization_is_refused(tmp_path, kwargs, match):
    with pytest.raises(ExportError, match=match):
        export_run(make_run(tmp_path, junk=False), tmp_path / "out", **kwargs)
    _assert_nothing_left(tmp_path, "out")


@pytest.mark.parametrize("failure", [RuntimeError("exporter crashed"), KeyboardInterrupt()])
def test_a_failure_while_exporting_leaves_nothing(tmp_path, monkeypatch, failure):
    import seqtag.inference.onnx

    def half_written(model, path):
        path.write_bytes(b"half a graph")
        raise failure

    monkeypatch.setattr(seqtag.inference.onnx, "_export_onnx", half_written)
    with pytest.raises(type(failure)):
        export_run(make_run(tmp_path, junk=False), tmp_path / "out")
    _assert_nothing_left(tmp_path, "out")


def test_loading_what_is_not_an_export_fails_clearly(run, fp32, tmp_path):
    with pytest.raises(ExportError, match="is not a seqtag export .* create one with `seqtag export RUN"):
        load_export(run)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / ONNX_FILE).write_bytes((fp32 / ONNX_FILE).read_bytes())
    info = json.loads((fp32 / EXPORT_INFO_FILE).read_text())
    del info["opset"]
    (broken / EXPORT_INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(ExportError, match=r"missing: \['opset'\].*export the run again"):
        load_export(broken)


def test_cli_exports_predicts_and_evaluates_like_the_torch_run(tmp_path, capsys):
    """`seqtag export` of a CRF run, then `seqtag predict`/`evaluate` on the export directory: the same Viterbi
    tags and scores as the run itself (fp32), the backend chosen by the path; the wrong backend for a path is a
    clear error."""
    from seqtag.cli import main
    from seqtag.training.loop import train

    raw = tiny_config(tmp_path, n_train=64, model={"head": "crf"}, predict={"decoding": "viterbi"},
                      train={"epochs": 3, "batch_size": 8, "learning_rate": 3e-3})
    run, data = train(from_dict(raw)), raw["data"]["dev"]
    export = tmp_path / "exported"
    assert main(["export", str(run), "--output", str(export)]) == 0
    for target, out in ((run, "torch"), (export, "onnx")):
        assert main(["predict", str(target), "--input", str(data), "--input-format", "conll",
                     "--output", str(tmp_path / f"{out}.jsonl")]) == 0
        assert main(["evaluate", str(target), "--data", str(data), "--output", str(tmp_path / f"{out}.json")]) == 0
    torch_rows = [json.loads(x) for x in (tmp_path / "torch.jsonl").read_text().splitlines()]
    onnx_rows = [json.loads(x) for x in (tmp_path / "onnx.jsonl").read_text().splitlines()]
    assert [r["tags"] for r in onnx_rows] == [r["tags"] for r in torch_rows]
    assert json.loads((tmp_path / "onnx.json").read_text())["f1"] == json.loads((tmp_path / "torch.json").read_text())["f1"]
    capsys.readouterr()
    assert main(["predict", str(run), "--backend", "onnx", "--text", "x"]) == 2
    assert "seqtag export" in capsys.readouterr().err
    assert main(["predict", str(export), "--backend", "torch", "--text", "x"]) == 2
    assert "holds no torch weights" in capsys.readouterr().err
