"""seqtag.inference.onnx and onnx_export: the ONNX graph, with and without ONNX Runtime's fusions, computes the run's
logits on any batch and length for every encoder family, prediction through it finds the same entities, int8 mostly
agrees, a fusion that changes the logits is not kept, and bad input fails before anything is left on disk."""

import json
import re

import pytest
import torch

from seqtag.config import from_dict
from seqtag.errors import ExportError, SeqtagError
from seqtag.inference.onnx import (
    CRF_FILE,
    EXPORT_INFO_FILE,
    ONNX_FILE,
    SOURCE_RUN_INFO_FILE,
    is_export_dir,
    load_export,
    read_export_info,
)
from seqtag.inference.onnx_export import export_run
from seqtag.inference.predict import Tagger, entities, load_tagger
from tests.fake_run import NER_LABELS, make_run
from tests.families import FAMILIES
from tests.tiny import sentences, tiny_config

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")

# what ONNX Runtime's optimizer fuses in each family's 2-layer graph (measured 2026-12-07, onnxruntime 1.31.1)
FULL = {"EmbedLayerNormalization": 1, "Attention": 2, "BiasGelu": 2, "SkipLayerNormalization": 4}
NO_EMBEDDING = {"Attention": 2, "BiasGelu": 2, "LayerNormalization": 1, "SkipLayerNormalization": 4}
FUSED = {"bert-cased": FULL, "bert-uncased": FULL, "electra": FULL, "distilbert": FULL,
         "roberta": NO_EMBEDDING, "xlm-roberta": NO_EMBEDDING,
         "deberta-v3": {"BiasGelu": 2, "LayerNormalization": 2, "SkipLayerNormalization": 4},
         "modernbert": {"Gelu": 3, "LayerNormalization": 2, "SkipLayerNormalization": 4}}


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
    return export_run(run, tmp_path_factory.mktemp("exports") / "fp32", fuse=False)


@pytest.fixture(scope="module")
def int8(run, tmp_path_factory):
    return export_run(run, tmp_path_factory.mktemp("exports") / "int8", quantize="int8", fuse=False)


@pytest.fixture(scope="module")
def fused_fp32(run, tmp_path_factory):
    return export_run(run, tmp_path_factory.mktemp("exports") / "fused-fp32", fuse=True)


@pytest.fixture(scope="module")
def fused_int8(run, tmp_path_factory):
    return export_run(run, tmp_path_factory.mktemp("exports") / "fused-int8", quantize="int8", fuse=True)


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
    assert (info.format, info.opset, info.exporter, info.fusion, info.fused_ops, info.quantization,
            info.quantized_ops, info.notes) == ("onnx", 18, "torchscript", False, {}, None, [], [])
    assert not {n.domain for n in graph.node} - {""}  # standard ONNX operators only
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


@pytest.mark.parametrize("export", ["fp32", "fused_fp32"])
def test_tagger_with_onnx_model_finds_the_torch_models_entities(run, export, request):
    sents = _sentences()
    want = load_tagger(run, batch_size=16, device="cpu").tag(sents)
    got = onnx_tagger(request.getfixturevalue(export), batch_size=16).tag(sents)
    n_entities = 0
    for words, (t_tags, t_scores), (o_tags, o_scores) in zip(sents, want, got):
        assert o_tags == t_tags
        assert o_scores == pytest.approx(t_scores, abs=1e-4)
        ents = entities(words, o_tags, o_scores, "IOB2")
        assert [(e["type"], e["start_token"], e["end_token"]) for e in ents] == [
            (e["type"], e["start_token"], e["end_token"]) for e in entities(words, t_tags, t_scores, "IOB2")]
        n_entities += len(ents)
    assert n_entities >= 50  # the run really tags: about two entities per sentence


@pytest.mark.parametrize("float32,quantized,fused", [("fp32", "int8", False), ("fused_fp32", "fused_int8", True)])
def test_int8_export_quantizes_the_weights_and_mostly_agrees_with_fp32(float32, quantized, fused, request):
    import onnx

    fp32, int8 = request.getfixturevalue(float32), request.getfixturevalue(quantized)
    info = read_export_info(int8)
    ops = [n.op_type for n in onnx.load(str(int8 / ONNX_FILE)).graph.node]
    if fused:
        assert (info.quantization, info.quantized_ops, info.fused_ops) == ("int8", ["Attention", "MatMul"], FULL)
        # per layer: Q, K, V in one QAttention; attention output, feed-forward up and down; then the classifier
        assert ops.count("QAttention") == 2 and ops.count("MatMulInteger") == 2 * 3 + 1
        assert ops.count("MatMul") == ops.count("Attention") == 0
    else:
        assert (info.quantization, info.quantized_ops, info.fused_ops) == ("int8", ["MatMul"], {})
        # 2 layers x (Q, K, V, attention output, feed-forward up, down) + the classifier; Q K^T and softmax V float
        assert ops.count("MatMulInteger") == 13 and ops.count("MatMul") == 4
    sents = _sentences()
    ref = [t for tags, _ in onnx_tagger(fp32).tag(sents) for t in tags]
    got = [t for tags, _ in onnx_tagger(int8).tag(sents) for t in tags]
    agree = sum(a == b for a, b in zip(ref, got)) / len(ref)
    # measured 1.000 on this run (its margins are wide); the bound leaves room for other CPUs' int8 kernels
    assert agree >= 0.98, agree


