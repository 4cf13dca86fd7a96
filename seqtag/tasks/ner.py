"""NER on the training loop: word-level features, the loss of a batch, and word-level evaluation."""

from __future__ import annotations

import logging
from functools import partial

import torch

from seqtag.constants import IGNORE_INDEX
from seqtag.data.align import merge_windows
from seqtag.data.batching import LengthGroupedBatches, collate
from seqtag.data.ner import load_ner_data, tokenize_ner, window_counts
from seqtag.tasks import TaskSetup

log = logging.getLogger(__name__)


def loss_step(model, batch, loss):
    """Summed loss over the batch's labelled subwords; logits (B, T, C) are flattened to (N, C)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits.flatten(0, 1)
    targets = batch["labels"].flatten()
    return loss(logits, targets, reduction="sum"), (targets != IGNORE_INDEX).sum(), logits, targets


def eval_loader(features, batch_size: int, pad_token_id: int, accelerator=None):
    """A length-sorted loader over ``features`` that also yields each row's ``feature_index``."""
    from torch.utils.data import DataLoader

    cols = ["input_ids", "word_index"]
    ds = features.select_columns(cols).add_column("feature_index", list(range(len(features))))
    sampler = LengthGroupedBatches(features["length"], batch_size, shuffle=False)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=partial(collate, pad_token_id=pad_token_id))
    return accelerator.prepare(loader) if accelerator is not None else loader


@torch.inference_mode()
def predict_windows(model, loader, accelerator=None) -> dict[int, tuple[list[int], list[int], list[float]]]:
    """Run the model over windows. Returns, per feature index, (word_index, predicted id, probability) of the
    positions that predict a word. Under several processes every process gets every feature exactly once."""
    model.eval()
    out: dict[int, tuple[list[int], list[int], list[float]]] = {}
    for batch in loader:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        score, pred = logits.float().softmax(-1).max(-1)
        wi, fi = batch["word_index"], batch["feature_index"]
        if accelerator is not None:
            wi, pred, score = (accelerator.pad_across_processes(t, dim=1, pad_index=-1) for t in (wi, pred, score))
            fi, wi, pred, score = accelerator.gather_for_metrics((fi, wi, pred, score))
        for f, w, p, s in zip(fi.tolist(), wi.tolist(), pred.tolist(), score.tolist()):
            keep = [t for t, i in enumerate(w) if i >= 0]
            out[f] = ([w[t] for t in keep], [p[t] for t in keep], [s[t] for t in keep])
    return out


def word_predictions(features, per_feature, num_words: list[int]) -> tuple[list[list[int]], list[list[float]]]:
    """Merge window predictions into one label id and probability per word of every sentence."""
    n = len(features)
    missing = [f for f in range(n) if f not in per_feature]
    if missing:
        raise AssertionError(f"{len(missing)} windows were not predicted (first: {missing[:5]})")
    word_index = [per_feature[f][0] for f in range(n)]
    sent = features["sentence_index"]
    ids = merge_windows(word_index, sent, [per_feature[f][1] for f in range(n)], num_words)
    probs = merge_windows(word_index, sent, [per_feature[f][2] for f in range(n)], num_words)
    return ids, probs


def evaluate_sentences(model, tokenizer, features, sentences, labels, scheme, accelerator, batch_size):
    """Word-level entity scores of ``model`` on tagged ``sentences`` (their ``features`` from :func:`tokenize_ner`).

    Returns ``(report, predicted_tags)``; the report is the per-split object of ``metrics.json``.
    """
    from seqtag.metrics import ner_report

    loader = eval_loader(features, batch_size, tokenizer.pad_token_id, accelerator)
    ids, _ = word_predictions(features, predict_windows(model, loader, accelerator), [len(s.tokens) for s in sentences])
    pred = [[labels[i] for i in row] for row in ids]
    return ner_report([list(s.tags) for s in sentences], pred, scheme=scheme), pred


def setup(cfg, tokenizer, accelerator) -> TaskSetup:
    from transformers import AutoModelForTokenClassification

    from seqtag.model import load_model

    data = load_ner_data(cfg.data)
    labels = data.labels
    with accelerator.main_process_first():  # the main process tokenises and caches; the others read the cache
        features = {split: tokenize_ner(sents, tokenizer, labels, cfg.data) for split, sents in data.splits.items()}
    windows = {split: window_counts(f) for split, f in features.items()}
    for split, w in windows.items():
        if w["windowed_sentences"]:
            log.info("%s: %d sentences longer than data.max_length=%d were split into %d windows", split,
                     w["windowed_sentences"], cfg.data.max_length, w["windows_of_windowed"])
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
        info={
            "labels": labels, "tag_scheme": data.train_scheme, "source_scheme": data.source_scheme,
            "seqeval_mode": "default (conlleval); strict also reported as f1_strict",
            "train_examples": len(data.splits["train"]), "windows": windows, "data_notes": data.notes,
            "entity_label_ids": [i for i, lab in enumerate(labels) if lab != "O"],
        },
    )
