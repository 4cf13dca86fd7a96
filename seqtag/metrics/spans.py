"""Exact-match span scores for entities that may overlap and nest, pure: values in, values out.

A predicted span counts as correct when a gold span of the same sentence has the same start, end and type.
Gold and predicted spans of a sentence are sets: they may overlap, nest, or share their extent with another
type. On flat data, with predictions that do not overlap, these are seqeval's strict scores (the test pins it
against :func:`seqtag.metrics.entity_scores` in strict mode).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

SpanTriple = tuple[int, int, str]
"""``(start, end, type)`` with ``end`` exclusive (any consistent convention works: spans are compared whole)."""


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def span_scores(gold: Sequence[Iterable[SpanTriple]], pred: Sequence[Iterable[SpanTriple]]) -> dict:
    """Micro-averaged precision, recall and F1 over spans, and per-type scores (fractions; 0 where undefined).

    Args:
        gold, pred: one collection of ``(start, end, type)`` per sentence, the same number of sentences.
            Duplicates within a sentence count once.

    Returns:
        ``{"precision", "recall", "f1", "per_type": {TYPE: {"precision", "recall", "f1", "support"}}}``, types
        sorted, every type found in gold or pred; ``support`` is the number of gold spans.

    >>> gold = [[(0, 2, "DNA"), (0, 1, "protein")], [(3, 4, "RNA")]]
    >>> pred = [[(0, 2, "DNA"), (0, 1, "DNA")], []]
    >>> s = span_scores(gold, pred)
    >>> s["precision"], round(s["recall"], 4), s["per_type"]["DNA"]
    (0.5, 0.3333, {'precision': 0.5, 'recall': 1.0, 'f1': 0.6666666666666666, 'support': 1})
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}; pass one prediction per sentence")
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    for g, p in zip(gold, pred, strict=True):
        g, p = set(g), set(p)
        n_gold.update(t for _, _, t in g)
        n_pred.update(t for _, _, t in p)
        tp.update(t for _, _, t in g & p)
    precision, recall, f1 = _prf(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    per_type = {}
    for t in sorted(set(n_gold) | set(n_pred)):
        p, r, f = _prf(tp[t], n_pred[t], n_gold[t])
        per_type[t] = {"precision": p, "recall": r, "f1": f, "support": n_gold[t]}
    return {"precision": precision, "recall": recall, "f1": f1, "per_type": per_type}
