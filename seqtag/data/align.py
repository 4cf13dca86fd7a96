"""Subword alignment and windows for token classification (pure functions over a fast tokenizer).

A sentence is a list of words. Each word becomes one or more subwords; the **first subword of a word carries
the word's label**, the others get ``IGNORE_INDEX`` (or, with ``label_all_tokens``, the word's label with
``B-`` turned into ``I-``). Evaluation and prediction always read that subword only, so every word gets
exactly one tag whatever the training option. The one exception is a bare word-start marker: SentencePiece
often splits a word into a lone ``▁`` and the word's characters (every CJK character, most emoji), byte-level
BPE into a lone ``Ġ`` and the bytes. The marker token is the same for every such word, so the label goes to the
word's first subword after it (:func:`marker_ids`).

A sentence longer than the model's window (``max_length`` subwords, special tokens included) is split into
overlapping windows of whole words; consecutive windows share about ``stride`` subwords. Every word is
*owned* by exactly one window, the one where it has the most context on its nearer side, and only the owner
labels and predicts it. Nothing is truncated: a single word longer than a whole window keeps its first
subwords (its label sits on the first one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from seqtag.constants import IGNORE_INDEX

# Part of the tokenisation cache key (seqtag.data.ner): bump it when the alignment of labels to subwords changes.
# 2: the label of a word whose first subword is a bare word-start marker (lone ▁ or Ġ) moved to the next subword.
ALIGNMENT_VERSION = 2


def word_pieces(tokenizer, sentences: Sequence[Sequence[str]]) -> list[list[list[int]]]:
    """Subword ids of every word of every sentence, without special tokens.

    A word the tokenizer maps to nothing (a zero-width character, say) becomes the unknown token, so that
    every word still has a position to be labelled and predicted at.
    """
    if not sentences:
        return []
    # not verbose: transformers warns of "indexing errors" past the model's length, which windows avoid
    enc = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False, verbose=False)
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    out = []
    for i, words in enumerate(sentences):
        pieces: list[list[int]] = [[] for _ in words]
        for tok_id, w in zip(enc["input_ids"][i], enc.word_ids(i)):
            if w is not None:
                pieces[w].append(tok_id)
        out.append([p or [unk] for p in pieces])
    return out


def _markers(pre_tokenizer: dict) -> set[str]:
    if pre_tokenizer.get("type") == "Sequence":
        return {m for p in pre_tokenizer.get("pretokenizers", []) for m in _markers(p)}
    if pre_tokenizer.get("type") == "Metaspace":
        return {pre_tokenizer.get("replacement", "\u2581")}
    if pre_tokenizer.get("type") == "ByteLevel":
        return {"\u0120"}  # Ġ: the byte-level form of a space
    return set()


def marker_ids(tokenizer) -> set[int]:
    """Ids of the tokens that only mark a word start: Metaspace's lone ``▁``, byte-level BPE's lone ``Ġ``.

    Read from the pre-tokenizer, so a WordPiece vocabulary that happens to hold ``▁`` as a character has none.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.pre_tokenizer is None:
        return set()
    ids = (backend.token_to_id(m) for m in _markers(json.loads(backend.pre_tokenizer.__getstate__())))
    return {i for i in ids if i is not None}


def label_position(pieces: Sequence[int], markers: set[int]) -> int:
    """Index of the subword that carries a word's label: the first one that is not a bare word-start marker.

    >>> label_position([5, 9], markers={5}), label_position([5], markers={5}), label_position([7, 5], {5})
    (1, 0, 0)
    """
    return next((k for k, t in enumerate(pieces) if t not in markers), 0)


def plan_windows(counts: Sequence[int], max_pieces: int, stride: int) -> list[tuple[int, int]]:
    """Split words with ``counts`` subwords each into ``[start, end)`` word windows of at most ``max_pieces``.

    Consecutive windows overlap by whole words totalling at most ``stride`` subwords (at least one word less
    than the previous window, so the plan always advances).

    >>> plan_windows([1, 1, 1], max_pieces=5, stride=2)
    [(0, 3)]
    >>> plan_windows([1] * 10, max_pieces=4, stride=2)
    [(0, 4), (2, 6), (4, 8), (6, 10)]
    >>> plan_windows([3, 9, 2], max_pieces=4, stride=1)  # a 9-subword word gets a window of its own
    [(0, 1), (1, 2), (2, 3)]
    """
    n = len(counts)
    if n == 0:
        return [(0, 0)]
    windows = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + counts[end] <= max_pieces:
            used += counts[end]
            end += 1
        end = max(end, start + 1)  # one over-long word: it is cut to max_pieces when encoded
        windows.append((start, end))
        if end >= n:
            return windows
        nxt, overlap = end, 0
        while nxt - 1 > start and overlap + counts[nxt - 1] <= stride:
            nxt -= 1
            overlap += counts[nxt]
        start = nxt


