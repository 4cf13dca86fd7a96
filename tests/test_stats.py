"""Tests for seqtag.stats: a hand-counted set, span decoding vs seqeval's lenient reader, the class-weight formula
vs scikit-learn, and WNUT-17 train against the counts in its SOURCE.md."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.stats import decode_spans, format_stats, label_stats
from tests.shared import shared_file

HAND = [
    ["B-PER", "I-PER", "O", "O"],  # PER len 2
    ["I-LOC", "I-LOC", "B-LOC", "O"],  # IOB1: LOC len 2, LOC len 1
    ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "O"],  # ORG len 5
    ["O", "I-PER", "B-LOC", "I-LOC"],  # PER len 1 (I- after O), LOC len 2
]


def test_hand_made_counts():
    s = label_stats(HAND)
    assert (s["sentences"], s["tokens"], s["max_sentence_length"]) == (4, 18, 6)
    assert s["mean_sentence_length"] == 4.5
    counts = {"B-LOC": 2, "B-ORG": 1, "B-PER": 1, "I-LOC": 3, "I-ORG": 4, "I-PER": 2, "O": 5}
    assert {k: v["count"] for k, v in s["labels"].items()} == counts
    assert list(s["labels"]) == sorted(counts)
    assert s["labels"]["I-ORG"]["share"] == pytest.approx(4 / 18)
    assert s["o_share"] == pytest.approx(5 / 18)
    assert s["mentions"] == 6
    assert s["entities"] == {
        "LOC": {
            "count": 3,
            "mean_length": pytest.approx(5 / 3),
            "max_length": 2,
            "length_histogram": {"1": 1, "2": 2, "3": 0, "4": 0, "5+": 0},
        },
        "ORG": {
            "count": 1,
            "mean_length": 5.0,
            "max_length": 5,
            "length_histogram": {"1": 0, "2": 0, "3": 0, "4": 0, "5+": 1},
        },
        "PER": {
            "count": 2,
            "mean_length": 1.5,
            "max_length": 2,
            "length_histogram": {"1": 1, "2": 1, "3": 0, "4": 0, "5+": 0},
        },
    }


def test_inverse_frequency_weights_by_hand_and_normalised():
    s = label_stats(HAND)
    w = s["inverse_frequency_weights"]
    # w_c = N / (C * n_c) with N = 18 tokens, C = 7 labels
    assert w["O"] == pytest.approx(18 / (7 * 5))
    assert w["B-PER"] == pytest.approx(18 / 7)
    assert w["I-ORG"] == pytest.approx(18 / 28)
    wn = s["inverse_frequency_weights_normalized"]
    assert sum(wn.values()) / len(wn) == pytest.approx(1.0)
    mean = sum(w.values()) / 7
    assert wn["O"] == pytest.approx(w["O"] / mean)
    # the "balanced" weights reproduce N: sum over tokens of w(label) = N
    assert sum(w[k] * v["count"] for k, v in s["labels"].items()) == pytest.approx(18 * 1.0)


def test_weights_match_sklearn_balanced():
    utils = pytest.importorskip("sklearn.utils")
    import numpy as np

    s = label_stats(HAND)
    y = np.array([t for sent in HAND for t in sent])
    classes = np.array(sorted(set(y)))
    ref = utils.compute_class_weight("balanced", classes=classes, y=y)
    assert [s["inverse_frequency_weights"][c] for c in classes] == pytest.approx(list(ref), abs=1e-12)


def test_decode_spans_all_prefixes():
    tags = ["S-PER", "B-LOC", "E-LOC", "I-LOC", "U-ORG", "B-X", "L-X", "E-X", "I-Y", "I-Z"]
    assert decode_spans(tags) == [
        ("PER", 0, 1),
        ("LOC", 1, 3),
        ("LOC", 3, 4),
        ("ORG", 4, 5),
        ("X", 5, 7),
        ("X", 7, 8),
        ("Y", 8, 9),
        ("Z", 9, 10),
    ]
    assert decode_spans(["B-creative-work", "I-creative-work"]) == [("creative-work", 0, 2)]
    assert decode_spans([]) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"]), max_size=12))
def test_decode_spans_matches_seqeval_lenient_reader(tags):
    from seqeval.metrics.sequence_labeling import get_entities

    assert decode_spans(tags) == [(t, s, e + 1) for t, s, e in get_entities(list(tags))]


def test_bad_tag_names_sentence_and_token():
    with pytest.raises(ValueError, match=r"sentence 1, token 2: tag 'PER'"):
        label_stats([["O"], ["O", "B-LOC", "PER"]])
    with pytest.raises(ValueError, match=r"tag 'X-PER'"):
        decode_spans(["X-PER"])


def test_empty_input():
    s = label_stats([])
    assert (s["sentences"], s["tokens"], s["o_share"], s["mentions"]) == (0, 0, 0.0, 0)
    assert s["labels"] == s["entities"] == s["inverse_frequency_weights"] == {}
    assert "sentences: 0" in format_stats(s)


def test_format_stats_rows():
    text = format_stats(label_stats(HAND))
    lines = text.splitlines()
    assert lines[0] == "sentences: 4  tokens: 18  mean length: 4.50  max length: 6"
    assert lines[1] == "O share: 0.2778  mentions: 6"
    rows = {line.split()[0]: line.split() for line in lines if line.strip()}
    assert rows["I-ORG"][1:4] == ["4", "0.2222", f"{18 / 28:.4f}"]
    assert rows["ORG"][1:] == ["1", "5.00", "5", "0", "0", "0", "0", "1"]
    assert rows["LOC"][1:] == ["3", "1.67", "2", "1", "2", "0", "0", "0"]


def read_tags(path: Path) -> list[list[str]]:
    """Minimal reader for the 2-column WNUT files: any whitespace-only line ends a sentence."""
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
                current = []
            continue
        current.append(line.split("\t")[-1].strip())
    if current:
        sentences.append(current)
    return sentences


@pytest.mark.shared_data
def test_wnut17_train_matches_source_counts():
    s = label_stats(read_tags(shared_file("wnut17/train.txt")))
    # numbers from shared/data/wnut17/SOURCE.md
    assert (s["sentences"], s["tokens"], s["max_sentence_length"]) == (3394, 62730, 41)
    assert s["labels"]["O"]["count"] == 59570
    assert s["o_share"] == pytest.approx(59570 / 62730, abs=1e-15)
    assert round(s["o_share"], 4) == 0.9496
    assert {t: v["count"] for t, v in s["entities"].items()} == {
        "person": 660,
        "location": 548,
        "group": 264,
        "corporation": 221,
        "creative-work": 140,
        "product": 142,
    }
    assert s["mentions"] == 1975
    # IOB2 with no stray I-: every mention starts with a B- tag
    assert sum(v["count"] for k, v in s["labels"].items() if k.startswith("B-")) == 1975
    assert round(s["mean_sentence_length"], 1) == 18.5
    n_labels = len(s["labels"])
    assert n_labels == 13
    assert s["inverse_frequency_weights"]["O"] == pytest.approx(62730 / (13 * 59570))
