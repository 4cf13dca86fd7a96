"""NER with the span head (``model.head: span``) on the training loop: span windows, the loss of a batch, and
exact-match span evaluation; and ``seqtag evaluate`` of a span run.

**Loss normalisation.** A batch's loss is the sum over its windows and entity types of the span loss of each
(window, type) group (:mod:`seqtag.losses.span`), and the loop divides it by the number of windows in the
accumulation window (a span batch has no per-token ``labels``): the logged loss is the loss per sentence
window, summed over the entity types.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace

import torch

from seqtag.constants import IGNORE_INDEX
from seqtag.data.span_windows import encode_span_sentences
from seqtag.data.spans import SpanSentence, load_span_data, read_span_split
from seqtag.errors import DataError
from seqtag.inference.engine import DEFAULT_MAX_TOKENS
from seqtag.inference.span_decoding import decode_spans, sentence_span_scores, window_span_scores
from seqtag.metrics.spans import span_scores
from seqtag.modeling.loading import load_model
from seqtag.modeling.span_head import new_span_tagger
from seqtag.runs import WindowCounts
from seqtag.tasks.common import TaskSetup

log = logging.getLogger(__name__)

COLUMNS = ["input_ids", "word_positions", "gold_spans"]


def span_targets(gold_spans: torch.Tensor, mask: torch.Tensor, num_types: int) -> torch.Tensor:
    """Targets ``(B, C, W, L)`` of a batch: 1 at its gold spans, 0 at the other candidates, ``-100`` where ``mask``
    ``(B, W, L)`` is False. ``gold_spans (B, 3n)``: flat ``[i, l, type]`` triples per window, -1 padded.

    >>> t = span_targets(torch.tensor([[0, 1, 1, -1, -1, -1]]), torch.tensor([[[True, True], [True, False]]]), 2)
    >>> t[0].tolist()
    [[[0, 0], [0, -100]], [[0, 1], [0, -100]]]
    """
    b, w, length = mask.shape
    targets = torch.zeros(b, num_types, w, length, dtype=torch.long, device=mask.device)
    triples = gold_spans.reshape(b, -1, 3)
    row, k = torch.nonzero(triples[..., 0] >= 0, as_tuple=True)
    i, n, c = triples[row, k].unbind(-1)
    targets[row, c, i, n] = 1
    return targets.masked_fill(~mask[:, None], IGNORE_INDEX)


def loss_step(model, batch, loss):
    """The summed span loss of the batch's (window, type) groups; logits and targets flattened to ``(B*C, W*L)``."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                word_positions=batch["word_positions"])
    logits = out["logits"]
    targets = span_targets(batch["gold_spans"], out["mask"], logits.shape[1])
    logits, targets = logits.flatten(0, 1).flatten(1), targets.flatten(0, 1).flatten(1)
    return loss(logits, targets, reduction="sum"), torch.tensor(len(batch["input_ids"])), logits, targets


def encode(sentences: list[SpanSentence], tokenizer, types: list[str], cfg) -> tuple[dict, dict]:
    """Span windows of ``sentences`` (:func:`seqtag.data.span_windows.encode_span_sentences`) with a ``length``
    column, and the counts of gold spans no window can score."""
    enc, lost = encode_span_sentences(tokenizer, [s.tokens for s in sentences], [s.spans or () for s in sentences],
                                      types, max_length=cfg.data.max_length, stride=cfg.data.stride,
                                      max_span_length=cfg.model.max_span_length)
    enc["length"] = [len(x) for x in enc["input_ids"]]
    return enc, lost


def evaluate_spans(model, tokenizer, enc: dict, sentences: list[SpanSentence], types: list[str], decoding: str,
                   accelerator, batch_size: int, max_tokens: int = DEFAULT_MAX_TOKENS) -> tuple[dict, list]:
    """Exact-match span scores of ``model`` on ``sentences`` (windows ``enc``), decoded as ``decoding`` says.
    Returns ``(report, predicted entities per sentence)``; every gold span counts, also those longer than
    ``model.max_span_length`` (which the model cannot predict)."""
    scores = window_span_scores(model, enc, tokenizer.pad_token_id, batch_size=batch_size, max_tokens=max_tokens,
                                accelerator=accelerator)
    merged = sentence_span_scores(scores, enc["sentence_index"], enc["word_offset"], [len(s.tokens) for s in sentences])
    pred = [decode_spans(m, types, decoding) for m in merged]
    report = span_scores([s.spans for s in sentences], [[f[:3] for f in p] for p in pred])
    return report, pred


