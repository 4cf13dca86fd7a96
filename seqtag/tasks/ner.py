"""NER on the training loop: word-level features, the loss of a batch, and word-level evaluation."""

from __future__ import annotations

import logging

from seqtag.constants import IGNORE_INDEX
from seqtag.data.ner import load_ner_data, tokenize_ner, window_counts
from seqtag.inference.engine import (
    DEFAULT_MAX_TOKENS,
    count_invalid,
    crf_transitions,
    decode_words,
    word_logits,
)
from seqtag.metrics import ner_report
from seqtag.modeling.crf import chain_bounds
from seqtag.modeling.heads import crf_of, new_crf_tagger
from seqtag.modeling.loading import load_model
from seqtag.runs import SEQEVAL_MODE, WindowCounts
from seqtag.tasks.checks import check_loss_for_labels
from seqtag.tasks.common import TaskSetup

log = logging.getLogger(__name__)


def loss_step(model, batch, loss):
    """Summed loss over the batch's labelled subwords; logits (B, T, C) are flattened to (N, C)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits.flatten(0, 1)
    targets = batch["labels"].flatten()
    return loss(logits, targets, reduction="sum"), (targets != IGNORE_INDEX).sum(), logits, targets


def crf_loss_step(model, batch, loss):
    """The CRF head's loss: the summed negative log-likelihood of the batch's gold tag chains.

    Each window's chain is its labelled positions (the first subword of every word it owns); a window cut from a
    longer sentence is a fragment, with no start (end) score where it does not begin (end) the sentence
    (:func:`seqtag.modeling.crf.chain_bounds` from ``word_index`` and ``num_words``). ``loss`` (cross-entropy, the only
    loss :func:`seqtag.config.check_head` lets through) is not used.

    The loop divides this sum by the labelled tokens of the window, as for every loss: the logged loss is then
    the gold sequences' negative log-likelihood per word, in nats, ``-(1/N) sum_chains log p(y_chain | x)``.
    It is comparable with the per-token cross-entropy of a linear head: with zero transitions and no
    constraints ``p(y | x)`` factorises over the words and the two are equal; the scheme's forbidden moves
    only remove probability from invalid paths, so at the start of training the CRF's value is at most the
    cross-entropy.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"]
    first, last = chain_bounds(batch["word_index"], batch["num_words"])
    nll = crf_of(model).nll(logits, labels, reduction="sum", sentence_start=first, sentence_end=last)
    return nll, (labels != IGNORE_INDEX).sum(), logits.flatten(0, 1), labels.flatten()


def evaluate_sentences(model, tokenizer, features, sentences, labels, scheme, accelerator, batch_size,
                       max_tokens: int = DEFAULT_MAX_TOKENS, decoding: str = "argmax",
                       transitions: tuple | None = None) -> tuple[dict, list[list[str]]]:
    """Word-level entity scores of ``model`` on tagged ``sentences`` (their ``features`` from :func:`tokenize_ner`),
    decoded as ``decoding`` says (:func:`seqtag.inference.engine.decode_words`; a CRF model decodes with its transitions).

    Returns ``(report, predicted_tags)``; the report is one split of ``metrics.json`` (:func:`seqtag.metrics.ner_report`)
    plus ``invalid_sequences``: how many sentences the word-by-word argmax would tag in a way ``scheme`` forbids
    (whatever ``decoding`` is, so runs can be compared on it). ``transitions``: a CRF's scores when ``model``
    does not hold them (an ONNX export).
    """
    cols = {k: features[k] for k in ("input_ids", "word_index", "sentence_index")}
    scores = word_logits(model, cols, [len(s.tokens) for s in sentences], tokenizer.pad_token_id,
                         batch_size=batch_size, max_tokens=max_tokens, accelerator=accelerator)
    argmax, _ = decode_words(scores, labels, scheme, "argmax")
    pred = argmax if decoding == "argmax" else decode_words(scores, labels, scheme, decoding,
                                                            transitions or crf_transitions(model))[0]
    report = ner_report([list(s.tags) for s in sentences], pred, scheme=scheme)
    return {**report, "invalid_sequences": count_invalid(argmax, scheme)}, pred


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
    train_features = features["train"].select_columns(["input_ids", "labels", "length"])
    columns, loss_step_fn = ["input_ids", "labels"], loss_step
    if cfg.model.head == "crf":
        model = new_crf_tagger(model, labels, data.train_scheme)
        # chain_bounds needs where each window sits in its sentence (only the CRF does: the linear head's
        # features and their cache are unchanged)
        words = [len(s.tokens) for s in data.splits["train"]]
        train_features = features["train"].select_columns(["input_ids", "labels", "word_index", "length"])
        train_features = train_features.add_column("num_words",
                                                   [words[i] for i in features["train"]["sentence_index"]])
        columns, loss_step_fn = ["input_ids", "labels", "word_index", "num_words"], crf_loss_step

    def evaluate(model, split: str, accelerator, batch_size: int) -> dict:
        return evaluate_sentences(model, tokenizer, features[split], data.splits[split], labels, data.train_scheme,
                                  accelerator, batch_size, decoding=cfg.predict.decoding)[0]

    def describe(batch) -> list[str]:
        return [" ".join(tokenizer.convert_ids_to_tokens(row[:12])) for row in batch["input_ids"].tolist()]

    return TaskSetup(
        model=model,
        train_features=train_features,
        columns=columns,
        loss_step=loss_step_fn,
        evaluate=evaluate,
        eval_splits=[s for s in ("dev", "test") if s in data.splits],
        describe_examples=describe,
        entity_label_ids=[i for i, lab in enumerate(labels) if lab != "O"],
        info={
            "labels": labels, "tag_scheme": data.train_scheme, "source_scheme": data.source_scheme,
            "seqeval_mode": SEQEVAL_MODE, "train_examples": len(data.splits["train"]), "windows": windows,
            "data_notes": data.notes, "model_head": cfg.model.head, "decoding": cfg.predict.decoding,
        },
    )
