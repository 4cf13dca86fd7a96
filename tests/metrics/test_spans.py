"""Tests for seqtag.metrics.spans: exact-match scores over span sets that may nest, and equality with seqeval's
strict scores on flat data."""

from __future__ import annotations

import random

import pytest

from seqtag.data.schemes import tags_from_spans
from seqtag.metrics import entity_scores, span_scores


def test_nested_and_same_extent_spans_are_scored_as_sets():
    gold = [[(0, 3, "DNA"), (0, 1, "protein"), (0, 1, "DNA")], [(2, 4, "cell_type")]]
    pred = [[(0, 3, "DNA"), (0, 1, "protein"), (0, 1, "protein"), (1, 3, "DNA")], [(2, 4, "cell_line")]]
    s = span_scores(gold, pred)
    # pred set: 4 distinct spans, 2 right; gold: 4 spans
    assert (s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5)
    assert s["per_type"]["DNA"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert s["per_type"]["protein"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert s["per_type"]["cell_line"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert list(s["per_type"]) == sorted(s["per_type"])


def test_empty_and_mismatched_inputs():
    assert span_scores([[]], [[]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "per_type": {}}
    with pytest.raises(ValueError, match="one prediction per sentence"):
        span_scores([[]], [])


def _random_flat(rng: random.Random, n: int) -> list[tuple[str, int, int]]:
    spans, i = [], 0
    while i < n:
        if rng.random() < 0.35:
            end = min(n, i + rng.randint(1, 3))
            spans.append((rng.choice("ABC"), i, end))
            i = end
        else:
            i += 1
    return spans


@pytest.mark.parametrize("scheme", ["IOB2", "IOBES", "BILOU"])
def test_on_flat_data_it_equals_seqeval_strict(scheme):
    rng = random.Random(3)
    gold_tags, pred_tags, gold_spans, pred_spans = [], [], [], []
    for _ in range(300):
        n = rng.randint(1, 12)
        g, p = _random_flat(rng, n), _random_flat(rng, n)
        if rng.random() < 0.3:
            p = list(g)  # some sentences exactly right
        gold_tags.append(tags_from_spans(g, n, scheme))
        pred_tags.append(tags_from_spans(p, n, scheme))
        gold_spans.append([(a, b, t) for t, a, b in g])
        pred_spans.append([(a, b, t) for t, a, b in p])
    ours = span_scores(gold_spans, pred_spans)
    strict = entity_scores(gold_tags, pred_tags, mode="strict", scheme=scheme)
    assert 0.2 < ours["f1"] < 0.9
    for key in ("precision", "recall", "f1"):
        assert ours[key] == pytest.approx(strict[key], abs=1e-12)
    assert ours["per_type"].keys() == strict["per_type"].keys()
    for t, scores in ours["per_type"].items():
        assert scores == pytest.approx(strict["per_type"][t], abs=1e-12)


def test_the_cli_report_prints_span_scores_without_token_accuracy():
    from seqtag.metrics import format_report

    text = format_report(span_scores([[(0, 2, "DNA")]], [[(0, 2, "DNA"), (0, 1, "protein")]]))
    assert text.splitlines()[-1] == "micro avg      0.5000  1.0000  0.6667        1"
    assert "accuracy" not in text