def test_an_export_decodes_as_its_run_does(tmp_path):
    """A run whose scores were computed with another decoding than its config's predict.decoding (saved when the
    default was another one): the export predicts with the decoding of the run's scores, as the run itself does."""
    run = make_run(tmp_path, junk=False)
    info = json.loads((run / "run_info.json").read_text())
    (run / "run_info.json").write_text(json.dumps({**info, "decoding": "argmax"}))
    export = export_run(run, tmp_path / "out")
    assert load_export(export).decoding == load_tagger(run).decoding == "argmax"


# ------------------------------------------------------------------------------------------------ graphs


def family_run(root, model_dir, name: str = "run"):
    """A finished run directory (tests/fake_run.py) holding ``model_dir``'s encoder and tokenizer with a random
    token-classification head over :data:`tests.fake_run.NER_LABELS` (seed 0); its windows are 128 subwords."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    run = make_run(root, junk=False, name=name)
    for f in run.iterdir():  # the fake run's BERT and tokenizer
        if f.name not in ("run_info.json", "seqtag_config.yaml", "metrics.json", "history.jsonl"):
            f.unlink()
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        str(model_dir), id2label=dict(enumerate(NER_LABELS)), label2id={t: i for i, t in enumerate(NER_LABELS)})
    model.save_pretrained(run)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(run)
    return run


def max_logit_diff(run, export_dir, shapes=((1, 1), (4, 17), (2, 126))) -> tuple[float, float]:
    """Largest absolute difference between the export's and the run's logits at the real tokens of random
    batches of ``shapes`` (every row but the first padded to a random length), and the largest absolute torch
    logit. Padded positions are left out: seqtag never reads them, and ModernBERT's SDPA attention, what the run
    predicts with, gives them other values than its eager attention, what the graph is traced from."""
    from transformers import AutoModelForTokenClassification

    torch_model = AutoModelForTokenClassification.from_pretrained(str(run)).eval()
    onnx_model = load_export(export_dir, threads=1).model
    diff = scale = 0.0
    for batch, length in shapes:
        gen = torch.Generator().manual_seed(batch * 1000 + length)
        ids = torch.randint(0, torch_model.config.vocab_size, (batch, length), generator=gen)
        mask = torch.ones_like(ids)
        for row in range(1, batch):
            mask[row, int(torch.randint(1, length + 1, (1,), generator=gen)):] = 0
        with torch.no_grad():
            want = torch_model(input_ids=ids, attention_mask=mask).logits
        got = onnx_model(input_ids=ids, attention_mask=mask).logits
        real = mask.bool()
        diff, scale = max(diff, (got - want)[real].abs().max().item()), max(scale, want[real].abs().max().item())
    return diff, scale


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_exports_a_fused_graph_that_computes_its_logits(family_dir, family, tmp_path):
    """Each family fuses what its graph allows (attention everywhere but DeBERTa's relative and ModernBERT's
    rotary attention, which the note names), and the fused graph, float32 or int8, computes the run's logits."""
    run = family_run(tmp_path, family_dir(family))
    fp32 = export_run(run, tmp_path / "fp32", fuse=True)
    int8 = export_run(run, tmp_path / "int8", quantize="int8", fuse=True)
    info = read_export_info(fp32)
    assert (info.exporter, info.fusion, info.fused_ops) == ("torchscript", True, FUSED[family])
    attention = "Attention" in FUSED[family]
    assert [n.split(":")[0] for n in info.notes] == ([] if attention else ["attention not fused"])
    diff, scale = max_logit_diff(run, fp32)
    assert info.max_abs_logit_diff < 1e-5 and diff < 1e-5 and scale > 0.1
    info8 = read_export_info(int8)
    assert (info8.fused_ops, info8.quantized_ops) == (FUSED[family], ["Attention", "MatMul"] if attention else ["MatMul"])
    diff8, _ = max_logit_diff(run, int8)
    # int8 weights and activations: measured 1-4% of the largest logit on these random models
    assert 1e-4 < diff8 < 0.1 * scale, (diff8, scale)