def window_owners(counts: Sequence[int], windows: Sequence[tuple[int, int]]) -> list[int]:
    """For every word, the index of the window that predicts it: the one giving it most context on its nearer side.

    >>> window_owners([1] * 6, [(0, 4), (2, 6)])
    [0, 0, 0, 1, 1, 1]
    """
    best = [(-1, -1)] * len(counts)  # (context, window)
    for w, (a, b) in enumerate(windows):
        left = 0
        total = sum(counts[a:b])
        for i in range(a, b):
            context = min(left, total - left - counts[i])
            if context > best[i][0]:
                best[i] = (context, w)
            left += counts[i]
    return [w for _, w in best]


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after one sequence (``[CLS]`` and ``[SEP]`` for BERT)."""
    probe = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for i in range(len(full) - len(probe) + 1):
        if full[i:i + len(probe)] == probe:
            return full[:i], full[i + len(probe):]
    raise ValueError(f"cannot locate the special tokens of {type(tokenizer).__name__}")


def encode_sentences(
    tokenizer,
    sentences: Sequence[Sequence[str]],
    label_ids: Sequence[Sequence[int]] | None,
    *,
    max_length: int,
    stride: int,
    continuation_ids: Sequence[int] | None = None,
) -> dict[str, list]:
    """Encode sentences into model windows (features), labels aligned to first subwords.

    Args:
        sentences: words per sentence.
        label_ids: a label id per word per sentence, or ``None`` at prediction time.
        max_length: subwords per window, special tokens included.
        stride: subwords shared by consecutive windows.
        continuation_ids: ``continuation_ids[label]`` is the id given to the non-first subwords of a word with
            that label (``B-X`` -> ``I-X``); ``None`` leaves them at ``IGNORE_INDEX`` (first-subword labelling).

    Returns:
        Columns of equal length, one row per window: ``input_ids`` (T,), ``labels`` (T,), ``word_index`` (T,)
        holding the sentence-level word index at the labelled subword of every word this window owns and -1
        elsewhere, ``sentence_index``, and ``num_windows`` (of the row's sentence).
    """
    prefix, suffix = special_tokens(tokenizer)
    before, after = len(prefix), len(suffix)
    max_pieces = max_length - before - after
    pieces = word_pieces(tokenizer, sentences)
    markers = marker_ids(tokenizer)
    out: dict[str, list] = {k: [] for k in ("input_ids", "labels", "word_index", "sentence_index", "num_windows")}
    for s, words in enumerate(pieces):
        counts = [len(p) for p in words]
        windows = plan_windows(counts, max_pieces, stride)
        owners = window_owners(counts, windows)
        for w, (a, b) in enumerate(windows):
            ids: list[int] = []
            labels: list[int] = []
            word_index: list[int] = []
            for i in range(a, b):
                p = words[i][: max_pieces - len(ids)] if b - a == 1 else words[i]
                own = owners[i] == w
                at = label_position(p, markers)
                ids.extend(p)
                word_index.extend([-1] * at + [i if own else -1] + [-1] * (len(p) - at - 1))
                if label_ids is None or not own:
                    labels.extend([IGNORE_INDEX] * len(p))
                else:
                    lab = label_ids[s][i]
                    cont = IGNORE_INDEX if continuation_ids is None else continuation_ids[lab]
                    labels.extend([IGNORE_INDEX] * at + [lab] + [cont] * (len(p) - at - 1))
            out["input_ids"].append(prefix + ids + suffix)
            out["labels"].append([IGNORE_INDEX] * before + labels + [IGNORE_INDEX] * after)
            out["word_index"].append([-1] * before + word_index + [-1] * after)
            out["sentence_index"].append(s)
            out["num_windows"].append(len(windows))
    return out


def merge_windows(
    word_index: Sequence[Sequence[int]],
    sentence_index: Sequence[int],
    values: Sequence[Sequence],
    num_words: Sequence[int],
) -> list[list]:
    """Gather per-position values (predicted ids, scores...) of windows back into one value per word.

    ``word_index[f][t]`` names the word that position ``t`` of window ``f`` predicts (-1: none). Raises if
    a word is predicted twice or never, which would mean a bug in the window plan, not a user error.

    >>> merge_windows([[-1, 0, 1, -1], [-1, 2, -1]], [0, 0], [[9, 5, 6, 9], [9, 7, 9]], [3])
    [[5, 6, 7]]
    """
    out: list[list] = [[None] * n for n in num_words]
    for wi, s, vals in zip(word_index, sentence_index, values):
        row = out[s]
        for t, i in enumerate(wi):
            if i >= 0:
                if row[i] is not None:
                    raise AssertionError(f"word {i} of sentence {s} is predicted by two windows")
                row[i] = vals[t]
    for s, row in enumerate(out):
        if any(v is None for v in row):
            raise AssertionError(f"sentence {s}: words {[i for i, v in enumerate(row) if v is None]} got no prediction")
    return out
