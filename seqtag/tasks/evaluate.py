"""Evaluating a finished run on a labelled file or on one of its own configured splits, NER or QA, with exactly the
code path training used for its metrics (the same readers, tag handling, windows, batching and precision, and the
same ``data.max_eval_examples`` cut)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seqtag.config import apply_overrides, load_config
from seqtag.data.ner import read_split as read_ner_split
from seqtag.data.ner import settle_tags, source_scheme, tokenize_ner
from seqtag.data.qa_windows import prepare_features
from seqtag.data.schemes import entity_types
from seqtag.data.squad import check_answered, read_qa, read_split, squad_articles
from seqtag.errors import ConfigError, DataError
from seqtag.inference.engine import DEFAULT_MAX_TOKENS, FinishedRun, load_finished_run
from seqtag.inference.onnx import SOURCE_RUN_INFO_FILE, load_export
from seqtag.inference.predict import warn_if_crf_argmax
from seqtag.modeling.accel import inference_precision, make_accelerator
from seqtag.modeling.crf import load_transitions
from seqtag.runs import CONFIG_FILE, RunInfo, SplitScores, read_json, require_finished_run
from seqtag.tasks.ner import evaluate_sentences
from seqtag.tasks.qa import check_null_threshold, evaluate_examples, run_null_threshold
from seqtag.tasks.span import evaluate_span_run

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    scores: SplitScores
    # NER: (word, gold tag, predicted tag) rows with ("", "", None) between sentences (conlleval's input);
    # QA: {question id: predicted answer}; span head: {"FILE:LINE": {"tokens", "gold", "predicted"}}
    predictions: Any


SPLITS = ("dev", "test")
"""The configured splits ``evaluate_run(split=...)`` (``seqtag evaluate --split``) scores."""


def evaluate_run(run_dir: str | Path, data_path: str | Path | None = None, batch_size: int | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, overrides: Sequence[str] = (),
                 decoding: str | None = None, backend: str = "torch",
                 null_threshold: float | None = None, split: str | None = None) -> Evaluation:
    """Score a finished run on ``data_path``, read with the run's data settings (``data.*`` ``overrides`` may
    change them, e.g. ``data.unseen_labels=map_to_o``) and decoded with its ``predict.decoding`` (or ``decoding``;
    argmax on a CRF run is warned about).
    A QA run with unanswerable questions answers "" past its recorded null threshold (or ``null_threshold``).

    ``split`` (``"dev"`` or ``"test"``) instead of ``data_path``: the run's own configured split, read exactly as
    training read it: its file or Hub split and format, its article range (``data.<split>_articles``, QA) or
    document range (span JSON Lines with ``doc_id``). A config whose split is null is refused before the model is
    loaded.

    As training scored its dev/test splits: only the first ``data.max_eval_examples`` sentences or questions of the
    file when the run set it (a warning says so; ``data.max_eval_examples=null`` scores them all), at the run's
    precision (:func:`seqtag.modeling.accel.inference_precision`). Works under ``accelerate launch``: the
    accelerator is made first and the model loaded onto its device, so each process uses its own GPU, and every
    example is scored exactly once whatever the process count. ``backend="onnx"``: ``run_dir`` is an export
    directory (``seqtag export``, NER), run on ONNX Runtime in this process through the same inference path.
    """
    bad = [o for o in overrides if not o.strip().startswith("data.")]
    if bad:
        raise ConfigError(f"evaluate takes data.* overrides only (the model is the run's), got {bad[0]!r}")
    _check_source(data_path, split)
    data_path = None if data_path is None else str(data_path)
    overrides = [*overrides, *([f"predict.decoding={decoding}"] if decoding else [])]
    _check_null_threshold(run_dir, null_threshold, backend)
    if backend == "onnx":
        exp = load_export(run_dir)
        info = RunInfo.from_dict(read_json(Path(run_dir) / SOURCE_RUN_INFO_FILE), Path(run_dir) / SOURCE_RUN_INFO_FILE)
        cfg = apply_overrides(load_config(Path(run_dir) / CONFIG_FILE), list(overrides))
        _check_split(cfg, split, Path(run_dir) / CONFIG_FILE)
        run = FinishedRun(Path(run_dir), cfg, info, exp.model, exp.tokenizer, exp.labels)
        transitions = tuple(load_transitions(exp.crf_transitions, exp.labels)[1:]) if exp.crf_transitions else None
        warn_if_crf_argmax(transitions is not None, cfg.predict.decoding, str(run_dir))
        return _evaluate_ner(run, exp.model, data_path, split, None, batch_size or cfg.train.eval_batch_size,
                             max_tokens, transitions)
    # the run's config first (overrides checked before anything is loaded), then the accelerator, then the model
    # on the accelerator's device: under `accelerate launch` each process loads onto its own GPU
    cfg = apply_overrides(load_config(require_finished_run(run_dir) / CONFIG_FILE), list(overrides))
    _check_split(cfg, split, Path(run_dir) / CONFIG_FILE)
    accelerator = make_accelerator(inference_precision(cfg.train.mixed_precision))
    run = load_finished_run(run_dir, str(accelerator.device))
    if overrides:
        run = replace(run, cfg=apply_overrides(run.cfg, list(overrides)))
    if run.cfg.task == "ner":
        warn_if_crf_argmax(run.cfg.model.head == "crf", run.cfg.predict.decoding, str(run.run_dir))
    batch_size = batch_size or run.cfg.train.eval_batch_size
    model = accelerator.prepare(run.model)
    if run.cfg.task == "qa":
        threshold = run_null_threshold(run.cfg, run.info.null_threshold, null_threshold)
        return _evaluate_qa(run, model, data_path, split, accelerator, batch_size, max_tokens, threshold,
                            _unanswerable_threshold(run.info.null_threshold, null_threshold))
    if run.cfg.model.head == "span":
        report, rows = evaluate_span_run(run, model, data_path, accelerator, batch_size, max_tokens, split=split)
        return Evaluation(SplitScores.from_dict(report), rows)
    return _evaluate_ner(run, model, data_path, split, accelerator, batch_size, max_tokens)


def _check_source(data_path: str | Path | None, split: str | None) -> None:
    """Exactly one of a file and a configured split; the file must exist."""
    if (data_path is None) == (split is None):
        raise ConfigError("evaluate scores a labelled file (--data FILE) or one of the run's own splits (--split dev "
                          "or --split test); give exactly one of them")
    if split is not None:
        if split not in SPLITS:
            raise ConfigError(f"--split {split}: choose dev or test (the run's data.dev or data.test)")
        return
    if not Path(data_path).is_file():
        what = "is a directory" if Path(data_path).is_dir() else "does not exist"
        raise DataError(f"--data {data_path} {what}; give a labelled file (CoNLL columns or JSON Lines for NER, "
                        "SQuAD JSON/zip or JSON Lines for QA)")


def _check_split(cfg, split: str | None, config_file: Path) -> None:
    """``--split``: the run's config must name that split."""
    if split is not None and not getattr(cfg.data, split):
        raise ConfigError(f"--split {split}: data.{split} is null in {config_file}, so the run has no {split} split to "
                          f"score; score a labelled file with --data FILE instead")


