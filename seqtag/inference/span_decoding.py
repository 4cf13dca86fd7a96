"""Inference for the span head: window scores, merged per sentence, decoded into entities that may nest.

Training's evaluation, ``seqtag evaluate`` and ``seqtag predict`` of a ``model.head: span`` run all go through
:func:`sentence_span_scores` and :func:`decode_spans`.

**Windows.** Each window gives scores ``(C, W, L)`` for the spans of at most ``L = model.max_span_length`` words
inside it. A span that lies inside several windows (long sentences) takes its scores from the window where it is
farthest from the edges (:func:`seqtag.data.span_windows.span_owner_context`; the first window on a tie).

**Decoding** (``predict.decoding``). A span of a type is predicted when its score is above 0: for the binary
span losses that is the logit 0, ``sigmoid(score) > 0.5``; for ``span_multilabel`` it is the score of the loss's
threshold class, 0. ``nested`` keeps every such span, so entities may nest and overlap (the same words may even
carry two types). ``flat`` keeps the best-scoring spans that share no word, taken greedily by score.
The ``score`` reported with an entity is ``sigmoid(score)``: the model's probability for the binary losses, a
monotone confidence with the same 0.5 threshold for ``span_multilabel`` (not calibrated).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
import torch

from seqtag.data.batching import collate
from seqtag.data.span_windows import encode_span_sentences, span_owner_context
from seqtag.inference.engine import DEFAULT_MAX_TOKENS, MODEL_INPUTS, token_budget_batches

SPAN_DECODINGS = ("nested", "flat")
Found = tuple[int, int, str, float]
"""A predicted entity: ``(start, end, type, score)``, word indices, ``end`` exclusive, ``score`` the sigmoid."""


@torch.inference_mode()
def window_span_scores(model, windows: dict[str, Sequence], pad_token_id: int, *, batch_size: int,
                       max_tokens: int = DEFAULT_MAX_TOKENS, accelerator=None, autocast: bool = False) -> list[np.ndarray]:
    """The span scores ``(C, W_w, L)`` (float32, ``-inf`` past the window's words) of every window, in window order.

    ``windows`` holds the columns ``input_ids`` and ``word_positions`` (:func:`encode_span_sentences`). Under
    several processes (``accelerator``) each runs every n-th batch and all receive every window's scores.
    Precision: the accelerator's mixed precision, else bf16 autocast when ``autocast``; the head is float32.
    """
    from accelerate.utils import gather_object

    if accelerator is not None:
        model = accelerator.unwrap_model(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    keys = [k for k in (*MODEL_INPUTS, "word_positions") if k in windows]
    ids = windows["input_ids"]
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    mine: list[tuple[int, np.ndarray]] = []
    for idx in token_budget_batches([len(x) for x in ids], batch_size, max_tokens)[rank::world]:
        batch = collate([{k: windows[k][i] for k in keys} for i in idx], pad_token_id)
        if accelerator is not None:
            context = accelerator.autocast()
        else:
            context = torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast)
        with context:
            scores = model(**{k: v.to(device) for k, v in batch.items()})["logits"].float().cpu().numpy()
        mine += [(i, scores[row, :, : len(windows["word_positions"][i])]) for row, i in enumerate(idx)]
    model.train(was_training)
    out: list = [None] * len(ids)
    for i, row in gather_object(mine) if world > 1 else mine:
        out[i] = row
    if any(row is None for row in out):
        raise AssertionError("some windows were not scored")
    return out


def sentence_span_scores(window_scores: Sequence[np.ndarray], sentence_index: Sequence[int],
                         word_offset: Sequence[int], num_words: Sequence[int]) -> list[np.ndarray]:
    """Per sentence, ``(C, n_words, L)``: the scores of the span from word ``i`` to ``i + l``, each taken from the
    window where the span is farthest from the edges; ``-inf`` for spans no window holds whole.

    >>> w0 = np.arange(6, dtype=np.float32).reshape(1, 3, 2)   # words 0-2 of a 4-word sentence
    >>> w1 = -np.arange(6, dtype=np.float32).reshape(1, 3, 2)  # words 1-3
    >>> sentence_span_scores([w0, w1], [0, 0], [0, 1], [4])[0][0].tolist()
    [[0.0, 1.0], [2.0, 3.0], [-2.0, -3.0], [-4.0, -inf]]
    """
    length = window_scores[0].shape[-1] if window_scores else 1
    types = window_scores[0].shape[0] if window_scores else 0
    out = [np.full((types, n, length), -np.inf, dtype=np.float32) for n in num_words]
    best = [np.full((n, length), -1) for n in num_words]
    for scores, s, a in zip(window_scores, sentence_index, word_offset, strict=True):
        w = scores.shape[1]
        context = span_owner_context(w, length)
        take = context > best[s][a:a + w]
        best[s][a:a + w] = np.where(take, context, best[s][a:a + w])
        out[s][:, a:a + w] = np.where(take[None], scores, out[s][:, a:a + w])
    return out


def decode_spans(scores: np.ndarray, types: Sequence[str], decoding: str = "nested") -> list[Found]:
    """The entities of one sentence from its scores ``(C, n_words, L)``: every span and type scored above 0
    (``nested``), or the best-scoring of them that share no word (``flat``); sorted by start, end, type.

    >>> s = np.full((2, 3, 2), -5.0, dtype=np.float32)
    >>> s[0, 0, 1], s[1, 0, 0], s[1, 2, 0] = 2.0, 1.0, 0.5   # DNA words 0-1, protein word 0, protein word 2
    >>> [f[:3] for f in decode_spans(s, ["DNA", "protein"])]
    [(0, 1, 'protein'), (0, 2, 'DNA'), (2, 3, 'protein')]
    >>> [f[:3] for f in decode_spans(s, ["DNA", "protein"], "flat")]
    [(0, 2, 'DNA'), (2, 3, 'protein')]
    """
    if decoding not in SPAN_DECODINGS:
        raise ValueError(f"decoding={decoding!r} is invalid for the span head; accepted: {', '.join(SPAN_DECODINGS)}")
    c, i, length = np.nonzero(scores > 0)
    found = [(int(a), int(a + n + 1), types[t], float(1 / (1 + np.exp(-scores[t, a, n]))))
             for t, a, n in zip(c, i, length, strict=True)]
    if decoding == "flat":
        kept: list[Found] = []
        taken = np.zeros(scores.shape[1], dtype=bool)
        for f in sorted(found, key=lambda f: (-f[3], f[0], f[1], f[2])):
            if not taken[f[0]:f[1]].any():
                taken[f[0]:f[1]] = True
                kept.append(f)
        found = kept
    return sorted(found, key=lambda f: (f[0], f[1], f[2]))


@dataclass
class SpanPredictor:
    """A span-head model with its tokenizer, types and window settings: entities of word lists, through the same
    windows, merging and decoding as training's evaluation."""

    model: torch.nn.Module
    tokenizer: object
    types: list[str]
    max_length: int
    stride: int
    max_span_length: int
    batch_size: int = 64
    autocast: bool = False
    max_tokens: int = DEFAULT_MAX_TOKENS
    accelerator: object = None
    decoding: str = "nested"

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[Found]]:
        """The entities of every sentence."""
        if not sentences:
            return []
        enc, _ = encode_span_sentences(self.tokenizer, sentences, None, self.types, max_length=self.max_length,
                                       stride=self.stride, max_span_length=self.max_span_length)
        scores = window_span_scores(self.model, enc, self.tokenizer.pad_token_id, batch_size=self.batch_size,
                                    max_tokens=self.max_tokens, accelerator=self.accelerator, autocast=self.autocast)
        merged = sentence_span_scores(scores, enc["sentence_index"], enc["word_offset"], [len(s) for s in sentences])
        return [decode_spans(m, self.types, self.decoding) for m in merged]


