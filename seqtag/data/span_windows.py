"""Model windows for the span head: whole words, each word read at its first subword, every span scored whole.

A sentence longer than ``max_length`` subwords is cut into overlapping windows of whole words (as for token
tagging, :mod:`seqtag.data.align`), with one more rule: consecutive windows share at least
``max_span_length - 1`` words, so every span of up to ``max_span_length`` words lies whole inside some window
(unless its own subwords do not fit in one window: such a span cannot be scored and is counted).

Training labels every candidate span inside each window (a window's spans near its edges too: the label is
right whatever the context). At prediction a span found in several windows takes its scores from the window
where it is farthest from the edges, ``min(words before it, words after it)`` in that window, the first such
window on a tie (:func:`span_owner_context`, used by :mod:`seqtag.inference.span_decoding`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seqtag.data.align import label_position, marker_ids, special_tokens, word_pieces
from seqtag.data.spans import Span


def plan_span_windows(counts: Sequence[int], max_pieces: int, stride: int, max_span_length: int) -> list[tuple[int, int]]:
    """``[start, end)`` word windows of at most ``max_pieces`` subwords (``counts``: subwords per word).

    Consecutive windows share whole words of at most ``stride`` subwords, or ``max_span_length - 1`` words if
    that is more; each window starts and ends after the previous one.

    >>> plan_span_windows([1] * 10, max_pieces=4, stride=0, max_span_length=2)
    [(0, 4), (3, 7), (6, 10)]
    >>> plan_span_windows([1] * 10, max_pieces=6, stride=2, max_span_length=1)
    [(0, 6), (4, 10)]
    """
    n = len(counts)
    if n == 0:
        return [(0, 0)]
    windows, start = [], 0
    while True:
        end, used = start, 0
        while end < n and used + counts[end] <= max_pieces:
            used += counts[end]
            end += 1
        end = max(end, start + 1)  # one over-long word: cut to max_pieces when encoded
        if not windows or end > windows[-1][1]:  # else it lies inside the previous window: nothing new to score
            windows.append((start, end))
        if end >= n:
            return windows
        nxt, overlap = end, 0
        while nxt - 1 > start and overlap + counts[nxt - 1] <= stride:
            nxt -= 1
            overlap += counts[nxt]
        start = min(nxt, max(start + 1, end - (max_span_length - 1)))


def span_owner_context(num_words: int, max_span_length: int) -> np.ndarray:
    """``(W, L)``: for the span from word ``i`` to ``i + l`` of a window of ``num_words`` words, the words on its
    nearer side, ``min(i, num_words - 1 - (i + l))``; -1 where the span runs past the window.

    >>> span_owner_context(4, 2).tolist()
    [[0, 0], [1, 1], [1, 0], [0, -1]]
    """
    i = np.arange(num_words)[:, None]
    end = i + np.arange(max_span_length)[None, :]
    return np.where(end < num_words, np.minimum(i, num_words - 1 - end), -1)


def encode_span_sentences(tokenizer, sentences: Sequence[Sequence[str]], spans: Sequence[Sequence[Span]] | None,
                          types: Sequence[str], *, max_length: int, stride: int,
                          max_span_length: int) -> tuple[dict[str, list], dict[str, int]]:
    """Encode sentences into span-head windows.

    Returns the columns, one row per window: ``input_ids`` (T,); ``word_positions`` (W,), the position of each of
    the window's words (its first subword, or the first after a bare word-start marker, as
    :func:`seqtag.data.align.label_position`); ``gold_spans`` (3n,), the window's gold spans that fit whole in it
    as flat ``[i, l, type_id]`` triples (window word ``i`` to ``i + l``, inclusive); ``word_offset``, the
    sentence index of the window's first word; ``sentence_index``; ``num_windows``. And the counts of gold spans
    that no window can score: ``longer`` than ``max_span_length`` words, ``unfit`` (too many subwords for one
    window).
    """
    prefix, suffix = special_tokens(tokenizer)
    max_pieces = max_length - len(prefix) - len(suffix)
    pieces = word_pieces(tokenizer, sentences)
    markers = marker_ids(tokenizer)
    type_id = {t: k for k, t in enumerate(types)}
    out: dict[str, list] = {k: [] for k in ("input_ids", "word_positions", "gold_spans", "word_offset",
                                            "sentence_index", "num_windows")}
    lost = {"longer": 0, "unfit": 0}
    for s, words in enumerate(pieces):
        counts = [len(p) for p in words]
        windows = plan_span_windows(counts, max_pieces, stride, max_span_length)
        gold = [] if spans is None else [sp for sp in spans[s] if sp[2] in type_id]
        lost["longer"] += sum(b - a > max_span_length for a, b, _ in gold)
        gold = [sp for sp in gold if sp[1] - sp[0] <= max_span_length]
        lost["unfit"] += sum(not any(a <= sp[0] and sp[1] <= b for a, b in windows) for sp in gold)
        for a, b in windows:
            ids, positions = list(prefix), []
            for i in range(a, b):
                p = words[i][: max_pieces - (len(ids) - len(prefix))] if b - a == 1 else words[i]
                positions.append(len(ids) + label_position(p, markers))
                ids.extend(p)
            out["input_ids"].append(ids + list(suffix))
            out["word_positions"].append(positions)
            out["gold_spans"].append([v for start, end, t in gold if a <= start and end <= b
                                      for v in (start - a, end - 1 - start, type_id[t])])
            out["word_offset"].append(a)
            out["sentence_index"].append(s)
            out["num_windows"].append(len(windows))
    return out, lost
