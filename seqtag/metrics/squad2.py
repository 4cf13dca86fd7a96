"""SQuAD 2.0 scores, pure: the official evaluation script's numbers as fractions.

:func:`squad2_scores` follows the official SQuAD 2.0 evaluation script (``evaluate-v2.0.py``) step by step:

* answers are normalised as in v1.1 (:func:`seqtag.metrics.squad.normalize_answer`);
* a question is answerable when its ``answers`` list is not empty; its gold texts are the answers whose
  normalised text is not empty, and ``[""]`` when none is left (so an unanswerable question's only right answer
  is the empty one);
* exact match compares normalised texts; token F1 is the bag-of-tokens F1, except that when the prediction or
  the gold has no token the F1 is 1 if both have none and 0 otherwise (v1.1 scored two empty answers 0);
  both take the maximum over the gold texts;
* with no-answer probabilities, a question whose probability exceeds ``na_prob_thresh`` (strictly) counts as
  answered ``""``: 1 if it is unanswerable, 0 if not; without them every probability is 0;
* ``best_exact`` / ``best_f1``: the threshold sweep of the script's ``find_best_thresh``. It starts from "every
  question answered ``""``" (score = the number of unanswerable questions, threshold 0.0), visits the questions
  by increasing probability (a stable sort, so equal probabilities keep the order of ``na_probs``) and accepts
  each question's prediction in turn: + its raw score if answerable, - 1 if unanswerable and the prediction is
  a non-empty string, 0 otherwise. Whenever the running score is strictly above the best so far, it becomes the
  best and the threshold becomes that question's probability. With tied probabilities the threshold can thus be
  reached in the middle of a tied group, as in the script.

Scores are fractions in [0, 1] (the script prints percentages: multiply by 100); thresholds are the
probabilities given. The script ignores questions it has no prediction for in ``exact``/``f1`` and then fails
on the HasAns/NoAns breakdown; here a missing prediction or probability raises :class:`ValueError` at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from seqtag.metrics.squad import normalize_answer


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def exact_v2(gold: str, prediction: str) -> int:
    """1 when the normalised texts are equal (two empty answers included), else 0."""
    return int(normalize_answer(gold) == normalize_answer(prediction))


def f1_v2(gold: str, prediction: str) -> float:
    """Token F1 of the normalised texts; when either has no token, 1 if neither has one, else 0.

    >>> f1_v2("", ""), f1_v2("the", ""), f1_v2("", "Paris"), round(f1_v2("New York City", "york city"), 4)
    (1, 1, 0, 0.8)
    """
    gold_toks, pred_toks = _tokens(gold), _tokens(prediction)
    if not gold_toks or not pred_toks:
        return int(gold_toks == pred_toks)
    same = sum((Counter(gold_toks) & Counter(pred_toks)).values())
    if same == 0:
        return 0
    precision, recall = same / len(pred_toks), same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _questions(dataset: Sequence[Mapping]) -> dict[str, list[str]]:
    """``{question id: answer texts}`` of a SQuAD ``data`` list, in file order (a repeated id keeps its last entry,
    as in the script)."""
    if isinstance(dataset, Mapping):
        raise TypeError("pass the SQuAD JSON's 'data' list (json['data']), not the whole JSON object")
    return {qa["id"]: [a["text"] for a in qa["answers"]]
            for article in dataset for paragraph in article["paragraphs"] for qa in paragraph["qas"]}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def best_threshold(predictions: Mapping[str, str], raw: Mapping[str, float], na_probs: Mapping[str, float],
                   has_answer: Mapping[str, bool]) -> tuple[float, float]:
    """``(best score as a fraction, its threshold)``: the official ``find_best_thresh`` (see the module docstring).

    ``raw``: each question's score with its prediction as given; ``has_answer``: whether it is answerable.

    >>> preds = {"a": "x", "b": "y", "c": "z"}
    >>> best_threshold(preds, {"a": 1.0, "b": 0.0, "c": 0.0}, {"a": 0.1, "b": 0.5, "c": 0.9},
    ...                {"a": True, "b": False, "c": False})
    (1.0, 0.1)
    """
    score = best = sum(not v for v in has_answer.values())
    thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in raw:
            continue
        score += raw[qid] if has_answer[qid] else (-1 if predictions[qid] else 0)
        if score > best:
            best, thresh = score, na_probs[qid]
    return best / len(raw), thresh


def squad2_scores(dataset: Sequence[Mapping], predictions: Mapping[str, str],
                  na_probs: Mapping[str, float] | None = None, na_prob_thresh: float = 1.0) -> dict:
    """The official SQuAD 2.0 evaluation of ``predictions`` ({question id: answer text, "" for no answer}).

    ``dataset`` is the ``"data"`` list of the official JSON. ``na_probs`` ({question id: no-answer probability})
    is optional; ``na_prob_thresh`` is the script's ``--na-prob-thresh`` (default 1.0). Returns the script's keys,
    scores as fractions: ``exact``, ``f1``, ``total``; ``HasAns_exact``, ``HasAns_f1``, ``HasAns_total`` when some
    question is answerable; ``NoAns_*`` likewise; with ``na_probs``, ``best_exact``, ``best_exact_thresh``,
    ``best_f1``, ``best_f1_thresh``.

    >>> data = [{"paragraphs": [{"qas": [{"id": "q1", "answers": [{"text": "Paris", "answer_start": 0}]},
    ...                                   {"id": "q2", "answers": []}]}]}]
    >>> s = squad2_scores(data, {"q1": "Paris", "q2": "Paris"}, {"q1": 0.2, "q2": 0.7})
    >>> s["exact"], s["HasAns_exact"], s["NoAns_exact"], s["best_exact"], s["best_exact_thresh"]
    (0.5, 1.0, 0.0, 1.0, 0.2)
    """
    questions = _questions(dataset)
    if not questions:
        raise ValueError("the dataset has no questions")
    missing = [qid for qid in questions if qid not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} of {len(questions)} questions have no prediction (first: {missing[0]!r}); "
                         "predict every question, with \"\" for no answer")
    probs = dict(na_probs) if na_probs is not None else {qid: 0.0 for qid in predictions}
    unscored = [qid for qid in questions if qid not in probs]
    if unscored:
        raise ValueError(f"{len(unscored)} questions have no no-answer probability (first: {unscored[0]!r})")
    has_answer = {qid: bool(texts) for qid, texts in questions.items()}
    exact_raw, f1_raw = {}, {}
    for qid, texts in questions.items():
        gold = [t for t in texts if normalize_answer(t)] or [""]
        exact_raw[qid] = max(exact_v2(g, predictions[qid]) for g in gold)
        f1_raw[qid] = max(f1_v2(g, predictions[qid]) for g in gold)

    def thresholded(raw: dict) -> dict:
        return {qid: float(not has_answer[qid]) if probs[qid] > na_prob_thresh else s for qid, s in raw.items()}

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)
    out: dict = {"exact": _mean(list(exact.values())), "f1": _mean(list(f1.values())), "total": len(exact)}
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        ids = [qid for qid, v in has_answer.items() if v is wanted]
        if ids:
            out.update({f"{prefix}_exact": _mean([exact[q] for q in ids]), f"{prefix}_f1": _mean([f1[q] for q in ids]),
                        f"{prefix}_total": len(ids)})
    if na_probs is not None:
        out["best_exact"], out["best_exact_thresh"] = best_threshold(predictions, exact_raw, probs, has_answer)
        out["best_f1"], out["best_f1_thresh"] = best_threshold(predictions, f1_raw, probs, has_answer)
    return out


def squad2_dataset(references: Mapping[str, Sequence[str]]) -> list[dict]:
    """A SQuAD ``data`` list holding ``{question id: answer texts}`` (``[]``: unanswerable), for scoring questions
    that were not read from a SQuAD file (JSON lines, a Hub dataset).

    >>> squad2_dataset({"q1": ["Paris"], "q2": []})[0]["paragraphs"][0]["qas"][1]
    {'id': 'q2', 'answers': []}
    """
    qas = [{"id": qid, "answers": [{"text": t} for t in texts]} for qid, texts in references.items()]
    return [{"paragraphs": [{"qas": qas}]}]
