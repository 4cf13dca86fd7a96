"""NER on the training loop: word-level features, the loss of a batch, and word-level evaluation."""

from __future__ import annotations

import logging

from seqtag.checks import check_loss_for_labels
from seqtag.constants import IGNORE_INDEX
from seqtag.data.ner import load_ner_data, tokenize_ner, window_counts
from seqtag.inference import DEFAULT_MAX_TOKENS, argmax_decode, word_probabilities
from seqtag.metrics import ner_report
from seqtag.model import load_model
from seqtag.runs import SEQEVAL_MODE, WindowCounts
from seqtag.tasks.common import TaskSetup

log = logging.getLogger(__name__)


def loss_step(model, batch, loss):
    """Summed loss over the batch's labelled subwords; logits (B, T, C) are flattened to (N, C)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits.flatten(0, 1)
    targets = batch["labels"].flatten()
    return loss(logits, targets, reduction="sum"), (targets != IGNORE_INDEX).sum(), logits, targets


def evaluate_sentences(model, tokenizer, features, sentences, labels, scheme, accelerator, batch_size,
                       max_tokens: int = DEFAULT_MAX_TOKENS) -> tuple[dict, list[list[str]]]:
    """Word-level entity scores of ``model`` on tagged ``sentences`` (their ``features`` from :func:`tokenize_ner`).

    Returns ``(report, predicted_tags)``; the report is one split of ``metrics.json`` (:func:`seqtag.metrics.ner_report`).
    """
    cols = {k: features[k] for k in ("input_ids", "word_index", "sentence_index")}
    probs = word_probabilities(model, cols, [len(s.tokens) for s in sentences], tokenizer.pad_token_id,
                               batch_size=batch_size, max_tokens=max_tokens, accelerator=accelerator)
    pred, _ = argmax_decode(probs, labels)
    return ner_report([list(s.tags) for s in sentences], pred, scheme=scheme), pred


def setup(cfg, tokenizer, accelerator) -> TaskSetup:
    from transformers import AutoModelForTokenClassification

    data = load_ner_data(cfg.data)
    labels = data.labels
    check_loss_for_labels(cfg.loss, labels, f"the training data ({cfg.data.train})")
    with accelerator.main_process_first():  # the main process tokenises and caches; the others read the cache
        features = {split: tokenize_ner(sents, tokenizer, labels, cfg.data) for split, sents in data.splits.items()}
    windows = {split: WindowCounts(*window_counts(f)) for split, f in features.items()}
    for split, w in windows.items():
        if w.windowed:
            log.info("%s: %d sentences longer than data.max_length=%d were split into windows (%d windows for "
                     "%d sentences)", split, w.windowed, cfg.data.max_length, w.windows, w.examples)
    model = load_model(cfg.model, AutoModelForTokenClassification, num_labels=len(labels),
                       id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})

    def evaluate(model, split: str, accelerator, batch_size: int) -> dict:
        return evaluate_sentences(model, tokenizer, features[split], data.splits[split], labels, data.train_scheme,
                                  accelerator, batch_size)[0]

    def describe(batch) -> list[str]:
        return [" ".join(tokenizer.convert_ids_to_tokens(row[:12])) for row in batch["input_ids"].tolist()]

    return TaskSetup(
        model=model,
        train_features=features["train"].select_columns(["input_ids", "labels", "length"]),
        columns=["input_ids", "labels"],
        loss_step=loss_step,
        evaluate=evaluate,
        eval_splits=[s for s in ("dev", "test") if s in data.splits],
        describe_examples=describe,
        entity_label_ids=[i for i, lab in enumerate(labels) if lab != "O"],
        info={
            "labels": labels, "tag_scheme": data.train_scheme, "source_scheme": data.source_scheme,
            "seqeval_mode": SEQEVAL_MODE, "train_examples": len(data.splits["train"]), "windows": windows,
            "data_notes": data.notes,
        },
    )
