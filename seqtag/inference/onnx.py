"""Exporting a finished NER run to ONNX, and running the export on CPU with ONNX Runtime.

An export directory holds ``model.onnx`` (inputs ``input_ids`` and ``attention_mask``, int64 ``(B, T)``; output
``logits``, float32 ``(B, T, C)``; batch and sequence axes dynamic), the tokenizer files, ``config.json`` (its
``id2label`` is the label set), the run's ``seqtag_config.yaml`` (tag scheme and window settings), the run's
``run_info.json`` as ``source_run_info.json`` (renamed, so that an export is never taken for a run directory),
``export_info.json`` (:class:`ExportInfo`) and, when the run has one, ``crf_transitions.safetensors``.
:func:`load_export` turns it into what prediction needs, with :class:`OnnxTokenClassifier` standing in for the
torch model: ``model(input_ids=..., attention_mask=...).logits`` is a float32 torch tensor.

Exporter: ``torch.onnx.export(dynamo=True)`` (the default exporter of torch 2.9+, opset 18). ``optimum-onnx``
(0.1.0, the current release) requires ``transformers<4.58`` and cannot be installed beside transformers 5, and
the legacy TorchScript exporter is deprecated. The dynamo exporter exports transformers 5's BERT (SDPA
attention included) with named dynamic axes; :func:`export_run` checks every export against the run's torch
model on a padded batch of another shape than the one traced, and refuses one whose logits differ by more than
:data:`MAX_LOGIT_DIFF`.

``token_type_ids`` is not an input: seqtag's prediction never passes it (the model fills in zeros), so the
graph computes exactly what the torch model computes for seqtag.

int8 (``quantize="int8"``): ONNX Runtime's dynamic quantization (``quantize_dynamic``). The weights of every
``MatMul`` with a constant weight (Q, K, V, attention output, both feed-forward matrices of each layer, and the
classifier) are stored as int8 (``QInt8``) with one scale per output column (``per_channel``); activations are
quantized on the fly per batch (``DynamicQuantizeLinear`` + ``MatMulInteger``, which ONNX Runtime fuses into
``DynamicQuantizeMatMul``). The two attention products (``Q K^T`` and ``softmax V``), embeddings, LayerNorm
and softmax stay float32. On a 150-step MiniLM CoNLL-2003 run, per-column scales changed 17 of the 2,591 word
tags of the first 200 dev sentences against torch fp32, one scale per matrix 30 (2026-12-02).
``quant_pre_process`` is not run: its symbolic shape inference does not complete on dynamo-exported graphs;
the session's own graph optimizations apply when the model is loaded (they fuse SkipLayerNormalization, not
attention).
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seqtag import __version__
from seqtag.config import load_config
from seqtag.errors import ExportError
from seqtag.modeling.crf import TRANSITIONS_FILE
from seqtag.modeling.encoders import clear_call_state
from seqtag.runs import CONFIG_FILE, INFO_FILE, read_json, require_finished_run

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
QUANTIZED_OPS = ("MatMul",)
MAX_LOGIT_DIFF = 1e-3  # fp32 ONNX against torch on the check batch; float reordering alone gives ~1e-6
INSTALL_HINT = "install the ONNX extra: pip install 'seqtag[onnx]'"


@dataclass(frozen=True)
class ExportInfo:
    """``export_info.json``: what was exported, how, and from which run."""

    format: str  # "onnx"
    opset: int  # ONNX opset of the graph
    quantization: str | None  # None (float32) or "int8" (dynamic; QInt8 weights, per column, of quantized_ops)
    quantized_ops: list[str]  # ONNX op types whose weights are int8; empty for float32
    inputs: list[str]  # graph inputs, int64 (B, T)
    output: str  # graph output, float32 (B, T, C)
    task: str  # "ner"
    source_run: str  # absolute path of the run directory exported
    max_abs_logit_diff: float  # float32 graph against the torch model on the check batch, at export time
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


# ------------------------------------------------------------------------------------------------ export


def export_run(run_dir: str | Path, output_dir: str | Path, fmt: str = "onnx", quantize: str | None = None) -> Path:
    """Export the finished NER run ``run_dir`` into the new directory ``output_dir``; return ``output_dir``.

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
        _write_export(run, tmp, cfg.task, quantize)
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