def span_entities(words: Sequence[str], found: Iterable[Found], offsets: Sequence[tuple[int, int]] | None = None,
                  text: str | None = None) -> list[dict]:
    """Entity records of one sentence, as ``seqtag predict`` writes them; with ``offsets`` (raw text) each has the
    exact character ``start`` and ``end``, and ``text`` is the slice of the input.

    >>> span_entities(["IL-2", "gene"], [(0, 2, "DNA", 0.9), (0, 1, "protein", 0.8)], [(0, 4), (5, 9)], "IL-2 gene")
    [{'type': 'DNA', 'text': 'IL-2 gene', 'start_token': 0, 'end_token': 2, 'score': 0.9, 'start': 0, 'end': 9}, {'type': 'protein', 'text': 'IL-2', 'start_token': 0, 'end_token': 1, 'score': 0.8, 'start': 0, 'end': 4}]
    """
    out = []
    for a, b, typ, score in found:
        ent = {"type": typ, "text": " ".join(words[a:b]), "start_token": a, "end_token": b, "score": round(score, 4)}
        if offsets is not None:
            ent["start"], ent["end"] = offsets[a][0], offsets[b - 1][1]
            if text is not None:
                ent["text"] = text[ent["start"]:ent["end"]]
        out.append(ent)
    return out


def predict_span_stream(predictor: SpanPredictor, records: Iterable[dict], chunk_size: int = 2048) -> Iterator[dict]:
    """Records ``{"words", ["offsets", "text", "line"]}`` with their ``entities`` (which may overlap), in input
    order, at most ``chunk_size`` records in memory."""
    records = iter(records)
    while chunk := list(islice(records, chunk_size)):
        for rec, found in zip(chunk, predictor.predict([r["words"] for r in chunk]), strict=True):
            yield {**rec, "entities": span_entities(rec["words"], found, rec.get("offsets"), rec.get("text"))}
