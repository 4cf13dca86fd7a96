"""Exporting a finished NER run to ONNX: the graph, optionally ONNX Runtime's transformer fusions, int8 weights.

:func:`export_run` writes an export directory (its files: :mod:`seqtag.inference.onnx`) in up to three steps,
each checked against the run's torch model on padded batches of shapes other than the traced one:

1. **Graph.** ``torch.onnx.export(dynamo=False)``, the TorchScript exporter, traces the model loaded with eager
   attention on a padded (2, 8) batch, batch and sequence axes dynamic, opset 18. ONNX Runtime fuses this graph
   as it loads it (SkipLayerNormalization, BiasGelu, the attention scale into FusedMatMul), and its attention is
   the MatMul/Softmax pattern that ONNX Runtime's transformer optimizer (step 2) fuses. The dynamo exporter's
   graph does not match that pattern: on a tiny BERT (torch 2.13, onnxscript 0.7, onnxruntime 1.31; 2026-12-07)
   the optimizer fused SkipLayerNormalization and BiasGelu there and no Attention, with eager and with SDPA
   attention alike, and a traced SDPA graph fused no Attention either. Should the TorchScript exporter fail
   (torch deprecated it in 2.9), the dynamo exporter (``dynamo=True``) stands in, and ``export_info.json`` says
   so. ``token_type_ids`` is not an input: seqtag never passes it (the model fills in zeros), so the graph
   computes what seqtag's torch model computes.
2. **Fusion** (``fuse=True``, the default, see :data:`FUSE_DEFAULT`; ``seqtag export --no-fuse`` skips it):
   ``onnxruntime.transformers.optimizer.optimize_model(model_type="bert", num_heads, hidden_size, opt_level=0)``,
   the optimizer's fusions only, nothing for this CPU baked in. What it fused (``get_fused_operator_statistics()``)
   is recorded as ``fused_ops``. On the tiny encoders of tests/families.py (2026-12-07):

   | family | fused_ops (per layer; the embeddings) |
   | --- | --- |
   | BERT, ELECTRA, DistilBERT | Attention, BiasGelu, 2 SkipLayerNormalization; EmbedLayerNormalization |
   | RoBERTa, XLM-R | the same; the embeddings' LayerNormalization (positions computed from input_ids) |
   | DeBERTa-v2/v3 | BiasGelu, 2 SkipLayerNormalization; attention (relative positions) unfused |
   | ModernBERT | Gelu, 2 SkipLayerNormalization; attention (rotary, local windows) unfused |

   The fused graph is kept only when its logits match torch's within :data:`MAX_LOGIT_DIFF`; an optimizer
   error, nothing fused, or a mismatch keeps the graph of step 1, with a note in ``export_info.json``.
3. **int8** (``quantize="int8"``): ONNX Runtime's dynamic quantization (``quantize_dynamic``) of the graph. The
   weights of every ``MatMul`` with a constant weight (Q, K, V, the attention output and both feed-forward
   matrices of each layer, and the classifier) are stored as int8 (``QInt8``) with one scale per output column;
   activations are quantized per batch on the fly (``DynamicQuantizeMatMul``). In a fused graph Q, K and V are
   one ``Attention`` weight, quantized as ``QAttention``, with 7 of the 8 bits (ONNX Runtime's ``reduce_range``
   for it, against overflow in CPUs' int8 dot products). ``DefaultTensorType`` FLOAT tells the quantizer the type
   of the tensors its shape inference cannot see past ONNX Runtime's fused operators (all are float32 here).
   Embeddings, LayerNorm, GELU, softmax and the two attention products stay float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from seqtag import __version__
from seqtag.config import load_config
from seqtag.errors import ExportError
from seqtag.inference.onnx import (
    CRF_FILE,
    EXPORT_INFO_FILE,
    FORMATS,
    INPUTS,
    INSTALL_HINT,
    MAX_LOGIT_DIFF,
    ONNX_FILE,
    OPSET,
    OUTPUT,
    QUANTIZATIONS,
    SOURCE_RUN_INFO_FILE,
    ExportInfo,
    onnx_session,
)
from seqtag.modeling.encoders import clear_call_state
from seqtag.runs import CONFIG_FILE, INFO_FILE, read_json, require_finished_run

ATTENTION_OPS = ("Attention", "MultiHeadAttention")
# weights above this many bytes go to model.onnx.data beside the graph: one protobuf holds at most 2 GiB
EXTERNAL_DATA_BYTES = 1 << 30
# quantized ONNX op -> the float op whose weights it holds as int8
QUANTIZED_AS = {"MatMulInteger": "MatMul", "DynamicQuantizeMatMul": "MatMul", "QAttention": "Attention"}
# Step 2 is on by default: timed on a quiet 2-core AMD EPYC (AVX-512 VNNI; MiniLM-L6 fine-tuned on CoNLL-2003,
# all 3,250 dev sentences through Tagger, 2 threads, onnxruntime 1.31.1, median of 3 passes, 2026-12-08;
# docs/onnx/README.md), the fused graph tagged more words/s than the graph of step 1 at batch 1 (float32 1.24x,
# int8 1.80x) and 8 (1.12x, 1.10x); at 32 and 64 int8 tied or won (1.15x, 1.00x) and float32 lost 3-9 %.
# ``fuse=False`` (``seqtag export --no-fuse``) keeps the graph of step 1.
FUSE_DEFAULT = True


def export_run(run_dir: str | Path, output_dir: str | Path, fmt: str = "onnx", quantize: str | None = None,
               fuse: bool = FUSE_DEFAULT) -> Path:
    """Export the finished NER run ``run_dir`` into the new directory ``output_dir``; return ``output_dir``.

    ``fuse=True`` applies ONNX Runtime's transformer fusions (step 2 of the module docstring).

    Everything is written into a temporary directory beside ``output_dir`` and renamed into place at the
    end: an error or an interrupt leaves nothing behind. An existing ``output_dir``, an unfinished or missing
    run, a QA run or a model that is not a token classifier is a :class:`~seqtag.errors.SeqtagError`.
    """
    if fmt not in FORMATS:
        raise ExportError(f"export format {fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    if quantize not in (None, *QUANTIZATIONS):
        raise ExportError(f"quantization {quantize!r} is not supported; choose one of {', '.join(QUANTIZATIONS)} "
                          f"or none (float32)")
    output = Path(output_dir)
    if output.exists():
        raise ExportError(f"output {output} already exists; choose another output directory, or remove it first "
                          f"(an export is never written over)")
    run = require_finished_run(run_dir)
    cfg = load_config(run / CONFIG_FILE)
    if cfg.task != "ner":
        raise ExportError(f"{run} is a {cfg.task} run ({cfg.data.qa_head} head); export supports NER runs "
                          f"(token classification) only. Use the run itself: `seqtag predict {run} "
                          f"--question ... --context ...`")
    if cfg.model.head == "span":
        raise ExportError(f"{run} has a span head (model.head: span), which export does not support: the ONNX graph "
                          f"would need the span scores and their decoding. Use the run itself: `seqtag predict {run} "
                          f"--text ...`")
    architectures = read_json(run / "config.json").get("architectures") or []
    if not any(a.endswith("ForTokenClassification") for a in architectures):
        raise ExportError(f"{run / 'config.json'} describes {architectures or 'no architecture'}, not a token "
                          f"classification model (a linear head over an encoder); export supports those only")
    _require_onnx()
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        _write_export(run, tmp, quantize, fuse, cfg.data.max_length)
        if output.exists():  # created by someone else while we exported
            raise ExportError(f"output {output} appeared while exporting; choose another output directory")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the export from the service that serves it
        os.rename(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ModuleNotFoundError as e:
        raise ExportError(f"{e.name} is not installed; {INSTALL_HINT}") from None


def _write_export(run: Path, out: Path, quantize: str | None, fuse: bool, max_length: int) -> None:
    """Write every file of the export of ``run`` into the existing empty directory ``out``."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(str(run), use_safetensors=True,
                                                            attn_implementation="eager").float().eval()
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > EXTERNAL_DATA_BYTES
    graph_dir, fused_dir = out / ".graph", out / ".fused"  # one model.onnx (+ its data) each
    graph_dir.mkdir()
    exporter, notes = _export_onnx(model, graph_dir / ONNX_FILE)
    if large:
        _one_data_file(graph_dir / ONNX_FILE)
    with torch.no_grad():
        diff = _check_against_torch(model, graph_dir / ONNX_FILE, max_length)
        if diff > MAX_LOGIT_DIFF:
            raise ExportError(f"the ONNX graph's logits differ from the run's by up to {diff:.2e} (more than "
                              f"{MAX_LOGIT_DIFF:g}) on the check batches: torch.onnx does not export this "
                              f"{model.config.model_type} model faithfully; predict with the run itself "
                              f"(--backend torch)")
        fused_ops = {}
        if fuse:
            fused_ops, fused_diff, fuse_notes = _fuse(model, graph_dir / ONNX_FILE, fused_dir, large, max_length)
            notes += fuse_notes
            if fused_ops:
                graph_dir, diff = fused_dir, fused_diff
    quantized_ops = []
    if quantize == "int8":
        ops = ["MatMul", *(op for op in ATTENTION_OPS if op in fused_ops)]
        quantized_ops = _quantize_int8(graph_dir / ONNX_FILE, out / ONNX_FILE, ops, large)
    else:
        for f in graph_dir.iterdir():  # model.onnx, and its external data when the weights are large
            os.replace(f, out / f.name)
    shutil.rmtree(out / ".graph", ignore_errors=True)
    shutil.rmtree(fused_dir, ignore_errors=True)
    # runs saved before seqtag fixed the state may hold the base model's truncation/padding: not carried over
    clear_call_state(AutoTokenizer.from_pretrained(str(run), use_fast=True)).save_pretrained(str(out))
    for src, dst in (("config.json",) * 2, (CONFIG_FILE,) * 2, (INFO_FILE, SOURCE_RUN_INFO_FILE), (CRF_FILE,) * 2):
        if (run / src).is_file():
            shutil.copyfile(run / src, out / dst)
    info = ExportInfo(format="onnx", opset=OPSET, exporter=exporter, fusion=fuse, fused_ops=fused_ops,
                      quantization=quantize,
                      quantized_ops=quantized_ops, notes=notes, inputs=list(INPUTS), output=OUTPUT, task="ner",
                      source_run=str(run.resolve()), max_abs_logit_diff=diff, versions=_versions())
    # plain writes: the whole directory appears at once when it is renamed into place
    (out / EXPORT_INFO_FILE).write_text(json.dumps(dataclasses.asdict(info), indent=2) + "\n", encoding="utf-8")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' and optimizer's messages that say nothing about this model: the TorchScript
    exporter's deprecation, tracer and indexing warnings (the check against torch is what tells whether the
    trace generalises), torchvision ops skipped, INFO lines per pass, dynamic axis names merged; the optimizer's
    and the quantizer's warnings (they log through the root logger's level: their modules import each other as
    top-level modules, ``fusion_embedlayer``, and the quantizer recommends ``quant_pre_process``)."""
    import torch

    loggers = [logging.getLogger(name) for name in ("torch.onnx._internal.exporter._registration", "onnx_ir",
                                                    "onnxscript", "")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
            warnings.filterwarnings("ignore", message=r"Exporting aten::index operator")
            warnings.filterwarnings("ignore", message=r"# The axis name")
            warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _trace_inputs(model):
    """A (2, 8) batch whose second row is padded from position 5: the mask path is part of the trace."""
    import torch

    ids = torch.randint(0, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return ids, mask


def _export_onnx(model, path: Path) -> tuple[str, list[str]]:
    """Write the ONNX graph of ``model`` to ``path`` (both axes dynamic); return the exporter used and notes."""
    import torch

    try:
        _export_torchscript(model, path)
        return "torchscript", []
    except Exception as e:  # the tracer raises many types; the dynamo exporter may still export the model
        reason = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    for f in path.parent.iterdir():
        f.unlink()
    note = (f"exported with torch.onnx's dynamo exporter: the TorchScript exporter (torch {torch.__version__}) "
            f"failed ({reason})")
    _export_dynamo(model, path)
    return "dynamo", [note]


def _export_torchscript(model, path: Path) -> None:
    import torch

    with _quiet():
        torch.onnx.export(model, _trace_inputs(model), str(path), input_names=list(INPUTS), output_names=[OUTPUT],
                          dynamic_axes={name: {0: "batch", 1: "sequence"} for name in (*INPUTS, OUTPUT)},
                          opset_version=OPSET, dynamo=False)


def _export_dynamo(model, path: Path) -> None:
    import torch

    ids, mask = _trace_inputs(model)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with _quiet():
            program = torch.onnx.export(model, (), kwargs={"input_ids": ids, "attention_mask": mask},
                                        input_names=list(INPUTS), output_names=[OUTPUT],
                                        dynamic_shapes={name: {0: batch, 1: sequence} for name in INPUTS},
                                        opset_version=OPSET, dynamo=True, verbose=False)
    except Exception as e:  # torch.export raises many types; the user needs the model type and the cause
        raise ExportError(f"torch.onnx.export (torch {torch.__version__}) could not export this "
                          f"{model.config.model_type} model: {type(e).__name__}: {str(e).splitlines()[0]}; "
                          f"predict with the run itself (--backend torch)") from e
    program.save(str(path))


def _one_data_file(path: Path) -> None:
    """Rewrite the graph at ``path`` with its weights in one ``model.onnx.data`` beside it (the TorchScript exporter
    writes a file per tensor for a model over 2 GiB, and none below)."""
    import onnx

    graph = onnx.load(str(path))
    for f in path.parent.iterdir():
        f.unlink()
    onnx.save_model(graph, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data")


def _fuse(model, src: Path, out_dir: Path, large: bool, max_length: int) -> tuple[dict[str, int], float, list[str]]:
    """ONNX Runtime's transformer fusions of the graph at ``src``, written to ``out_dir/model.onnx``.

    Returns the fused operator counts (``{}`` when the unfused graph is to be kept), the fused graph's largest
    logit difference from torch, and notes for ``export_info.json``.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    kind = model.config.model_type
    try:
        with _quiet():
            optimized = optimize_model(str(src), model_type="bert", num_heads=model.config.num_attention_heads,
                                       hidden_size=model.config.hidden_size, opt_level=0)
            fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    except Exception as e:  # the optimizer's pattern matchers raise many types on graphs they do not expect
        return {}, 0.0, [f"not fused: ONNX Runtime's transformer optimizer failed on this {kind} graph "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); the graph is unfused"]
    if not fused:
        return {}, 0.0, [f"not fused: ONNX Runtime's transformer optimizer matched no pattern in this {kind} "
                         f"graph; the graph is unfused"]
    out_dir.mkdir()
    optimized.save_model_to_file(str(out_dir / ONNX_FILE), use_external_data_format=large)
    diff = _check_against_torch(model, out_dir / ONNX_FILE, max_length)
    if diff > MAX_LOGIT_DIFF:
        return {}, 0.0, [f"not fused: the fused graph's logits differed from the run's by up to {diff:.2e} (more "
                         f"than {MAX_LOGIT_DIFF:g}); the graph is unfused"]
    if any(op in fused for op in ATTENTION_OPS):
        return fused, diff, []
    return fused, diff, [f"attention not fused: ONNX Runtime's optimizer matched none of its attention patterns "
                         f"in this {kind} graph; attention runs as separate MatMul and Softmax operators"]


