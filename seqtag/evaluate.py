"""Evaluating a finished run on a data file, with exactly the code path training used for its metrics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from seqtag.errors import SeqtagError


def evaluate_run(run_dir: str | Path, data_path: str, batch_size: int | None = None) -> tuple[dict, list]:
    """Score a finished run on ``data_path`` (read with the run's data settings).

    NER returns ``(report, rows)`` with rows ``(word, gold, predicted)`` and ``("", "", None)`` between sentences; QA returns ``({"exact_match", "f1"}, predictions)``.
    Works under ``accelerate launch``: every example is scored exactly once whatever the process count.
    """
    from seqtag.config import load_config
    from seqtag.runs import CONFIG_FILE, INFO_FILE, read_json, require_finished_run
    from seqtag.train import make_accelerator

    run_dir = require_finished_run(run_dir)
    if not Path(data_path).is_file():
        raise SeqtagError(f"--data {data_path} does not exist; give a labelled file (CoNLL columns or JSON Lines for "
                          f"NER, SQuAD JSON/zip or JSON Lines for QA)")
    cfg = load_config(run_dir / CONFIG_FILE)
    info = read_json(run_dir / INFO_FILE)
    # the training run's precision: the same code path and numerics as the metrics training wrote
    accelerator = make_accelerator(cfg.train.mixed_precision if torch.cuda.is_available() or
                                   cfg.train.mixed_precision != "fp16" else "no", 1)
    batch_size = batch_size or cfg.train.eval_batch_size
    if cfg.task == "qa":
        from seqtag.tasks.qa import evaluate_file

        return evaluate_file(run_dir, cfg, data_path, accelerator, batch_size)
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from seqtag.data import schemes
    from seqtag.data.conll import validate_sentences
    from seqtag.data.ner import _map_unseen, read_split, tokenize_ner
    from seqtag.tasks.ner import evaluate_sentences

    data = replace(cfg.data, format="auto" if cfg.data.format == "hub" else cfg.data.format, dev=data_path)
    sentences = read_split(data, "dev")
    if any(s.tags is None for s in sentences):
        raise SeqtagError(f"{data_path} has no tag column; evaluation needs gold tags (use `seqtag predict` to tag)")
    source = info.get("source_scheme") or cfg.data.scheme
    if source == "auto":
        source = schemes.detect_scheme([s.tags for s in sentences])
    sentences, _ = validate_sentences(sentences, source, on_invalid=cfg.data.on_invalid)
    if source != cfg.data.train_scheme:
        sentences = [replace(s, tags=tuple(schemes.convert(list(s.tags), source, cfg.data.train_scheme)))
                     for s in sentences]
    model = AutoModelForTokenClassification.from_pretrained(str(run_dir), use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir), use_fast=True)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    known = {lab.split("-", 1)[1] for lab in labels if lab != "O"}
    sentences, _ = _map_unseen(sentences, known, "evaluation", cfg.data.unseen_labels)
    with accelerator.main_process_first():
        features = tokenize_ner(sentences, tokenizer, labels, cfg.data)
    model = accelerator.prepare(model)
    report, pred = evaluate_sentences(model, tokenizer, features, sentences, labels, cfg.data.train_scheme,
                                      accelerator, batch_size)
    rows = []
    for s, p in zip(sentences, pred, strict=True):
        rows.extend(zip(s.tokens, s.tags, p, strict=True))
        rows.append(("", "", None))
    return report, rows