def _write_export(run: Path, out: Path, task: str, quantize: str | None) -> None:
    """Write every file of the export of ``run`` into the existing empty directory ``out``."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(str(run), use_safetensors=True).float().eval()
    fp32_dir = out / ".fp32"
    fp32_dir.mkdir()
    _export_onnx(model, fp32_dir / ONNX_FILE)
    with torch.no_grad():
        diff = _check_against_torch(model, fp32_dir / ONNX_FILE)
    if diff > MAX_LOGIT_DIFF:
        raise ExportError(f"the ONNX graph's logits differ from the run's by up to {diff:.2e} (more than "
                          f"{MAX_LOGIT_DIFF:g}) on the check batch: torch.onnx does not export this "
                          f"{model.config.model_type} model faithfully; predict with the run itself (--backend torch)")
    if quantize == "int8":
        _quantize_int8(fp32_dir / ONNX_FILE, out / ONNX_FILE)
    else:
        for f in fp32_dir.iterdir():  # model.onnx, and model.onnx.data when the weights pass 2 GB
            os.replace(f, out / f.name)
    shutil.rmtree(fp32_dir)
    # runs saved before seqtag fixed the state may hold the base model's truncation/padding: not carried over
    clear_call_state(AutoTokenizer.from_pretrained(str(run), use_fast=True)).save_pretrained(str(out))
    for src, dst in (("config.json",) * 2, (CONFIG_FILE,) * 2, (INFO_FILE, SOURCE_RUN_INFO_FILE), (CRF_FILE,) * 2):
        if (run / src).is_file():
            shutil.copyfile(run / src, out / dst)
    info = ExportInfo(format="onnx", opset=OPSET, quantization=quantize,
                      quantized_ops=list(QUANTIZED_OPS) if quantize else [], inputs=list(INPUTS), output=OUTPUT,
                      task=task, source_run=str(run.resolve()), max_abs_logit_diff=diff, versions=_versions())
    # plain writes: the whole directory appears at once when it is renamed into place
    (out / EXPORT_INFO_FILE).write_text(json.dumps(dataclasses.asdict(info), indent=2) + "\n", encoding="utf-8")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's messages that say nothing about this model: torchvision ops skipped, the graph
    optimizer's INFO lines (one per pass and initializer), dynamic axis names merged, a pytree deprecation."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx._internal.exporter._registration", "onnx_ir",
                                                    "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"# The axis name")
            warnings.filterwarnings("ignore", message=r".*LeafSpec", category=FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_onnx(model, path: Path) -> None:
    """Trace ``model`` on a (2, 8) batch with both axes dynamic and write the ONNX graph to ``path``."""
    import torch

    ids = torch.randint(0, model.config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    try:
        with _quiet_exporter():
            program = torch.onnx.export(model, (), kwargs={"input_ids": ids, "attention_mask": mask},
                                        input_names=list(INPUTS), output_names=[OUTPUT],
                                        dynamic_shapes={name: {0: batch, 1: sequence} for name in INPUTS},
                                        opset_version=OPSET, dynamo=True, verbose=False)
    except Exception as e:  # torch.export raises many types; the user needs the model type and the cause
        raise ExportError(f"torch.onnx.export (torch {torch.__version__}) could not export this "
                          f"{model.config.model_type} model: {type(e).__name__}: {str(e).splitlines()[0]}; "
                          f"predict with the run itself (--backend torch)") from e
    program.save(str(path))


def _check_against_torch(model, path: Path) -> float:
    """Largest absolute logit difference between the ONNX graph at ``path`` and ``model`` on batches of shapes
    (3, 13) (one row padded) and (1, 5), neither of them the traced shape."""
    import torch

    session = _session(path, threads=None)
    gen = torch.Generator().manual_seed(1)
    diff = 0.0
    for b, t in ((3, 13), (1, 5)):
        ids = torch.randint(0, model.config.vocab_size, (b, t), generator=gen)
        mask = torch.ones_like(ids)
        if b > 1:
            mask[0, t // 2:] = 0
        ref = model(input_ids=ids, attention_mask=mask).logits
        got = session.run([OUTPUT], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        diff = max(diff, (torch.from_numpy(got) - ref).abs().max().item())
    return diff


def _quantize_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a root warning recommending quant_pre_process (see above)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS),
                         per_channel=True)
    finally:
        root.setLevel(level)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript
    import torch
    import transformers

    return {"seqtag": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "onnx": onnx.__version__, "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__}


# ------------------------------------------------------------------------------------------------ inference


def _session(path: Path, threads: int | None):
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
        self.session = _session(self.path, threads)
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
    decoding: str  # the run's predict.decoding


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
    return LoadedExport(OnnxTokenClassifier(path / ONNX_FILE, threads), tokenizer, labels, cfg.data.train_scheme,
                        cfg.data.max_length, cfg.data.stride, info, crf if crf.is_file() else None,
                        cfg.predict.decoding)