def _check_against_torch(model, path: Path, max_length: int) -> float:
    """Largest absolute logit difference between the ONNX graph at ``path`` and ``model`` at the real tokens of
    batches of shapes (3, 13) and (2, ``max_length``) (one row padded in each) and (1, 5), none of them the traced
    shape. Padded positions are left out: no prediction reads them.

    ``max_length`` is the run's window length, the longest input seqtag feeds the model, kept 2 under the model's
    position limit (RoBERTa's positions start after the padding index)."""
    import torch

    session = onnx_session(path, threads=None)
    gen = torch.Generator().manual_seed(1)
    longest = min(max_length, getattr(model.config, "max_position_embeddings", max_length) - 2)
    diff = 0.0
    for b, t in ((3, 13), (1, 5), (2, longest)):
        ids = torch.randint(0, model.config.vocab_size, (b, t), generator=gen)
        mask = torch.ones_like(ids)
        if b > 1:
            mask[0, t // 2:] = 0
        ref = model(input_ids=ids, attention_mask=mask).logits
        got = session.run([OUTPUT], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        diff = max(diff, (torch.from_numpy(got) - ref)[mask.bool()].abs().max().item())
    return diff


def _quantize_int8(src: Path, dst: Path, ops: list[str], large: bool) -> list[str]:
    """Quantize the weights of the ``ops`` in the graph at ``src`` to int8 into ``dst``; return the op types
    whose weights were quantized, as named before quantization."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                         per_channel=True, use_external_data_format=large,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    graph = onnx.load(str(dst), load_external_data=False).graph
    return sorted({QUANTIZED_AS[n.op_type] for n in graph.node if n.op_type in QUANTIZED_AS})


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript
    import torch
    import transformers

    return {"seqtag": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "onnx": onnx.__version__, "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__}
