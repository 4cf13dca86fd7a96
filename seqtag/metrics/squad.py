"""SQuAD exact match and F1, pure: values in, values out.

:func:`squad_scores` follows the official SQuAD v1.1 evaluation script: answers are normalised (lower case,
punctuation removed, the articles ``a an the`` removed as whole words, white space collapsed); exact match and
token-level F1 (bag-of-tokens overlap) take the maximum over the reference answers; the scores are means over
every question in the dataset, as fractions in [0, 1] like every score seqtag writes (the official script prints
percentages: multiply by 100). A question without a prediction scores 0 and is counted in
``"missing"``. As in v1.1 (not v2.0), F1 is 0 whenever the token overlap is empty, even when both the
normalised prediction and the normalised reference are empty.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Normalise an answer as SQuAD v1.1 does: lower case, drop punctuation, drop articles, collapse spaces.

    The steps run in that order; punctuation is deleted (not replaced by a space), and ``a``, ``an``, ``the``
    are removed only as whole words.

    >>> normalize_answer("  The  Theatre, of Anne's! ")
    'theatre of annes'
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def _token_f1(prediction: str, reference: str) -> float:
    """Token-level F1 of the normalised bags of words (0 when they share no token)."""
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def _score_questions(questions: Iterable[tuple[str, Sequence[str]]], predictions: Mapping[str, str]) -> dict:
    """EM and F1 (fractions) over ``(question id, reference answers)`` pairs; missing predictions score 0."""
    total = missing = 0
    em_sum = f1_sum = 0.0
    for qid, references in questions:
        total += 1
        if not references:
            raise ValueError(
                f"question {qid!r} has no reference answers; SQuAD v1.1 scoring needs at least one "
                "(unanswerable SQuAD v2.0 questions are not supported)"
            )
        if qid not in predictions:
            missing += 1
            continue
        prediction = predictions[qid]
        em_sum += max(_exact_match(prediction, ref) for ref in references)
        f1_sum += max(_token_f1(prediction, ref) for ref in references)
    if total == 0:
        return {"exact_match": 0.0, "f1": 0.0, "missing": 0}
    return {"exact_match": em_sum / total, "f1": f1_sum / total, "missing": missing}


def squad_scores_from_refs(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str]) -> dict:
    """SQuAD v1.1 EM and F1 (fractions) from ``{question id: [reference answer texts]}``.

    Returns ``{"exact_match", "f1", "missing"}``: means over every question in ``references``; ``missing``
    counts questions without a prediction (each scores 0). Predictions for unknown ids are ignored.

    >>> squad_scores_from_refs({"q1": ["Denver Broncos", "Broncos"], "q2": ["1990"]}, {"q1": "the broncos"})
    {'exact_match': 0.5, 'f1': 0.5, 'missing': 1}
    """
    return _score_questions(references.items(), predictions)


def squad_scores(dataset: Sequence[Mapping], predictions: Mapping[str, str]) -> dict:
    """SQuAD v1.1 EM and F1 (fractions) over a SQuAD ``data`` list (articles -> paragraphs -> qas).

    ``dataset`` is the ``"data"`` value of the official JSON; ``predictions`` maps question ``id`` to the
    predicted answer text. Returns ``{"exact_match", "f1", "missing"}`` as :func:`squad_scores_from_refs`
    (every ``qa`` entry counts once, as in the official script).

    >>> data = [{"paragraphs": [{"qas": [{"id": "q1", "answers": [{"text": "an apple", "answer_start": 0}]}]}]}]
    >>> squad_scores(data, {"q1": "Apple."})
    {'exact_match': 1.0, 'f1': 1.0, 'missing': 0}
    """
    if isinstance(dataset, Mapping):
        raise TypeError("pass the SQuAD JSON's 'data' list (json['data']), not the whole JSON object")
    questions = (
        (qa["id"], [answer["text"] for answer in qa["answers"]])
        for article in dataset
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    )
    return _score_questions(questions, predictions)