def setup(cfg, tokenizer, accelerator) -> TaskSetup:
    import datasets
    from transformers import AutoModel

    data = load_span_data(cfg.data, tokenizer)
    types = data.types
    encoded = {split: encode(sents, tokenizer, types, cfg) for split, sents in data.splits.items()}
    for split, (_, lost) in encoded.items():
        if any(lost.values()):
            log.warning("%s: %d gold spans are longer than model.max_span_length=%d and %d do not fit in one window "
                        "of data.max_length=%d subwords: the model cannot predict them", split, lost["longer"],
                        cfg.model.max_span_length, lost["unfit"], cfg.data.max_length)
    windows = {}
    for split, (enc, _) in encoded.items():
        windowed = sum(n > 1 and first == 0 for n, first in zip(enc["num_windows"], enc["word_offset"]))
        windows[split] = WindowCounts(len(data.splits[split]), windowed, len(enc["input_ids"]))
    encoder = load_model(cfg.model, AutoModel, id2label=dict(enumerate(types)),
                         label2id={t: i for i, t in enumerate(types)})
    model = new_span_tagger(encoder, types, cfg.model.max_span_length)
    train = encoded["train"][0]
    train_features = datasets.Dataset.from_dict({k: train[k] for k in (*COLUMNS, "length")})

    def evaluate(model, split: str, accelerator, batch_size: int) -> dict:
        return evaluate_spans(model, tokenizer, encoded[split][0], data.splits[split], types, cfg.predict.decoding,
                              accelerator, batch_size)[0]

    def describe(batch) -> list[str]:
        return [" ".join(tokenizer.convert_ids_to_tokens(row[:12])) for row in batch["input_ids"].tolist()]

    notes = {split: {**n, **{f"gold_spans_{k}": v for k, v in encoded[split][1].items()}}
             for split, n in data.notes.items()}
    return TaskSetup(
        model=model,
        train_features=train_features,
        columns=COLUMNS,
        loss_step=loss_step,
        evaluate=evaluate,
        eval_splits=[s for s in ("dev", "test") if s in data.splits],
        describe_examples=describe,
        entity_label_ids=[1],
        info={"labels": types, "train_examples": len(data.splits["train"]), "windows": windows, "data_notes": notes,
              "model_head": "span", "decoding": cfg.predict.decoding},
    )


def evaluate_span_run(run, model, data_path: str | None, accelerator, batch_size: int,
                      max_tokens: int = DEFAULT_MAX_TOKENS, split: str | None = None) -> tuple[dict, dict]:
    """``seqtag evaluate`` of a span run on one file (read with the run's data settings), or on its own configured
    ``split`` as training read it (document range and ``data.max_eval_examples`` included): the report, and the
    predictions ``{"FILE:LINE": {"tokens", "gold", "predicted"}}`` with spans as ``[start, end, type]`` (and the
    score of each prediction)."""
    if split is None:
        data = replace(run.cfg.data, format="auto" if run.cfg.data.format == "hub" else run.cfg.data.format,
                       dev=data_path, dev_articles=None, max_eval_examples=None)
        split, source = "dev", data_path
    else:
        data, source = run.cfg.data, f"data.{split} ({getattr(run.cfg.data, split)})"
    sentences, _ = read_span_split(data, split, run.tokenizer)
    unseen = sorted({t for s in sentences for _, _, t in s.spans or ()} - set(run.labels))
    if unseen and data.unseen_labels == "error":
        raise DataError(f"{source}: entity types {unseen} were never seen in training (known: "
                        f"{', '.join(run.labels)}); fix the data or pass data.unseen_labels=map_to_o to drop them")
    sentences = [replace(s, spans=tuple(sp for sp in s.spans if sp[2] in run.labels)) for s in sentences]
    with accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext():
        enc, _ = encode(sentences, run.tokenizer, run.labels, run.cfg)
    report, pred = evaluate_spans(model, run.tokenizer, enc, sentences, run.labels, run.cfg.predict.decoding,
                                  accelerator, batch_size, max_tokens)
    rows = {f"{s.source}:{s.line}": {"tokens": list(s.tokens), "gold": [list(sp) for sp in s.spans],
                                     "predicted": [[a, b, t, round(p, 4)] for a, b, t, p in found]}
            for s, found in zip(sentences, pred, strict=True)}
    return report, rows
