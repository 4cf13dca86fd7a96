"""SQuAD 2.0 training sets with a larger share of unanswerable questions, built by removing answerable questions
only (``scripts/squad2_subsample.py`` writes one as a SQuAD JSON file).

Every unanswerable question is kept, with its context; a fixed random subset of the answerable ones (drawn once
with ``seed`` from the questions in file order) is kept so that the unanswerable ones make up at least the
share asked for, as close to it as whole questions allow. Paragraphs left without questions are dropped, and
articles left without paragraphs. Pure: articles in, articles out.

>>> arts = [{"title": "t", "paragraphs": [{"context": "c", "qas": [
...     {"id": "n1", "answers": []}, {"id": "a1", "answers": [{"text": "c", "answer_start": 0}]},
...     {"id": "a2", "answers": [{"text": "c", "answer_start": 0}]}]}]}]
>>> kept = drop_answerable(arts, 0.5, seed=0)
>>> [qa["id"] for qa in kept[0]["paragraphs"][0]["qas"]], unanswerable_counts(kept)
(['n1', 'a2'], (1, 2))
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Mapping, Sequence

from seqtag.errors import DataError


def _questions(articles: Sequence[Mapping]) -> list[Mapping]:
    return [qa for art in articles for para in art["paragraphs"] for qa in para["qas"]]


def unanswerable_counts(articles: Sequence[Mapping]) -> tuple[int, int]:
    """``(unanswerable questions, all questions)`` of SQuAD articles (unanswerable: an empty ``answers`` list)."""
    qas = _questions(articles)
    return sum(not qa["answers"] for qa in qas), len(qas)


def drop_answerable(articles: Sequence[Mapping], unanswerable_share: float, seed: int = 0) -> list[dict]:
    """A copy of ``articles`` keeping every unanswerable question and ``floor(N (1 - s) / s)`` answerable ones
    (``N`` unanswerable questions, ``s`` = ``unanswerable_share``), chosen at random with ``seed``.

    Raises :class:`DataError` when the articles have no unanswerable question or already reach the share.
    """
    if not 0 < unanswerable_share < 1:
        raise DataError(f"the unanswerable share must be in (0, 1), got {unanswerable_share}")
    n_unanswerable, total = unanswerable_counts(articles)
    answerable = [qa["id"] for qa in _questions(articles) if qa["answers"]]
    keep = math.floor(n_unanswerable * (1 - unanswerable_share) / unanswerable_share + 1e-9)
    if n_unanswerable == 0 or keep >= len(answerable):
        have = n_unanswerable / total if total else 0.0
        raise DataError(f"the articles hold {n_unanswerable:,} unanswerable of {total:,} questions ({100 * have:.1f} "
                        f"%); removing answerable questions only can raise that share but not reach "
                        f"{100 * unanswerable_share:.1f} % from there. Ask for a share above {100 * have:.1f} %")
    kept_ids = set(random.Random(seed).sample(answerable, keep))
    out = []
    for art in articles:
        paragraphs = []
        for para in art["paragraphs"]:
            qas = [copy.deepcopy(qa) for qa in para["qas"] if not qa["answers"] or qa["id"] in kept_ids]
            if qas:
                paragraphs.append({**copy.deepcopy({k: v for k, v in para.items() if k != "qas"}), "qas": qas})
        if paragraphs:
            out.append({**copy.deepcopy({k: v for k, v in art.items() if k != "paragraphs"}),
                        "paragraphs": paragraphs})
    return out
