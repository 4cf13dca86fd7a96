"""An ONNX export directory: its files, ``export_info.json``, and prediction with it on ONNX Runtime (CPU).

An export directory holds ``model.onnx`` (inputs ``input_ids`` and ``attention_mask``, int64 ``(B, T)``; output
``logits``, float32 ``(B, T, C)``; batch and sequence axes dynamic; with ``model.onnx.data`` beside it when the
weights are too large for one protobuf), the tokenizer files, ``config.json`` (its ``id2label`` is the label set),
the run's ``seqtag_config.yaml`` (tag scheme and window settings), the run's ``run_info.json`` as
``source_run_info.json`` (renamed, so that an export is never taken for a run directory), ``export_info.json``
(:class:`ExportInfo`: how the graph was made, which operators were fused and quantized) and, when the run has one,
``crf_transitions.safetensors``. :mod:`seqtag.inference.onnx_export` writes it; :func:`load_export` turns it into
what prediction needs, with :class:`OnnxTokenClassifier` standing in for the torch model:
``model(input_ids=..., attention_mask=...).logits`` is a float32 torch tensor.

A fused graph (``seqtag export``, unless ``--no-fuse``) holds ONNX Runtime's own operators (``com.microsoft`` domain: Attention,
SkipLayerNormalization, BiasGelu, EmbedLayerNormalization, QAttention): it runs on ONNX Runtime only. The default
graph and its int8 form (MatMulInteger, DynamicQuantizeLinear) are standard ONNX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seqtag.config import load_config
from seqtag.errors import ExportError
from seqtag.modeling.crf import TRANSITIONS_FILE
from seqtag.runs import CONFIG_FILE, RunInfo, read_json

if TYPE_CHECKING:
    import torch

FORMATS = ("onnx",)
QUANTIZATIONS = ("int8",)
OPSET = 18
ONNX_FILE = "model.onnx"
EXPORT_INFO_FILE = "export_info.json"
CRF_FILE = TRANSITIONS_FILE
SOURCE_RUN_INFO_FILE = "source_run_info.json"  # the run's run_info.json (training provenance, source_scheme)
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "logits"
MAX_LOGIT_DIFF = 1e-3  # ONNX float32 against torch on the check batches; float reordering alone gives ~1e-6
INSTALL_HINT = "install the ONNX extra: pip install 'seqtag[onnx]'"


@dataclass(frozen=True)
class ExportInfo:
    """``export_info.json``: what was exported, how, and from which run."""

    format: str  # "onnx"
    opset: int  # ONNX opset of the graph
    exporter: str  # "torchscript" (torch.onnx.export(dynamo=False), eager attention) or "dynamo"
    fusion: bool  # ONNX Runtime's transformer optimizer asked for (seqtag export; not with --no-fuse)
    fused_ops: dict[str, int]  # what it fused: operator -> count; {} without fusion or when its graph was not kept
    quantization: str | None  # None (float32) or "int8" (dynamic; QInt8 weights, per column, of quantized_ops)
    quantized_ops: list[str]  # ONNX op types whose weights are int8 ("MatMul", "Attention"); empty for float32
    notes: list[str]  # why a fusion asked for was not kept or left attention apart, or which exporter stood in
    inputs: list[str]  # graph inputs, int64 (B, T)
    output: str  # graph output, float32 (B, T, C)
    task: str  # "ner"
    source_run: str  # absolute path of the run directory exported
    max_abs_logit_diff: float  # the float32 graph (fused when fused) against torch on the check batches
    versions: dict[str, str]  # seqtag, torch, transformers, onnx, onnxscript, onnxruntime


def read_export_info(export_dir: str | Path) -> ExportInfo:
    """Read ``export_info.json``; a missing or malformed file is an :class:`~seqtag.errors.ExportError`."""
    path = Path(export_dir) / EXPORT_INFO_FILE
    raw = read_json(path)
    fields = {f.name for f in dataclasses.fields(ExportInfo)}
    if set(raw) != fields:
        raise ExportError(f"{path} does not match this seqtag's export format (missing: "
                          f"{sorted(fields - set(raw))}, unknown: {sorted(set(raw) - fields)}); export the run "
                          f"again with `seqtag export RUN --output DIR`")
    return ExportInfo(**raw)


def is_export_dir(path: str | Path) -> bool:
    """True when ``path`` looks like an export directory (``export_info.json`` and ``model.onnx``)."""
    path = Path(path)
    return (path / EXPORT_INFO_FILE).is_file() and (path / ONNX_FILE).is_file()


# ------------------------------------------------------------------------------------------------ inference


def onnx_session(path: Path, threads: int | None):
    """An ONNX Runtime CPU session of the graph at ``path`` with ``threads`` intra-op threads (None: its default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1  # one graph, run sequentially: parallelism is within ops
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class OnnxOutput:
    logits: torch.Tensor  # (B, T, C) float32


class OnnxTokenClassifier:
    """An exported ``model.onnx`` on ONNX Runtime's CPU provider, called like a transformers token classifier.

    ``threads`` sets ONNX Runtime's intra-op threads (None: its default, one per physical core).
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        self.session = onnx_session(self.path, threads)
        names = [i.name for i in self.session.get_inputs()]
        if names != list(INPUTS):
            raise ExportError(f"{self.path} takes inputs {names}, not {list(INPUTS)}; it was not written by "
                              f"`seqtag export`")

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> OnnxOutput:
        """``input_ids`` and ``attention_mask`` (B, T), integer tensors on any device; logits (B, T, C) on CPU."""
        import torch

        feeds = {"input_ids": input_ids.to("cpu", torch.int64).numpy(),
                 "attention_mask": attention_mask.to("cpu", torch.int64).numpy()}
        return OnnxOutput(torch.from_numpy(self.session.run([OUTPUT], feeds)[0]))

    def parameters(self) -> Iterator[torch.Tensor]:
        """One empty CPU tensor: prediction code reads the model's device from its first parameter."""
        import torch

        yield torch.empty(0)

    training = False  # an exported graph is always in inference mode

    def eval(self) -> OnnxTokenClassifier:
        return self

    def train(self, mode: bool = True) -> OnnxTokenClassifier:
        return self


@dataclass(frozen=True)
class LoadedExport:
    """What prediction needs from an export directory (the fields of :class:`seqtag.inference.predict.Tagger`)."""

    model: OnnxTokenClassifier
    tokenizer: object
    labels: list[str]
    scheme: str  # the tag scheme the model was trained in
    max_length: int  # subword window length
    stride: int  # subwords shared by consecutive windows
    info: ExportInfo
    crf_transitions: Path | None  # the run's CRF transition scores, when it has a CRF head
    decoding: str  # the run's decoding: that of its scores (run_info.json), else its predict.decoding


def load_export(path: str | Path, threads: int | None = None) -> LoadedExport:
    """Load an export directory written by :func:`export_run` for prediction on CPU."""
    path = Path(path)
    if not is_export_dir(path):
        raise ExportError(f"{path} is not a seqtag export (no {EXPORT_INFO_FILE} and {ONNX_FILE}); create one "
                          f"with `seqtag export RUN --output {path}`")
    info = read_export_info(path)
    if info.format not in FORMATS or info.task != "ner":
        raise ExportError(f"{path / EXPORT_INFO_FILE}: a {info.format} export of a {info.task} run; this seqtag "
                          f"predicts with onnx exports of NER runs only")
    try:
        import onnxruntime  # noqa: F401
    except ModuleNotFoundError:
        raise ExportError(f"onnxruntime is not installed; {INSTALL_HINT}") from None
    from transformers import AutoTokenizer

    cfg = load_config(path / CONFIG_FILE)
    id2label = read_json(path / "config.json").get("id2label") or {}
    labels = [id2label.get(str(i)) for i in range(len(id2label))]
    if not labels or None in labels:
        raise ExportError(f"{path / 'config.json'}: id2label {id2label} does not name labels 0..{len(id2label) - 1}; "
                          f"export the run again")
    tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    crf = path / CRF_FILE
    decoding, source = cfg.predict.decoding, path / SOURCE_RUN_INFO_FILE
    if source.is_file():  # as load_finished_run: the decoding the run's own scores were computed with
        decoding = RunInfo.from_dict(read_json(source), source).decoding or decoding
    return LoadedExport(OnnxTokenClassifier(path / ONNX_FILE, threads), tokenizer, labels, cfg.data.train_scheme,
                        cfg.data.max_length, cfg.data.stride, info, crf if crf.is_file() else None, decoding)
