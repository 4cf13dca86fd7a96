"""Tests for seqtag.metrics.squad2: hand-worked SQuAD 2.0 scores (ties in the threshold sweep, all-empty
predictions, several gold answers, an empty gold list) and agreement with a line-by-line rendering of the
official evaluate-v2.0.py on random cases."""

from __future__ import annotations

import collections
import random
import re
import string

import pytest

from seqtag.metrics import squad2_dataset, squad2_scores
from seqtag.metrics.squad import squad_scores_from_refs
from seqtag.metrics.squad2 import f1_v2


def _data(*qas: tuple[str, list[str]]) -> list[dict]:
    return [{"title": "t", "paragraphs": [{"context": "", "qas": [
        {"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in texts]}
        for qid, texts in qas]}]}]


def test_two_empty_answers_score_one_in_v2_and_zero_in_v11():
    assert f1_v2("", "") == 1 and f1_v2("an", "the .") == 1  # both normalise to no token
    assert f1_v2("", "Paris") == 0 and f1_v2("Paris", "") == 0
    assert squad_scores_from_refs({"q": ["the"]}, {"q": ""})["f1"] == 0.0  # v1.1: no overlap, 0


def test_empty_gold_list_and_all_empty_predictions():
    data = _data(("a1", ["Paris"]), ("a2", ["Denver Broncos"]), ("n1", []), ("n2", []), ("n3", []))
    s = squad2_scores(data, {"a1": "", "a2": "", "n1": "", "n2": "", "n3": ""})
    assert s == {"exact": 0.6, "f1": 0.6, "total": 5, "HasAns_exact": 0.0, "HasAns_f1": 0.0, "HasAns_total": 2,
                 "NoAns_exact": 1.0, "NoAns_f1": 1.0, "NoAns_total": 3}
    # with probabilities: accepting a "" prediction changes nothing, so the start ("all no answer") stays best
    s = squad2_scores(data, {q: "" for q in ("a1", "a2", "n1", "n2", "n3")}, dict.fromkeys(
        ("a1", "a2", "n1", "n2", "n3"), 0.3))
    assert (s["best_exact"], s["best_exact_thresh"], s["best_f1"], s["best_f1_thresh"]) == (0.6, 0.0, 0.6, 0.0)
    # a non-empty answer to an unanswerable question scores 0
    s = squad2_scores(data, {"a1": "Paris", "a2": "the Broncos", "n1": "Paris", "n2": "", "n3": "x"})
    assert (s["HasAns_exact"], s["NoAns_exact"], s["NoAns_f1"]) == (0.5, pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert s["HasAns_f1"] == pytest.approx((1 + 2 / 3) / 2)  # "broncos" against "denver broncos": P 1, R 1/2


def test_several_gold_answers_and_gold_texts_that_normalise_to_nothing():
    data = _data(("q1", ["The", "Denver Broncos", "Broncos"]), ("q2", ["a"]), ("q3", ["New York", "York City"]))
    s = squad2_scores(data, {"q1": "broncos!", "q2": "", "q3": "new york city"})
    # q1: "The" is dropped (it normalises to ""), "Broncos" matches exactly; q2: its only answer normalises to "",
    # so the gold is [""] and "" is exact although the question counts as answerable; q3: max(0.8, 0.8)
    assert s["exact"] == pytest.approx(2 / 3) and s["HasAns_total"] == 3 and "NoAns_total" not in s
    assert s["f1"] == pytest.approx((1 + 1 + 0.8) / 3)
    assert squad2_scores(data, {"q1": "", "q2": "", "q3": ""})["exact"] == pytest.approx(1 / 3)


def test_threshold_sweep_ties_follow_the_order_of_the_probabilities():
    data = _data(("a", ["Paris"]), ("b", []))
    preds = {"a": "Paris", "b": "Rome"}
    # a first: accepting a (+1) is the best point, reached inside the tied group at 0.5
    s = squad2_scores(data, preds, {"a": 0.5, "b": 0.5})
    assert (s["best_exact"], s["best_exact_thresh"], s["best_f1"], s["best_f1_thresh"]) == (1.0, 0.5, 1.0, 0.5)
    # ...although no threshold reaches it: at 0.5 neither question is > 0.5, so both answers are kept
    assert squad2_scores(data, preds, {"a": 0.5, "b": 0.5}, na_prob_thresh=0.5)["exact"] == 0.5
    # b first: -1 then +1 never beats the start (1 of 2), which keeps threshold 0.0
    s = squad2_scores(data, preds, {"b": 0.5, "a": 0.5})
    assert (s["best_exact"], s["best_exact_thresh"]) == (0.5, 0.0)
    # distinct probabilities: b above a is the separable case
    s = squad2_scores(data, preds, {"a": 0.2, "b": 0.9})
    assert (s["best_f1"], s["best_f1_thresh"]) == (1.0, 0.2)
    assert squad2_scores(data, preds, {"a": 0.2, "b": 0.9}, na_prob_thresh=0.2)["exact"] == 1.0


def test_the_threshold_is_strict_and_partial_scores_count_in_the_sweep():
    data = _data(("a", ["New York City"]), ("b", []), ("c", ["Rome"]))
    preds = {"a": "york city", "b": "x", "c": "Milan"}
    probs = {"a": 0.1, "b": 0.6, "c": 0.6000001}
    s = squad2_scores(data, preds, probs, na_prob_thresh=0.6)  # b is not > 0.6 and keeps "x"; c is "" (scores 0)
    assert (s["exact"], s["f1"]) == (0.0, pytest.approx(0.8 / 3))
    assert (s["NoAns_exact"], s["HasAns_f1"]) == (0.0, pytest.approx(0.4))
    # sweep: start 1 (b); a: +0.8 -> 1.8 (best, 0.1); b: -1 -> 0.8; c: +0 -> 0.8
    assert (s["best_f1"], s["best_f1_thresh"]) == (pytest.approx(1.8 / 3), 0.1)
    assert (s["best_exact"], s["best_exact_thresh"]) == (pytest.approx(1 / 3), 0.0)


def test_inputs_the_script_cannot_score_are_refused():
    data = _data(("a", ["Paris"]), ("b", []))
    with pytest.raises(ValueError, match=r"1 of 2 questions have no prediction \(first: 'b'\)"):
        squad2_scores(data, {"a": "Paris"})
    with pytest.raises(ValueError, match="no no-answer probability"):
        squad2_scores(data, {"a": "Paris", "b": ""}, {"a": 0.1})
    with pytest.raises(TypeError, match=r"json\['data'\]"):
        squad2_scores({"data": data}, {"a": "Paris", "b": ""})
    # predictions and probabilities for other questions are ignored
    s = squad2_scores(data, {"a": "Paris", "b": "", "zz": "x"}, {"a": 0.1, "b": 0.2, "zz": 0.0})
    assert (s["exact"], s["best_exact"], s["total"]) == (1.0, 1.0, 2)


def test_squad2_dataset_holds_the_references():
    refs = {"q1": ["Paris", "paris"], "q2": []}
    s = squad2_scores(squad2_dataset(refs), {"q1": "Paris.", "q2": ""})
    assert (s["exact"], s["HasAns_total"], s["NoAns_total"]) == (1.0, 1, 1)


# ---------------------------------------------------------------------------------------------------------------
# the official evaluate-v2.0.py, written out as the script reads (percentages), for random comparisons


def _ref_normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", s)
    return " ".join(s.split())


def _ref_tokens(s):
    return _ref_normalize(s).split() if s else []


def _ref_f1(gold, pred):
    g, p = _ref_tokens(gold), _ref_tokens(pred)
    common = collections.Counter(g) & collections.Counter(p)
    num_same = sum(common.values())
    if len(g) == 0 or len(p) == 0:
        return int(g == p)
    if num_same == 0:
        return 0
    precision, recall = 1.0 * num_same / len(p), 1.0 * num_same / len(g)
    return (2 * precision * recall) / (precision + recall)


def _reference(dataset, preds, na_probs, thresh):
    has_ans = {qa["id"]: bool(qa["answers"]) for a in dataset for p in a["paragraphs"] for qa in p["qas"]}
    exact_raw, f1_raw = {}, {}
    for a in dataset:
        for p in a["paragraphs"]:
            for qa in p["qas"]:
                gold = [x["text"] for x in qa["answers"] if _ref_normalize(x["text"])] or [""]
                exact_raw[qa["id"]] = max(int(_ref_normalize(g) == _ref_normalize(preds[qa["id"]])) for g in gold)
                f1_raw[qa["id"]] = max(_ref_f1(g, preds[qa["id"]]) for g in gold)

    def apply(scores):
        return {q: float(not has_ans[q]) if na_probs[q] > thresh else s for q, s in scores.items()}

    def make(ex, f1, ids=None):
        ids = ids or list(ex)
        return {"exact": 100.0 * sum(ex[k] for k in ids) / len(ids), "f1": 100.0 * sum(f1[k] for k in ids) / len(ids),
                "total": len(ids)}

    def best(scores):
        cur = best_score = sum(1 for k in has_ans if not has_ans[k])
        best_thresh = 0.0
        for qid in sorted(na_probs, key=lambda k: na_probs[k]):
            if qid not in scores:
                continue
            cur += scores[qid] if has_ans[qid] else (-1 if preds[qid] else 0)
            if cur > best_score:
                best_score, best_thresh = cur, na_probs[qid]
        return 100.0 * best_score / len(scores), best_thresh

    ex, f1 = apply(exact_raw), apply(f1_raw)
    out = make(ex, f1)
    for prefix, ids in (("HasAns", [k for k, v in has_ans.items() if v]), ("NoAns", [k for k, v in has_ans.items()
                                                                                    if not v])):
        if ids:
            out.update({f"{prefix}_{k}": v for k, v in make(ex, f1, ids).items()})
    out["best_exact"], out["best_exact_thresh"] = best(exact_raw)
    out["best_f1"], out["best_f1_thresh"] = best(f1_raw)
    return out


WORDS = ["Paris", "the", "a", "New", "York", "city", "an", "Rome!", "rome", "1990", "of", "(Denver)", ","]


@pytest.mark.parametrize("seed", range(40))
def test_equals_the_official_script_on_random_cases(seed):
    rng = random.Random(seed)

    def text():
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))

    qids = [f"q{i}" for i in range(rng.randint(1, 30))]
    data = _data(*[(q, [] if rng.random() < 0.5 else [text() for _ in range(rng.randint(1, 3))]) for q in qids])
    preds = {q: "" if rng.random() < 0.3 else text() for q in qids}
    levels = [0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]  # few values: many ties
    na_probs = {q: rng.choice(levels) if rng.random() < 0.7 else rng.random() for q in rng.sample(qids, len(qids))}
    thresh = rng.choice([1.0, 0.5, rng.random()])
    ours = squad2_scores(data, preds, na_probs, na_prob_thresh=thresh)
    ref = _reference(data, preds, na_probs, thresh)
    assert set(ours) == set(ref)
    for key, value in ref.items():
        if key.endswith("total") or key.endswith("thresh"):
            assert ours[key] == value, key
        else:
            assert 100 * ours[key] == pytest.approx(value, abs=1e-9), key