def _split_name(data, split: str) -> str:
    """How messages name a configured split: ``data.test (FILE)``."""
    return f"data.{split} ({getattr(data, split)})"


def _first(items: list, limit: int | None, path: object, what: str) -> list:
    """The first ``limit`` (``data.max_eval_examples``) of ``items``, as training keeps of its dev/test splits; a
    warning when that drops some, so a score of part of a file is never taken for one of the whole file."""
    if limit is None or len(items) <= limit:
        return items
    log.warning("scoring the first %d of the %d %s in %s: the run sets data.max_eval_examples=%d, as its dev/test "
                "scores did; add data.max_eval_examples=null to score them all", limit, len(items), what, path, limit)
    return items[:limit]
def _check_null_threshold(run_dir: str | Path, null_threshold: float | None, backend: str) -> None:
    """``--null-threshold`` is a probability, for QA runs (an ONNX export is of an NER run); checked before the
    model is loaded."""
    if null_threshold is None:
        return
    if backend == "onnx" or load_config(Path(run_dir) / CONFIG_FILE).task != "qa":
        raise ConfigError(f"--null-threshold is for QA runs with unanswerable questions; {run_dir} is an NER run")
    check_null_threshold(null_threshold)


def _unanswerable_threshold(recorded: float | None, override: float | None) -> str:
    """The threshold ``data.allow_unanswerable=true`` would make evaluate score at (:func:`run_null_threshold`), in
    words, for the message that refuses unanswerable questions in a run read as SQuAD v1.1."""
    if override is not None:
        return f"--null-threshold {override:g}"
    if recorded is not None:
        return f"the no-answer threshold {recorded:.6g} that the run recorded (--null-threshold P sets another)"
    return ("the default no-answer threshold 0.5 (--null-threshold P sets another); this run was trained without "
            'unanswerable questions, so its model never learned to answer ""')


