"""Evaluating a finished run on a labelled file, NER or QA, with exactly the code path training used for its
metrics (the same readers, tag handling, windows, batching and precision)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seqtag.config import apply_overrides, load_config
from seqtag.data.ner import read_split as read_ner_split
from seqtag.data.ner import settle_tags, source_scheme, tokenize_ner
from seqtag.data.qa_windows import prepare_features
from seqtag.data.schemes import entity_types
from seqtag.data.squad import check_answered, read_qa, squad_articles
from seqtag.errors import ConfigError, DataError
from seqtag.inference.engine import DEFAULT_MAX_TOKENS, FinishedRun, load_finished_run
from seqtag.inference.onnx import SOURCE_RUN_INFO_FILE, load_export
from seqtag.modeling.accel import inference_precision, make_accelerator
from seqtag.modeling.crf import load_transitions
from seqtag.runs import CONFIG_FILE, RunInfo, SplitScores, read_json
from seqtag.tasks.ner import evaluate_sentences
from seqtag.tasks.qa import evaluate_examples
from seqtag.tasks.span import evaluate_span_run


@dataclass
class Evaluation:
    scores: SplitScores
    # NER: (word, gold tag, predicted tag) rows with ("", "", None) between sentences (conlleval's input);
    # QA: {question id: predicted answer}; span head: {"FILE:LINE": {"tokens", "gold", "predicted"}}
    predictions: Any


def evaluate_run(run_dir: str | Path, data_path: str | Path, batch_size: int | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS, overrides: Sequence[str] = (),
                 decoding: str | None = None, backend: str = "torch") -> Evaluation:
    """Score a finished run on ``data_path``, read with the run's data settings (``data.*`` ``overrides`` may
    change them, e.g. ``data.unseen_labels=map_to_o``) and decoded with its ``predict.decoding`` (or ``decoding``).

    Works under ``accelerate launch``: every example is scored exactly once whatever the process count.
    ``backend="onnx"``: ``run_dir`` is an export directory (``seqtag export``, NER), run on ONNX Runtime in this
    process through the same inference path.
    """
    bad = [o for o in overrides if not o.strip().startswith("data.")]
    if bad:
        raise ConfigError(f"evaluate takes data.* overrides only (the model is the run's), got {bad[0]!r}")
    if not Path(data_path).is_file():
        what = "is a directory" if Path(data_path).is_dir() else "does not exist"
        raise DataError(f"--data {data_path} {what}; give a labelled file (CoNLL columns or JSON Lines for NER, "
                        "SQuAD JSON/zip or JSON Lines for QA)")
    overrides = [*overrides, *([f"predict.decoding={decoding}"] if decoding else [])]
    if backend == "onnx":
        exp = load_export(run_dir)
        info = RunInfo.from_dict(read_json(Path(run_dir) / SOURCE_RUN_INFO_FILE), Path(run_dir) / SOURCE_RUN_INFO_FILE)
        cfg = apply_overrides(load_config(Path(run_dir) / CONFIG_FILE), list(overrides))
        run = FinishedRun(Path(run_dir), cfg, info, exp.model, exp.tokenizer, exp.labels)
        transitions = tuple(load_transitions(exp.crf_transitions, exp.labels)[1:]) if exp.crf_transitions else None
        return _evaluate_ner(run, exp.model, str(data_path), None, batch_size or cfg.train.eval_batch_size,
                             max_tokens, transitions)
    run = load_finished_run(run_dir)
    if overrides:
        run = replace(run, cfg=apply_overrides(run.cfg, list(overrides)))
    accelerator = make_accelerator(inference_precision(run.cfg.train.mixed_precision))
    batch_size = batch_size or run.cfg.train.eval_batch_size
    model = accelerator.prepare(run.model)
    if run.cfg.task == "qa":
        return _evaluate_qa(run, model, Path(data_path), accelerator, batch_size, max_tokens)
    if run.cfg.model.head == "span":
        report, rows = evaluate_span_run(run, model, str(data_path), accelerator, batch_size, max_tokens)
        return Evaluation(SplitScores.from_dict(report), rows)
    return _evaluate_ner(run, model, str(data_path), accelerator, batch_size, max_tokens)


def _evaluate_ner(run: FinishedRun, model, data_path: str, accelerator, batch_size: int, max_tokens: int,
                  transitions: tuple | None = None) -> Evaluation:
    data = replace(run.cfg.data, format="auto" if run.cfg.data.format == "hub" else run.cfg.data.format,
                   dev=data_path)
    sentences = read_ner_split(data, "dev")
    if any(s.tags is None for s in sentences):
        raise DataError(f"{data_path} has no tag column; evaluation needs gold tags (use `seqtag predict` to tag)")
    known = set(entity_types([run.labels]))
    source = run.info.source_scheme or source_scheme(data, sentences)
    sentences, _, _ = settle_tags(sentences, "evaluation", source, data, known)
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


def _evaluate_qa(run: FinishedRun, model, path: Path, accelerator, batch_size: int, max_tokens: int) -> Evaluation:
    data = run.cfg.data
    examples = read_qa(path, encoding=data.encoding)
    articles = squad_articles(path, data.encoding) if path.suffix.lower() in (".json", ".zip") else None
    check_answered(examples, path)
    with accelerator.main_process_first():
        features = prepare_features(examples, run.tokenizer, data.max_length, data.doc_stride, data.qa_head,
                                    with_labels=False)
    scores, answers = evaluate_examples(model, run.tokenizer, examples, features, data.qa_head,
                                        data.max_answer_length, accelerator, batch_size, articles, max_tokens)
    return Evaluation(SplitScores.from_dict(scores), answers)