def _corrupted(optimize_model):
    """``optimize_model`` whose fused graph adds 1 to the classifier's bias: a fusion that changes the logits."""
    import numpy as np
    from onnx import numpy_helper

    def optimize(*args, **kwargs):
        optimized = optimize_model(*args, **kwargs)
        bias = next(t for t in optimized.model.graph.initializer if t.name == "classifier.bias")
        bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + np.float32(1.0), bias.name))
        return optimized

    return optimize


def _failing(*args, **kwargs):
    raise ValueError("no pattern for this graph")


@pytest.mark.parametrize("optimizer,note", [
    (_corrupted, r"not fused: the fused graph's logits differed from the run's by up to 1\.00e\+00 \(more than 0\.001\)"),
    (lambda real: _failing, r"not fused: ONNX Runtime's transformer optimizer failed on this bert graph "
                            r"\(ValueError: no pattern for this graph\)"),
])
def test_the_unfused_graph_is_exported_when_fusion_fails_or_changes_the_logits(tmp_path, monkeypatch, optimizer, note):
    import onnx
    import onnxruntime.transformers.optimizer

    run = make_run(tmp_path, junk=False)
    monkeypatch.setattr(onnxruntime.transformers.optimizer, "optimize_model",
                        optimizer(onnxruntime.transformers.optimizer.optimize_model))
    out = export_run(run, tmp_path / "out", quantize="int8", fuse=True)
    info = read_export_info(out)
    assert info.fusion and info.fused_ops == {} and len(info.notes) == 1, info.notes
    assert re.fullmatch(note + ".*", info.notes[0]), info.notes
    assert info.quantized_ops == ["MatMul"] and info.max_abs_logit_diff < 1e-5
    ops = {n.op_type for n in onnx.load(str(out / ONNX_FILE)).graph.node}
    assert "QAttention" not in ops and "SkipLayerNormalization" not in ops and "MatMulInteger" in ops


def test_the_dynamo_exporter_stands_in_when_the_torchscript_exporter_fails(tmp_path, monkeypatch):
    """The dynamo graph fuses no attention; export_info.json says which exporter ran and why."""
    import seqtag.inference.onnx_export

    def fails(model, path):
        path.write_bytes(b"half a graph")
        raise RuntimeError("tracer failed")

    monkeypatch.setattr(seqtag.inference.onnx_export, "_export_torchscript", fails)
    run = make_run(tmp_path, junk=False)
    out = export_run(run, tmp_path / "out", fuse=True)
    info = read_export_info(out)
    assert info.exporter == "dynamo" and "Attention" not in info.fused_ops and info.fused_ops["SkipLayerNormalization"]
    assert re.fullmatch(r"exported with torch.onnx's dynamo exporter: the TorchScript exporter \(torch .*\) failed "
                        r"\(RuntimeError: tracer failed\)", info.notes[0]), info.notes
    assert info.notes[1].startswith("attention not fused") and len(info.notes) == 2
    assert max_logit_diff(run, out, shapes=((1, 1), (4, 17), (2, 62)))[0] < 1e-5


def test_large_weights_go_to_one_external_data_file(tmp_path, monkeypatch):
    """Above EXTERNAL_DATA_BYTES (1 GiB; 0 here) every graph keeps its weights in one model.onnx.data: one
    protobuf holds at most 2 GiB."""
    import onnx

    import seqtag.inference.onnx_export

    monkeypatch.setattr(seqtag.inference.onnx_export, "EXTERNAL_DATA_BYTES", 0)
    run = make_run(tmp_path, junk=False)
    for quantize, fuse in ((None, False), (None, True), ("int8", True)):
        out = export_run(run, tmp_path / f"{quantize}-{fuse}", quantize=quantize, fuse=fuse)
        graph = onnx.load(str(out / ONNX_FILE), load_external_data=False).graph
        outside = {e.value for t in graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
                   for e in t.external_data if e.key == "location"}
        assert outside == {"model.onnx.data"} and (out / "model.onnx.data").is_file()
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no stage directory left
        assert read_export_info(out).fused_ops == (FULL if fuse else {})
        assert max_logit_diff(run, out, shapes=((3, 9),))[0] < (1e-5 if quantize is None else 0.5)


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
    import seqtag.inference.onnx_export

    def half_written(model, path):
        path.write_bytes(b"half a graph")
        raise failure

    monkeypatch.setattr(seqtag.inference.onnx_export, "_export_onnx", half_written)
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
    assert main(["export", str(run), "--output", str(export), "--no-fuse"]) == 0
    assert capsys.readouterr().out == f"wrote {export}: ONNX Runtime fusions: none; int8 weights: none\n"
    fused = tmp_path / "fused"  # fused by default
    assert main(["export", str(run), "--output", str(fused), "--quantize", "int8"]) == 0
    assert capsys.readouterr().out == (f"wrote {fused}: ONNX Runtime fusions: EmbedLayerNormalization x1, Attention x2, "
                                       f"BiasGelu x2, SkipLayerNormalization x4; int8 weights: Attention, MatMul\n")
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
