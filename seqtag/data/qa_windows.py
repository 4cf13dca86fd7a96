"""Span-based extractive QA: windowed features for two heads, and decoding back to answer text.

Pure functions over a fast (offset-aware) tokenizer: values in, values out, no files.

Two heads share the same windows:

* ``pointer``: a start and an end logit per token (``AutoModelForQuestionAnswering``); the label is the start
  and end token of the answer, or the ``[CLS]`` index 0 for both when the answer is not wholly in the window.
* ``tagging``: a 3-way token classifier over :data:`QA_TAGS` ``(O, B-ANS, I-ANS)`` on context tokens
  (``AutoModelForTokenClassification``); question, special and padding tokens are ``IGNORE_INDEX``.

A long context is cut into overlapping windows exactly as transformers' ``run_qa.py`` does: the question first,
``truncation="only_second"``, ``stride=doc_stride`` = number of context tokens shared by consecutive windows.
Decoders take the best span over all windows of a question and map it back to characters of the context.

Unanswerable questions (SQuAD 2.0) train both heads with the targets every window without the answer already
has: ``[CLS]`` for start and end (pointer), all ``O`` (tagging). Decoders also return each question's **null
score**, the minimum over its windows of the window's score for "no answer here" (pointer: ``start[CLS] +
end[CLS]``, as ``run_qa.py``; tagging: the log-probability that every context token is ``O``), and the
**no-answer probability** ``sigmoid(null score - best span score)`` (:func:`no_answer_probability`). The answer
is ``""`` when that probability exceeds the run's null threshold (:func:`thresholded_answers`), which is the same
as ``null score - best span score > logit(threshold)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqtag.constants import IGNORE_INDEX
from seqtag.data.squad import QAExample
from seqtag.errors import ConfigError

QA_TAGS = ("O", "B-ANS", "I-ANS")
"""Label ids of the tagging head: ``O``=0, ``B-ANS``=1, ``I-ANS``=2."""
QA_HEADS = ("pointer", "tagging")
CLS_INDEX = 0
"""Token index the pointer head is trained to point at when the window holds no (whole) answer."""
_O, _B, _I = 0, 1, 2


# ---------------------------------------------------------------------------------------------------------------
# features


def _answer_tokens(offsets: Sequence[tuple[int, int] | None], start: int, end: int) -> tuple[int, int] | None:
    """First and last token of the character span ``[start, end)`` if the window's context covers it wholly.

    ``offsets`` has ``None`` off the context. The first token is the first context token ending after
    ``start``; the last is the last context token starting before ``end``. None if the span sticks out of the
    window or covers no token.

    >>> _answer_tokens([None, (0, 3), (4, 7), (7, 8), None], 4, 8)
    (2, 3)
    >>> _answer_tokens([None, (0, 3), (4, 7), None], 4, 9) is None
    True
    """
    ctx = [i for i, o in enumerate(offsets) if o is not None]
    if not ctx or offsets[ctx[0]][0] > start or offsets[ctx[-1]][1] < end:
        return None
    first = next((i for i in ctx if offsets[i][1] > start), None)
    last = next((i for i in reversed(ctx) if offsets[i][0] < end), None)
    if first is None or last is None or last < first:
        return None
    return first, last


def _first_answer_span(ex: QAExample) -> tuple[int, int] | None:
    """Character span ``[start, end)`` of the first answer with surrounding whitespace trimmed, or None."""
    if not ex.answers:
        return None
    text, start = ex.answers[0]
    lead = len(text) - len(text.lstrip())
    stripped = text.strip()
    if not stripped:
        return None
    return start + lead, start + lead + len(stripped)


def prepare_features(
    examples: Sequence[QAExample],
    tokenizer: Any,
    max_length: int = 384,
    doc_stride: int = 128,
    head: str = "pointer",
    with_labels: bool = True,
) -> dict[str, list]:
    """Encode question + context into overlapping windows ("features"), with labels for one head.

    Returns a dict of equal-length lists, one entry per feature:

    * ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer makes them): the model inputs,
      unpadded (length ``<= max_length``);
    * ``example_index`` (into ``examples``) and ``example_id``;
    * ``offset_mapping``: ``(start_char, end_char)`` into the context for context tokens, ``None`` for question,
      special and padding tokens, so decoders can only choose context tokens;
    * ``context_mask``: 1 on context tokens, 0 elsewhere (the pointer loss keeps these plus ``[CLS]``);
    * with labels, from the FIRST answer: ``start_positions``/``end_positions`` (pointer; both ``CLS_INDEX`` if
      the answer is not wholly inside the window or the question has none) or ``labels`` (tagging; O/B-ANS/I-ANS
      ids on context tokens, ``IGNORE_INDEX`` elsewhere, all O when the answer is not wholly inside the window or
      the question has none).

    Leading whitespace of questions is stripped (some SQuAD questions have lots of it, which wastes room).
    ``offset_mapping``, ``example_index``, ``example_id`` and ``context_mask`` are not model inputs: drop them
    before calling the model.
    """
    if head not in QA_HEADS:
        raise ConfigError(f"unknown QA head {head!r}; choose one of {QA_HEADS}.")
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"QA features need a fast tokenizer (offset mappings); got {type(tokenizer).__name__}. "
            "Load it with AutoTokenizer.from_pretrained(..., use_fast=True)."
        )
    if not 0 <= doc_stride < max_length:
        raise ConfigError(f"doc_stride must be in [0, max_length={max_length}), got {doc_stride}.")
    label_keys = (
        (("start_positions", "end_positions") if head == "pointer" else ("labels",)) if with_labels else ()
    )
    if not examples:
        keys = (
            "input_ids",
            "attention_mask",
            "example_index",
            "example_id",
            "offset_mapping",
            "context_mask",
        )
        return {k: [] for k in keys + label_keys}
    questions = [ex.question.lstrip() for ex in examples]
    contexts = [ex.context for ex in examples]

    # The tokenizer panics (uncatchable) when a window has no room for doc_stride context tokens: check first.
    n_special = tokenizer.num_special_tokens_to_add(pair=True)
    q_lens = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    longest = int(np.argmax(q_lens))
    room = max_length - n_special - q_lens[longest]
    if doc_stride >= room:
        raise ConfigError(
            f"question {examples[longest].id!r} has {q_lens[longest]} tokens, leaving {room} context tokens per "
            f"window at max_length={max_length}, not more than doc_stride={doc_stride}. Raise max_length, lower "
            "doc_stride, or shorten that question."
        )

    enc = tokenizer(
        questions,
        contexts,
        truncation="only_second",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    out: dict[str, list] = {
        k: list(enc[k]) for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc
    }
    out.update(
        {k: [] for k in ("example_index", "example_id", "offset_mapping", "context_mask") + label_keys}
    )

    for f, ex_idx in enumerate(enc["overflow_to_sample_mapping"]):
        ex = examples[ex_idx]
        seq_ids = enc.sequence_ids(f)
        offsets = [
            tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][f], seq_ids, strict=True)
        ]
        out["example_index"].append(int(ex_idx))
        out["example_id"].append(ex.id)
        out["offset_mapping"].append(offsets)
        out["context_mask"].append([int(s == 1) for s in seq_ids])
        if not with_labels:
            continue
        span = _first_answer_span(ex)
        tokens = _answer_tokens(offsets, *span) if span is not None else None
        if head == "pointer":
            out["start_positions"].append(tokens[0] if tokens else CLS_INDEX)
            out["end_positions"].append(tokens[1] if tokens else CLS_INDEX)
        else:
            labels = [_O if o is not None else IGNORE_INDEX for o in offsets]
            if tokens:
                labels[tokens[0]] = _B
                for i in range(tokens[0] + 1, tokens[1] + 1):
                    labels[i] = _I
            out["labels"].append(labels)
    return out


# ---------------------------------------------------------------------------------------------------------------
# decoding


def _group_features(features: dict[str, list], examples: Sequence[QAExample]) -> list[list[int]]:
    """Feature indices per example, in feature order; checks ``example_id`` agrees with ``examples``."""
    groups: list[list[int]] = [[] for _ in examples]
    for f, (idx, fid) in enumerate(zip(features["example_index"], features["example_id"], strict=True)):
        if not 0 <= idx < len(examples) or examples[idx].id != fid:
            raise ValueError(
                f"feature {f} belongs to example {idx} ({fid!r}), which is not in the examples passed; decode with "
                "the same examples the features were built from."
            )
        groups[idx].append(f)
    return groups


def _feature_logits(logits: Any, n_tokens: int, f: int) -> np.ndarray:
    """Logits of feature ``f`` as float64, cut to its ``n_tokens`` (dropping batch padding)."""
    if hasattr(logits, "detach"):  # a torch tensor, possibly bf16 / on an accelerator
        logits = logits.detach().float().cpu().numpy()
    arr = np.asarray(logits, dtype=np.float64)[:n_tokens]
    if arr.shape[0] < n_tokens:
        raise ValueError(f"feature {f} has {n_tokens} tokens but only {arr.shape[0]} logits.")
    return arr


def _better(cand: tuple[float, int, int], best: tuple[float, int, int] | None) -> bool:
    """Higher score wins; ties go to the earlier span (start char, then end char)."""
    if best is None:
        return True
    return cand[0] > best[0] or (cand[0] == best[0] and (cand[1], cand[2]) < (best[1], best[2]))


def no_answer_probability(null_score: float, span_score: float) -> float:
    """``sigmoid(null_score - span_score)``: the probability of "no answer" against the best span alone (1.0 when
    no span was found, ``span_score = -inf``).

    >>> no_answer_probability(2.0, 2.0), round(no_answer_probability(0.0, 3.0), 4), no_answer_probability(1.0, -math.inf)
    (0.5, 0.0474, 1.0)
    """
    d = null_score - span_score
    return 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))


def _prediction(ex: QAExample, best: tuple[float, int, int] | None, null_score: float) -> dict[str, Any]:
    """``{"text", "score", "start", "end", "null_score", "no_answer_probability"}`` of one question."""
    if best is None or not np.isfinite(best[0]):
        out = {"text": "", "score": float("-inf"), "start": 0, "end": 0}
    else:
        score, start, end = best
        out = {"text": ex.context[start:end], "score": float(score), "start": start, "end": end}
    return {**out, "null_score": float(null_score),
            "no_answer_probability": no_answer_probability(null_score, out["score"])}


def is_null(pred: dict[str, Any], null_threshold: float | None) -> bool:
    """Whether a decoded prediction answers ``""``: its no-answer probability exceeds ``null_threshold`` (strictly,
    as the official SQuAD 2.0 script); never with ``None`` (SQuAD v1.1)."""
    return null_threshold is not None and pred["no_answer_probability"] > null_threshold


def thresholded_answers(preds: dict[str, dict[str, Any]], null_threshold: float | None) -> dict[str, str]:
    """``{id: answer}``: ``""`` where :func:`is_null`, else the best span.

    >>> preds = {"a": {"text": "x", "no_answer_probability": 0.7}, "b": {"text": "y", "no_answer_probability": 0.2}}
    >>> thresholded_answers(preds, 0.5), thresholded_answers(preds, None)
    ({'a': '', 'b': 'y'}, {'a': 'x', 'b': 'y'})
    """
    return {qid: "" if is_null(p, null_threshold) else p["text"] for qid, p in preds.items()}


def decode_pointer(
    features: dict[str, list],
    start_logits: Sequence[Any],
    end_logits: Sequence[Any],
    examples: Sequence[QAExample],
    n_best: int = 20,
    max_answer_length: int = 30,
) -> dict[str, dict[str, Any]]:
    """Best answer span per example from start/end logits, as transformers' ``run_qa.py`` post-processing.

    ``start_logits[f]``, ``end_logits[f]``: shape ``(T_f,)`` or longer (padding is cut to the feature's length).
    In each window, the ``n_best`` highest start and end tokens are paired; a pair is kept if both are context
    tokens, ``end >= start`` and ``end - start + 1 <= max_answer_length`` tokens; its score is
    ``start_logit + end_logit``. The best pair over all windows of an example wins (ties: earliest span).

    Returns ``{example_id: {"text", "score", "start", "end", "null_score", "no_answer_probability"}}`` with
    character offsets into the context (end exclusive, ``text == context[start:end]``); no valid span gives
    ``text=""``, ``score=-inf``, start=end=0. ``null_score``: the minimum of ``start[CLS] + end[CLS]`` over the
    example's windows (see the module docstring).
    """
    preds = {}
    for ex, group in zip(examples, _group_features(features, examples), strict=True):
        best, null = None, math.inf
        for f in group:
            offsets = features["offset_mapping"][f]
            s_log = _feature_logits(start_logits[f], len(offsets), f)
            e_log = _feature_logits(end_logits[f], len(offsets), f)
            null = min(null, float(s_log[CLS_INDEX] + e_log[CLS_INDEX]))
            in_ctx = np.array([o is not None for o in offsets])
            # stable sort: among equal logits the earlier token comes first
            starts = np.argsort(-s_log, kind="stable")[:n_best]
            ends = np.argsort(-e_log, kind="stable")[:n_best]
            s, e = starts[:, None], ends[None, :]  # (n_best, 1), (1, n_best): all pairs
            valid = in_ctx[s] & in_ctx[e] & (e >= s) & (e - s + 1 <= max_answer_length)
            if not valid.any():
                continue
            scores = np.where(valid, s_log[s] + e_log[e], -np.inf)
            top = np.argwhere(scores == scores.max())
            # within a window token order is character order: the earliest (start, end) pair wins ties
            si, ei = min((int(starts[a]), int(ends[b])) for a, b in top)
            cand = (float(scores.max()), offsets[si][0], offsets[ei][1])
            if _better(cand, best):
                best = cand
        preds[ex.id] = _prediction(ex, best, null if null < math.inf else 0.0)
    return preds


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def best_tagged_span(log_probs: np.ndarray, max_answer_length: int = 30) -> tuple[float, int, int] | None:
    """Highest-scoring span ``(score, i, j)`` (token indices, inclusive) in one run of context tokens.

    ``log_probs``: ``(T, 3)`` log-probabilities over ``(O, B-ANS, I-ANS)`` of consecutive context tokens. The
    score of span ``[i, j]`` with ``j - i + 1 <= max_answer_length`` is the log-probability that the tagger
    labels exactly that span as the answer locally::

        log p(B at i) + sum_{k=i+1..j} log p(I at k) + log p(not I at j+1)

    The last term is dropped when ``j`` is the last context token of the window: the tokens after it are not
    seen, so the span is not penalised (nor rewarded) for what follows. This favours a span cut off at a window's
    end over the whole span in the next window when the tagger puts a confident ``B`` there; training labels make
    such a window all ``O`` (the answer is not wholly inside it), so a trained tagger rarely does, and with the
    usual ``doc_stride`` overlap nearly every answer lies wholly inside some window. Tokens before ``i`` are not scored,
    because a ``B`` already starts a new span whatever precedes it. O(T * max_answer_length), vectorised by
    span length. Ties go to the earliest start, then the shortest span.

    >>> lp = np.log(np.array([[.8, .1, .1], [.1, .8, .1], [.1, .1, .8], [.8, .1, .1]]))
    >>> score, i, j = best_tagged_span(lp)
    >>> (i, j), round(score, 4) == round(float(np.log(.8) + np.log(.8) + np.log(.9)), 4)
    ((1, 2), True)
    """
    n = log_probs.shape[0]
    if n == 0:
        return None
    lp_b, lp_i = log_probs[:, _B], log_probs[:, _I]
    lp_not_i = np.logaddexp(log_probs[:, _O], log_probs[:, _B])
    cum_i = np.concatenate([[0.0], np.cumsum(lp_i)])  # cum_i[k] = sum of lp_i[:k]
    tail = np.append(lp_not_i[1:], 0.0)  # tail[j] = log p(not I at j+1); 0 after the last token
    best = None
    for length in range(1, min(max_answer_length, n) + 1):
        i = np.arange(0, n - length + 1)
        j = i + length - 1
        scores = lp_b[i] + (cum_i[j + 1] - cum_i[i + 1]) + tail[j]
        k = int(np.argmax(scores))
        cand = (float(scores[k]), int(i[k]), int(j[k]))
        if best is None or cand[0] > best[0] or (cand[0] == best[0] and cand[1] < best[1]):
            best = cand
    return best


def decode_tagging(
    features: dict[str, list],
    logits: Sequence[Any],
    examples: Sequence[QAExample],
    max_answer_length: int = 30,
) -> dict[str, dict[str, Any]]:
    """Best answer span per example from O/B-ANS/I-ANS token logits.

    ``logits[f]``: shape ``(T_f, 3)`` or longer (padding is cut to the feature's length), over :data:`QA_TAGS`.
    In every window, the context tokens are scored by :func:`best_tagged_span` (log-softmax in float64); the
    best span over all windows of an example wins (ties: earliest span). Returns the same dict as
    :func:`decode_pointer`; ``null_score`` is the minimum over the windows of the log-probability that every
    context token of the window is ``O`` (0.0 when no window has a context token).
    """
    preds = {}
    for ex, group in zip(examples, _group_features(features, examples), strict=True):
        best, null = None, math.inf
        for f in group:
            offsets = features["offset_mapping"][f]
            ctx = [t for t, o in enumerate(offsets) if o is not None]
            if not ctx:
                continue
            if ctx[-1] - ctx[0] + 1 != len(ctx):
                raise ValueError(
                    f"feature {f}: context tokens are not contiguous; build features with prepare_features."
                )
            lp = _log_softmax(_feature_logits(logits[f], len(offsets), f))
            # context tokens of a window are contiguous ([CLS] q [SEP] context [SEP]); score that run
            null = min(null, float(lp[ctx[0] : ctx[-1] + 1, _O].sum()))
            span = best_tagged_span(lp[ctx[0] : ctx[-1] + 1], max_answer_length)
            if span is None:
                continue
            score, i, j = span
            cand = (score, offsets[ctx[0] + i][0], offsets[ctx[0] + j][1])
            if _better(cand, best):
                best = cand
        preds[ex.id] = _prediction(ex, best, null if null < math.inf else 0.0)
    return preds
