"""Sequence decoding: the tag moves a scheme allows, Viterbi, and scheme-constrained decoding of softmax scores.

A chain of ``C`` tags scores a tag path ``y_0 .. y_{n-1}`` as

    score(y) = start[y_0] + sum_{t<n} x[t, y_t] + sum_{0<t<n} transitions[y_{t-1}, y_t] + end[y_{n-1}]

where ``x (n, C)`` are per-position scores. :func:`viterbi` returns the path of highest score; an entry of
``-inf`` forbids that first tag, move or last tag. :func:`transition_constraints` says which moves a tag scheme
allows (the rule is :func:`seqtag.data.schemes.allowed_transition`, the one :func:`~seqtag.data.schemes.find_problems`
checks), and :func:`constrained_decode` runs Viterbi over a softmax model's log-probabilities with the forbidden
moves at ``-inf``: the most probable *valid* tag sequence. The CRF head (:mod:`seqtag.modeling.crf`) decodes with the same
:func:`viterbi` and its learned transitions.

Batches are ``(B, T, C)`` scores with a ``(B, T)`` boolean mask that is left-aligned (each row is ``True`` for its
first ``n`` positions, then ``False``); rows of word-level scores of different lengths are padded that way by
:func:`pad_rows`. Everything here is pure: tensors in, lists of tag ids out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from seqtag.data import schemes
from seqtag.errors import DataError


@functools.lru_cache(maxsize=64)
def _allowed(labels: tuple[str, ...], scheme: str) -> tuple[list[bool], list[list[bool]], list[bool]]:
    schemes.check_scheme(scheme)
    prefixes = schemes.PREFIXES[scheme]
    for i, lab in enumerate(labels):
        try:
            prefix, _ = schemes.parse_tag(lab)
        except DataError as e:
            raise DataError(f"label {i} of the label set: {e}") from None
        if prefix != "O" and prefix not in prefixes:
            raise DataError(f"label {i} {lab!r} uses prefix {prefix!r}, which {scheme} does not have ({scheme} uses "
                            f"{', '.join(prefixes)}); the labels and the tag scheme do not belong together")
    ok = schemes.allowed_transition
    start = [ok("O", b, scheme) for b in labels]
    trans = [[ok(a, b, scheme) for b in labels] for a in labels]
    end = [ok(a, "O", scheme) for a in labels]
    return start, trans, end


def transition_constraints(labels: Sequence[str], scheme: str) -> tuple[Tensor, Tensor, Tensor]:
    """Which first tags, moves and last tags ``scheme`` allows, as boolean ``start_ok (C,)``,
    ``trans_ok (C, C)`` (``trans_ok[i, j]``: tag ``j`` may follow tag ``i``) and ``end_ok (C,)``.

    A tag sequence passes all three iff :func:`seqtag.data.schemes.find_problems` reports nothing for it.
    Raises :class:`DataError` when a label is malformed or uses a prefix the scheme does not have.

    >>> start_ok, trans_ok, end_ok = transition_constraints(["O", "B-PER", "I-PER"], "IOB2")
    >>> start_ok.tolist()
    [True, True, False]
    >>> trans_ok.int().tolist()   # rows: previous tag; O -> I-PER is the one forbidden move
    [[1, 1, 0], [1, 1, 1], [1, 1, 1]]
    """
    start, trans, end = _allowed(tuple(labels), scheme)
    return (torch.tensor(start, dtype=torch.bool), torch.tensor(trans, dtype=torch.bool).reshape(len(start), -1),
            torch.tensor(end, dtype=torch.bool))


def mask_lengths(mask: Tensor) -> Tensor:
    """Row lengths ``(B,)`` of a left-aligned ``(B, T)`` boolean mask; raises ``ValueError`` if it is not one."""
    if mask.ndim != 2 or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a (B, T) bool tensor; got {tuple(mask.shape)} {mask.dtype}")
    lengths = mask.sum(1)
    if not torch.equal(mask, torch.arange(mask.shape[1], device=mask.device) < lengths[:, None]):
        raise ValueError("mask must be left-aligned (True for each row's first n positions, then False); "
                         "gather the labelled positions to the left first (seqtag.modeling.crf.compact)")
    return lengths


def _check_chain(scores: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> None:
    if scores.ndim != 3:
        raise ValueError(f"scores must have shape (B, T, C); got {tuple(scores.shape)}")
    c = scores.shape[2]
    for name, t, shape in (("transitions", transitions, (c, c)), ("start", start, (c,)), ("end", end, (c,))):
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for C={c} tags; got {tuple(t.shape)}")


@torch.no_grad()
def viterbi(scores: Tensor, mask: Tensor, transitions: Tensor, start: Tensor, end: Tensor) -> list[list[int]]:
    """The highest-scoring tag path of every row (the score is in the module docstring).

    Args:
        scores: ``(B, T, C)`` per-position tag scores (emissions or log-probabilities), any float dtype;
            computed in float32 (float64 stays float64).
        mask: ``(B, T)`` bool, left-aligned; row ``b`` is a chain of ``mask[b].sum()`` positions.
        transitions: ``(C, C)``, ``transitions[i, j]`` scores tag ``j`` right after tag ``i``.
        start, end: ``(C,)`` scores of the first and the last tag.

    Any of them may hold ``-inf`` (a forbidden first tag, move or last tag); it is never chosen while a finite
    path exists. Raises ``ValueError`` for a row where every path scores ``-inf``. Vectorised over the batch
    (a loop over time only).

    Returns:
        one list of tag ids per row, of the row's length (``[]`` for an empty row).

    >>> scores = torch.tensor([[[2.0, 0.0], [2.0, 0.0], [0.0, 0.0]]])
    >>> moves = torch.tensor([[0.0, 0.0], [-math.inf, 0.0]])   # 1 -> 0 forbidden
    >>> viterbi(scores, torch.tensor([[True, True, False]]), moves, torch.zeros(2), torch.zeros(2))
    [[0, 0]]
    >>> viterbi(scores, torch.tensor([[True, True, False]]), moves, torch.tensor([-math.inf, 0.0]), torch.zeros(2))
    [[1, 1]]
    """
    _check_chain(scores, transitions, start, end)
    if mask.shape != scores.shape[:2]:
        raise ValueError(f"mask must have shape (B, T) = {tuple(scores.shape[:2])}; got {tuple(mask.shape)}")
    lengths = mask_lengths(mask)
    b, t_max, _ = scores.shape
    if b == 0 or t_max == 0:
        return [[] for _ in range(b)]
    dtype = torch.promote_types(scores.dtype, torch.float32)
    x = scores.to(dtype)
    trans, start, end = (v.to(device=x.device, dtype=dtype) for v in (transitions, start, end))
    score = start + x[:, 0]  # (B, C): best score of a path ending in each tag at position t
    best = [score]
    back = []  # back[t-1][b, j]: the previous tag of the best path that is at tag j at position t
    into = trans.t()[None]  # into[0, j, i] = trans[i, j], so the max runs over the last dimension
    for t in range(1, t_max):
        score, prev = (score[:, None, :] + into).max(2)
        score = score + x[:, t]
        best.append(score)
        back.append(prev)
    last_pos = (lengths - 1).clamp_min(0)
    final = torch.stack(best, 1)[torch.arange(b, device=x.device), last_pos] + end  # (B, C)
    final_score, last = final.max(1)
    bad = (lengths > 0) & torch.isneginf(final_score)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        raise ValueError(f"rows {rows[:10]}: every tag path scores -inf (the constraints forbid them all, or the "
                         f"scores hold -inf); is 'O' among the labels?")
    history = torch.stack(back, 1).cpu() if back else torch.empty(b, 0, 0, dtype=torch.long)
    lengths, cur, last = lengths.cpu(), last.cpu(), last.cpu()
    path = torch.zeros(b, t_max, dtype=torch.long)
    rows = torch.arange(b)
    for t in range(t_max - 1, -1, -1):
        cur = torch.where(lengths - 1 == t, last, cur)  # a row's path starts (backwards) at its last position
        path[:, t] = cur
        if t > 0:
            cur = history[rows, t - 1, cur]
    return [p[:n] for p, n in zip(path.tolist(), lengths.tolist())]


def constrained_decode(log_probs: Tensor, mask: Tensor, labels: Sequence[str], scheme: str) -> list[list[int]]:
    """The most probable tag sequence that is valid under ``scheme``, for per-position (softmax) scores.

    Maximises ``sum_t log_probs[t, y_t]`` over the tag sequences ``y`` that
    :func:`seqtag.data.schemes.find_problems` accepts: Viterbi with ``0`` for allowed and ``-inf`` for
    forbidden first tags, moves and last tags. A softmax model treats positions as independent, so this is the
    most probable valid sequence under the model. When the per-position argmax is already valid it is the
    answer. Logits give the same result as log-probabilities (they differ by a constant per position).

    Args:
        log_probs: ``(B, T, C)`` word-level log-probabilities (or logits), label ids index ``labels``.
        mask: ``(B, T)`` bool, left-aligned (see :func:`pad_rows`).
        labels: the label of every id.
        scheme: the tag scheme of ``labels``.

    >>> lp = torch.tensor([[[0.1, 0.2, 0.7], [0.2, 0.1, 0.7]]]).log()   # argmax: I-PER I-PER, invalid in IOB2
    >>> constrained_decode(lp, torch.ones(1, 2, dtype=torch.bool), ["O", "B-PER", "I-PER"], "IOB2")
    [[1, 2]]
    """
    start_ok, trans_ok, end_ok = (m.to(log_probs.device) for m in transition_constraints(labels, scheme))
    if log_probs.ndim != 3 or log_probs.shape[2] != len(start_ok):
        raise ValueError(f"log_probs must have shape (B, T, C={len(start_ok)}) for {len(start_ok)} labels; "
                         f"got {tuple(log_probs.shape)}")

    def penalty(ok: Tensor) -> Tensor:
        return torch.where(ok, 0.0, -math.inf)

    return viterbi(log_probs, mask, penalty(trans_ok), penalty(start_ok), penalty(end_ok))


def pad_rows(rows: Sequence[Tensor | Sequence[Sequence[float]]], num_tags: int) -> tuple[Tensor, Tensor]:
    """Stack per-sentence word scores ``(n_i, C)`` into ``scores (B, T, C)`` and a left-aligned ``mask (B, T)``.

    Padding is 0. ``T`` is the longest row (0 when there are none).

    >>> scores, mask = pad_rows([torch.ones(2, 3), [[5.0, 5.0, 5.0]]], num_tags=3)
    >>> scores.shape, mask.tolist()
    (torch.Size([2, 2, 3]), [[True, True], [True, False]])
    """
    tensors = [torch.as_tensor(r, dtype=torch.float32) if not isinstance(r, Tensor) else r for r in rows]
    for i, r in enumerate(tensors):
        if r.ndim != 2 and r.numel() == 0:
            tensors[i] = r = r.reshape(0, num_tags)
        if r.ndim != 2 or r.shape[1] != num_tags:
            raise ValueError(f"row {i} has shape {tuple(r.shape)}; expected (n, {num_tags})")
    t_max = max((len(r) for r in tensors), default=0)
    dtype = tensors[0].dtype if tensors else torch.float32
    device = tensors[0].device if tensors else None
    scores = torch.zeros(len(tensors), t_max, num_tags, dtype=dtype, device=device)
    mask = torch.zeros(len(tensors), t_max, dtype=torch.bool, device=device)
    for i, r in enumerate(tensors):
        scores[i, : len(r)] = r
        mask[i, : len(r)] = True
    return scores, mask
