"""Tests for seqtag.metrics: entity scores (by hand, vs seqeval's report, vs a conlleval re-implementation) and
SQuAD v1.1 EM/F1 (by hand, and on the real dev set)."""

from __future__ import annotations

import json
import random
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.errors import ConfigError
from seqtag.metrics import (
    entity_scores,
    format_report,
    ner_report,
    normalize_answer,
    squad_scores,
    squad_scores_from_refs,
)
from tests.shared import shared_file


def prf(tp: int, n_pred: int, n_gold: int) -> tuple[float, float, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


# ----------------------------------------------------------------------------------------------------------------
# entity_scores: hand-computed cases


def test_three_gold_two_pred_one_correct():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "O", "O", "B-LOC"]]
    s = entity_scores(gold, pred)
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(0.4)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }
    assert (s["mode"], s["scheme"]) == ("default", "IOB2")
    assert all(type(s[k]) is float for k in ("precision", "recall", "f1", "accuracy"))
    assert type(s["per_type"]["PER"]["support"]) is int


def test_default_and_strict_differ_on_i_after_o():
    gold = [["O", "B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["O", "I-PER", "I-PER", "O", "B-LOC"]]
    lenient = entity_scores(gold, pred, mode="default")
    assert (lenient["precision"], lenient["recall"], lenient["f1"]) == (1.0, 1.0, 1.0)
    strict = entity_scores(gold, pred, mode="strict", scheme="IOB2")
    # the I-PER run is not a well-formed IOB2 span: pred has only LOC, gold has PER and LOC
    assert strict["precision"] == 1.0
    assert strict["recall"] == 0.5
    assert strict["f1"] == pytest.approx(2 / 3)
    assert strict["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert strict["accuracy"] == lenient["accuracy"] == pytest.approx(4 / 5)


def test_support_counts_spans_per_type_and_sentences_do_not_merge():
    gold = [["O", "B-PER"], ["I-PER", "O"], ["B-LOC", "I-LOC", "B-LOC"]]
    pred = [["O", "B-PER"], ["O", "O"], ["B-LOC", "I-LOC", "I-LOC"]]
    s = entity_scores(gold, pred)
    # gold: PER(s0), PER(s1, I- after the boundary starts a span), LOC[0,2), LOC[2,3); pred: PER(s0), LOC[0,3)
    assert s["per_type"]["PER"]["support"] == 2
    assert s["per_type"]["LOC"]["support"] == 2
    assert s["per_type"]["PER"]["precision"] == 1.0 and s["per_type"]["PER"]["recall"] == 0.5
    assert s["per_type"]["LOC"]["precision"] == 0.0
    p, r, f = prf(tp=1, n_pred=2, n_gold=4)
    assert (s["precision"], s["recall"]) == (p, r)
    assert s["f1"] == pytest.approx(f)
    assert s["accuracy"] == pytest.approx(5 / 7)


def test_type_only_predicted_has_zero_support():
    s = entity_scores([["O", "O"]], [["B-MISC", "O"]])
    assert s["per_type"] == {"MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}}
    assert (s["precision"], s["recall"], s["f1"], s["accuracy"]) == (0.0, 0.0, 0.0, 0.5)


@pytest.mark.parametrize("mode", ["default", "strict"])
def test_empty_and_entity_free_inputs_give_zeros(mode):
    for gold, pred, acc in (([], [], 0.0), ([[]], [[]], 0.0), ([["O", "O"]], [["O", "O"]], 1.0)):
        s = entity_scores(gold, pred, mode=mode)
        assert s == {
            "precision": 0.0,
            "recall": 0.0,
            "f1": 0.0,
            "accuracy": acc,
            "per_type": {},
            "mode": mode,
            "scheme": "IOB2",
        }


def test_length_mismatch_names_sentence_and_lengths():
    with pytest.raises(ValueError, match=r"sentence 1: gold has 3 tags but pred has 2"):
        entity_scores([["O"], ["O", "B-PER", "I-PER"]], [["O"], ["O", "B-PER"]])
    with pytest.raises(ValueError, match=r"gold has 2 sentences but pred has 1"):
        entity_scores([["O"], ["O"]], [["O"]])


def test_bad_mode_scheme_and_tags():
    with pytest.raises(ConfigError, match="default, strict"):
        entity_scores([["O"]], [["O"]], mode="lenient")
    with pytest.raises(ConfigError, match="IOB1, IOB2"):
        entity_scores([["O"]], [["O"]], scheme="BIO")
    with pytest.raises(ConfigError, match="IOE1"):
        entity_scores([["O"]], [["O"]], mode="strict", scheme="IOE1")
    with pytest.raises(ValueError, match=r"sentence 0 token 1: pred tag 'E-PER'"):
        entity_scores([["O", "B-PER"]], [["O", "E-PER"]], mode="strict", scheme="IOB2")
    with pytest.raises(ValueError, match=r"gold tag 'PER'"):
        entity_scores([["PER"]], [["O"]])


def test_tuples_accepted():
    s = entity_scores((("B-PER", "I-PER"),), (("B-PER", "I-PER"),))
    assert s["f1"] == 1.0 and s["per_type"]["PER"]["support"] == 1


def test_bilou_default_mode_reads_l_and_u():
    gold = [["B-PER", "L-PER", "U-LOC", "O"]]
    pred = [["B-PER", "L-PER", "U-LOC", "U-LOC"]]
    for mode in ("default", "strict"):
        s = entity_scores(gold, pred, mode=mode, scheme="BILOU")
        assert s["per_type"]["PER"]["support"] == 1 and s["per_type"]["LOC"]["support"] == 1
        assert (s["precision"], s["recall"]) == (pytest.approx(2 / 3), 1.0)


def test_agrees_with_seqeval_classification_report_on_random_case():
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    rng = random.Random(7)
    tags = ["O"] * 6 + ["B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(60)]
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in s] for s in gold]
    for mode, kwargs in (("default", {}), ("strict", {"mode": "strict", "scheme": IOB2})):
        ref = classification_report(gold, pred, output_dict=True, zero_division=0, **kwargs)
        s = entity_scores(gold, pred, mode=mode, scheme="IOB2")
        assert s["precision"] == pytest.approx(ref["micro avg"]["precision"], abs=1e-12)
        assert s["recall"] == pytest.approx(ref["micro avg"]["recall"], abs=1e-12)
        assert s["f1"] == pytest.approx(ref["micro avg"]["f1-score"], abs=1e-12)
        types = {k for k in ref if not k.endswith(" avg")}
        assert set(s["per_type"]) == types == {"PER", "LOC", "ORG"}
        for t in types:
            assert s["per_type"][t]["precision"] == pytest.approx(ref[t]["precision"], abs=1e-12)
            assert s["per_type"][t]["recall"] == pytest.approx(ref[t]["recall"], abs=1e-12)
            assert s["per_type"][t]["f1"] == pytest.approx(ref[t]["f1-score"], abs=1e-12)
            assert s["per_type"][t]["support"] == ref[t]["support"]
    # the random case is not degenerate, and strict differs from default on it (stray I- tags)
    assert 0.2 < entity_scores(gold, pred)["f1"] < 0.9
    assert entity_scores(gold, pred)["f1"] != entity_scores(gold, pred, mode="strict")["f1"]


# ----------------------------------------------------------------------------------------------------------------
# conlleval cross-check: an independent chunk counter following conlleval.pl's rules


def _split(tag: str) -> tuple[str, str]:
    prefix, _, etype = tag.partition("-")
    return (prefix, etype) if etype else (tag, "")


def _chunk_end(prev_tag, tag, prev_type, etype) -> bool:
    return (prev_tag, tag) in {
        ("B", "B"),
        ("B", "O"),
        ("I", "B"),
        ("I", "O"),
        ("E", "E"),
        ("E", "I"),
        ("E", "O"),
    } or (prev_tag not in ("O", ".") and prev_type != etype)


def _chunk_start(prev_tag, tag, prev_type, etype) -> bool:
    return (prev_tag, tag) in {
        ("B", "B"),
        ("I", "B"),
        ("O", "B"),
        ("O", "I"),
        ("E", "E"),
        ("E", "I"),
        ("O", "E"),
    } or (tag not in ("O", ".") and prev_type != etype)


def conlleval_counts(gold: list[list[str]], pred: list[list[str]]) -> tuple[int, int, int]:
    """(correct chunks, found guessed, found correct), counted the way conlleval.pl does: one pass over the
    tokens, sentence boundaries read as an O/O line, a chunk correct when both start together with the same type
    and both end together."""
    correct = found_guessed = found_correct = 0
    in_correct = False
    prev_g, prev_gt, prev_c, prev_ct = "O", "", "O", ""
    stream = [pair for g, p in zip(gold, pred, strict=True) for pair in [*zip(g, p, strict=True), ("O", "O")]]
    for c_full, g_full in stream:
        c, ct = _split(c_full)
        g, gt = _split(g_full)
        end_c, end_g = _chunk_end(prev_c, c, prev_ct, ct), _chunk_end(prev_g, g, prev_gt, gt)
        start_c, start_g = _chunk_start(prev_c, c, prev_ct, ct), _chunk_start(prev_g, g, prev_gt, gt)
        if in_correct:
            if end_c and end_g and prev_gt == prev_ct:
                in_correct = False
                correct += 1
            elif end_c != end_g or gt != ct:
                in_correct = False
        if start_c and start_g and gt == ct:
            in_correct = True
        found_correct += start_c
        found_guessed += start_g
        prev_g, prev_gt, prev_c, prev_ct = g, gt, c, ct
    if in_correct:
        correct += 1
    return correct, found_guessed, found_correct


BIO_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@st.composite
def gold_pred_pairs(draw):
    lengths = draw(st.lists(st.integers(0, 8), min_size=1, max_size=5))
    gold = [draw(st.lists(st.sampled_from(BIO_TAGS), min_size=n, max_size=n)) for n in lengths]
    pred = [draw(st.lists(st.sampled_from(BIO_TAGS), min_size=n, max_size=n)) for n in lengths]
    return gold, pred


def test_conlleval_reference_on_known_case():
    # sanity check of the reference itself: 3 gold chunks, 2 guessed, 1 correct
    assert conlleval_counts(
        [["B-PER", "I-PER", "O", "B-LOC", "O", "I-LOC"]], [["B-PER", "I-PER", "O", "O", "O", "B-PER"]]
    ) == (1, 2, 3)


@settings(max_examples=300, deadline=None)
@given(gold_pred_pairs())
def test_default_mode_matches_conlleval(pair):
    gold, pred = pair
    correct, guessed, found = conlleval_counts(gold, pred)
    p, r, f = prf(correct, guessed, found)
    s = entity_scores(gold, pred, mode="default")
    assert abs(s["precision"] - p) < 1e-12
    assert abs(s["recall"] - r) < 1e-12
    assert abs(s["f1"] - f) < 1e-12
    n = sum(map(len, gold))
    acc = (
        sum(a == b for g, q in zip(gold, pred, strict=True) for a, b in zip(g, q, strict=True)) / n
        if n
        else 0.0
    )
    assert abs(s["accuracy"] - acc) < 1e-12


# ----------------------------------------------------------------------------------------------------------------
# strict mode: well-formed encodings of random span sets, scored against the span sets themselves


def encode(spans: list[tuple[str, int, int]], n: int, scheme: str) -> list[str]:
    """Well-formed tags for non-overlapping sorted spans (type, start, end) in a sentence of n tokens."""
    tags = ["O"] * n
    for k, (t, s, e) in enumerate(spans):
        after_same = k > 0 and spans[k - 1][2] == s and spans[k - 1][0] == t
        before_same = k + 1 < len(spans) and spans[k + 1][1] == e and spans[k + 1][0] == t
        for j in range(s, e):
            first, last = j == s, j == e - 1
            if scheme == "IOB1":
                p = "B" if first and after_same else "I"
            elif scheme == "IOB2":
                p = "B" if first else "I"
            elif scheme == "IOE1":
                p = "E" if last and before_same else "I"
            elif scheme == "IOE2":
                p = "E" if last else "I"
            else:
                single, begin, end = ("S", "B", "E") if scheme == "IOBES" else ("U", "B", "L")
                p = single if first and last else begin if first else end if last else "I"
            tags[j] = f"{p}-{t}"
    return tags


@st.composite
def span_sets(draw, n):
    spans, i = [], 0
    while i < n:
        if draw(st.booleans()):
            i += 1
            continue
        length = draw(st.integers(1, min(3, n - i)))
        spans.append((draw(st.sampled_from(["PER", "LOC"])), i, i + length))
        i += length
    return spans


@st.composite
def encoded_pairs(draw):
    n = draw(st.integers(1, 9))
    return n, draw(span_sets(n)), draw(span_sets(n))


@pytest.mark.parametrize(
    "scheme, modes",
    [
        ("IOB1", ("default", "strict")),
        ("IOB2", ("default", "strict")),
        ("IOE1", ("default",)),
        ("IOE2", ("default", "strict")),
        ("IOBES", ("default", "strict")),
        ("BILOU", ("default", "strict")),
    ],
)
@settings(max_examples=100, deadline=None)
@given(pair=encoded_pairs())
def test_well_formed_tags_score_as_their_span_sets(scheme, modes, pair):
    n, gold_spans, pred_spans = pair
    gold, pred = [encode(gold_spans, n, scheme)], [encode(pred_spans, n, scheme)]
    tp = len(set(gold_spans) & set(pred_spans))
    p, r, f = prf(tp, len(pred_spans), len(gold_spans))
    for mode in modes:
        s = entity_scores(gold, pred, mode=mode, scheme=scheme)
        assert (s["precision"], s["recall"]) == (pytest.approx(p), pytest.approx(r)), (mode, gold, pred)
        assert s["f1"] == pytest.approx(f)


def test_seqeval_strict_iob1_quirks_are_pinned():
    """seqeval 1.2.2's strict IOB1 on ill-formed input (documented in seqtag.metrics). If this fails after a
    seqeval upgrade, update the module docstring."""
    # (a) B-PER not after PER is dropped, but the I-PER after it becomes a span [1, 2) and matches gold
    s = entity_scores([["I-LOC", "I-PER"]], [["B-PER", "I-PER"]], mode="strict", scheme="IOB1")
    assert (s["precision"], s["recall"]) == (1.0, 0.5)
    s = entity_scores([["I-LOC", "I-PER"]], [["B-PER", "I-PER"]], mode="default")
    assert (s["precision"], s["recall"]) == (0.0, 0.0)  # conlleval: PER [0, 2), no match
    # (b) the well-formed single-token B-PER span is lost when an ill-formed B-LOC follows it
    gold, pred = [["I-PER", "B-PER", "O"]], [["I-PER", "B-PER", "B-LOC"]]
    s = entity_scores(gold, pred, mode="strict", scheme="IOB1")
    assert (s["precision"], s["recall"]) == (1.0, 0.5)
    s = entity_scores(gold, pred, mode="default")
    assert (s["precision"], s["recall"]) == (pytest.approx(2 / 3), 1.0)


def test_seqeval_strict_ioe1_is_wrong_on_well_formed_input():
    """The reason strict IOE1 is refused: seqeval loses PER [1, 2) in the well-formed 'O E-PER I-PER'."""
    from seqeval.scheme import IOE1, Tokens

    assert [e.to_tuple()[1:] for e in Tokens(["O", "E-PER", "I-PER"], IOE1).entities] == [("PER", 2, 3)]


# ----------------------------------------------------------------------------------------------------------------
# ner_report / format_report


def test_ner_report_keys_and_values():
    gold = [["O", "B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["O", "I-PER", "I-PER", "O", "B-LOC"]]
    r = ner_report(gold, pred, "IOB2")
    assert set(r) == {
        "precision",
        "recall",
        "f1",
        "f1_strict",
        "precision_strict",
        "recall_strict",
        "accuracy",
        "per_type",
    }
    assert (r["precision"], r["recall"], r["f1"]) == (1.0, 1.0, 1.0)
    assert (r["precision_strict"], r["recall_strict"]) == (1.0, 0.5)
    assert r["f1_strict"] == pytest.approx(2 / 3)
    assert r["accuracy"] == pytest.approx(0.8)
    assert r["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    json.dumps(r)  # what metrics.json stores must serialise


def test_format_report_table():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-creative-work"]]
    pred = [["B-PER", "I-PER", "O", "O", "O", "B-LOC"]]
    lines = format_report(ner_report(gold, pred, "IOB2")).splitlines()
    assert lines[0].split() == ["type", "precision", "recall", "f1", "support"]
    assert lines[1].split() == ["LOC", "0.0000", "0.0000", "0.0000", "1"]
    assert lines[2].split() == ["PER", "1.0000", "1.0000", "1.0000", "1"]
    assert lines[3].split() == ["creative-work", "0.0000", "0.0000", "0.0000", "1"]
    assert lines[4].split() == ["micro", "avg", "0.5000", "0.3333", "0.4000", "3"]
    assert lines[5] == "strict f1: 0.4000  token accuracy: 0.6667"
    assert len({len(line) for line in lines[:5]}) == 1  # fixed width
    assert "strict" not in format_report(entity_scores(gold, pred))


# ----------------------------------------------------------------------------------------------------------------
# SQuAD


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("HeLLo WORLD", "hello world"),  # lower case
        ("x.y,z! (ok)?", "xyz ok"),  # punctuation deleted, not replaced by a space
        ("don't", "dont"),
        ("the cat", "cat"),  # articles as whole words
        ("A Tale of an Apple", "tale of apple"),  # lower case happens before article removal
        ("theatre", "theatre"),
        ("anthem and bat", "anthem and bat"),
        ("the-end", "theend"),  # punctuation goes first, so 'the' is no longer a word
        ("  x   y\tz\n", "x y z"),  # white space collapsed
        ("The", ""),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def small_squad():
    def qa(qid, *answers):
        return {"id": qid, "question": "?", "answers": [{"text": a, "answer_start": 0} for a in answers]}

    return [
        {
            "title": "A",
            "paragraphs": [
                {
                    "context": "...",
                    "qas": [qa("q1", "Denver Broncos", "the Broncos"), qa("q2", "Carolina Panthers")],
                },
            ],
        },
        {
            "title": "B",
            "paragraphs": [
                {"context": "...", "qas": [qa("q3", "Santa Clara, California", "Levi's Stadium")]},
                {"context": "...", "qas": [qa("q4", "February 7, 2016")]},
            ],
        },
    ]


def test_squad_small_dataset_by_hand():
    predictions = {
        "q1": "Broncos",  # EM with the second reference ("the" removed), F1 1
        "q2": "the Carolina Panthers team",  # P 2/3, R 1 -> F1 0.8
        "q3": "Levi's Stadium in Santa Clara",  # vs ref 1: F1 0.5, vs ref 2: P 2/5 R 1 -> 4/7; max 4/7
        "unknown": "ignored",
    }  # q4 missing
    s = squad_scores(small_squad(), predictions)
    assert s == {"exact_match": 0.25, "f1": pytest.approx((1 + 0.8 + 4 / 7) / 4), "missing": 1}


def test_squad_token_f1_uses_counter_overlap_and_v11_empty_rule():
    # "the the cat cat cat" -> [cat, cat, cat] vs [cat, dog]: overlap min(3, 1) = 1, P 1/3, R 1/2 -> F1 0.4
    s = squad_scores_from_refs({"q": ["cat dog"]}, {"q": "the the cat cat cat"})
    assert s["f1"] == pytest.approx(0.4) and s["exact_match"] == 0.0
    # v1.1: both normalise to "" -> exact match 1, but F1 0 (no common token)
    assert squad_scores_from_refs({"q": ["The"]}, {"q": "a"}) == {
        "exact_match": 1.0,
        "f1": 0.0,
        "missing": 0,
    }


def test_squad_from_refs_matches_dataset_version_and_edge_cases():
    refs = {
        qa["id"]: [a["text"] for a in qa["answers"]]
        for art in small_squad()
        for par in art["paragraphs"]
        for qa in par["qas"]
    }
    preds = {"q1": "Denver", "q2": "Panthers", "q4": "7 February 2016"}
    assert squad_scores_from_refs(refs, preds) == squad_scores(small_squad(), preds)
    assert squad_scores_from_refs({}, {"q": "x"}) == {"exact_match": 0.0, "f1": 0.0, "missing": 0}
    with pytest.raises(ValueError, match="no reference answers"):
        squad_scores_from_refs({"q": []}, {"q": "x"})
    with pytest.raises(TypeError, match=r"'data' list"):
        squad_scores({"version": "1.1", "data": small_squad()}, preds)


@pytest.mark.shared_data
def test_squad_dev_set_first_reference_scores_100():
    with zipfile.ZipFile(shared_file("squad/dev-v1.1.json.zip")) as z:
        data = json.loads(z.read("dev-v1.1.json"))["data"]
    qas = [qa for art in data for par in art["paragraphs"] for qa in par["qas"]]
    assert len(qas) == 10570
    first = {qa["id"]: qa["answers"][0]["text"] for qa in qas}
    assert squad_scores(data, first) == {"exact_match": 1.0, "f1": 1.0, "missing": 0}
    # Predicting "" gives F1 0, but not EM 0: three dev questions (5725bad5271a42140099d0c1,
    # 5730b7ce069b5314008322c4, 57340d124776f419006617bf) list "." among their answers, which normalises to "",
    # so the official v1.1 rule counts "" as an exact match for them.
    dots = [qa["id"] for qa in qas if any(a["text"] == "." for a in qa["answers"])]
    assert len(dots) == 3
    empty = squad_scores(data, dict.fromkeys(first, ""))
    assert empty == {"exact_match": pytest.approx(3 / 10570, abs=1e-12), "f1": 0.0, "missing": 0}
    assert squad_scores(data, {}) == {"exact_match": 0.0, "f1": 0.0, "missing": 10570}
    half = dict(list(first.items())[:5285])
    assert squad_scores(data, half) == {"exact_match": 0.5, "f1": 0.5, "missing": 5285}