def _evaluate_ner(run: FinishedRun, model, data_path: str | None, split: str | None, accelerator, batch_size: int,
                  max_tokens: int, transitions: tuple | None = None) -> Evaluation:
    if split is None:  # --data FILE, read as the run's dev split would be
        data = replace(run.cfg.data, format="auto" if run.cfg.data.format == "hub" else run.cfg.data.format,
                       dev=data_path)
        split, role, source = "dev", "evaluation", data_path
    else:  # the run's own split, as training read it
        data, role, source = run.cfg.data, split, _split_name(run.cfg.data, split)
    sentences = _first(read_ner_split(data, split), data.max_eval_examples, source, "sentences")
    if any(s.tags is None for s in sentences):
        raise DataError(f"{source} has no tag column; evaluation needs gold tags (use `seqtag predict` to tag)")
    known = set(entity_types([run.labels]))
    scheme = run.info.source_scheme or source_scheme(data, sentences)
    sentences, _, _ = settle_tags(sentences, role, scheme, data, known)
    with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
        features = tokenize_ner(sentences, run.tokenizer, run.labels, data)
    report, pred = evaluate_sentences(model, run.tokenizer, features, sentences, run.labels, data.train_scheme,
                                      accelerator, batch_size, max_tokens, decoding=run.cfg.predict.decoding,
                                      transitions=transitions)
    rows: list = []
    for s, p in zip(sentences, pred, strict=True):
        rows.extend(zip(s.tokens, s.tags, p, strict=True))
        rows.append(("", "", None))
    return Evaluation(SplitScores.from_dict(report), rows)


def _evaluate_qa(run: FinishedRun, model, data_path: str | None, split: str | None, accelerator, batch_size: int,
                 max_tokens: int, null_threshold: float | None, evaluate_at: str) -> Evaluation:
    data = run.cfg.data
    if split is None:  # --data FILE: every question of it
        path = Path(data_path)
        examples, source = read_qa(path, encoding=data.encoding), path
        articles = squad_articles(path, data.encoding) if path.suffix.lower() in (".json", ".zip") else None
    else:  # the run's own split, as training read it (unanswerable questions refused there unless allowed)
        examples, articles = read_split(data, split, evaluate_at=evaluate_at)
        source = _split_name(data, split)
    kept = _first(examples, data.max_eval_examples, source, "questions")
    if len(kept) < len(examples):
        examples, articles = kept, None  # score only the kept questions, as training does
    if split is None and not data.allow_unanswerable:
        check_answered(examples, source, evaluate_at)
    with accelerator.main_process_first():
        features = prepare_features(examples, run.tokenizer, data.max_length, data.doc_stride, data.qa_head,
                                    with_labels=False)
    scores, answers = evaluate_examples(model, run.tokenizer, examples, features, data.qa_head,
                                        data.max_answer_length, accelerator, batch_size, articles, max_tokens,
                                        unanswerable=null_threshold is not None, null_threshold=null_threshold)
    return Evaluation(SplitScores.from_dict(scores), answers)
