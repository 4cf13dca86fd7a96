"""Tests for seqtag.data.qa_subsets and scripts/squad2_subsample.py: SQuAD 2.0 training sets with more unanswerable
questions, made by removing answerable questions only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from seqtag.data.qa_subsets import drop_answerable, unanswerable_counts
from seqtag.data.squad import read_qa, squad_articles
from seqtag.errors import DataError
from tests.shared import shared_file

REPO = Path(__file__).resolve().parents[2]


def _articles(n_answerable: int, n_unanswerable: int) -> list[dict]:
    """Two articles; questions alternate between them, one paragraph of one question each."""
    qas = [{"id": f"a{i}", "question": "?", "answers": [{"text": "c", "answer_start": 0}]} for i in range(n_answerable)]
    qas += [{"id": f"n{i}", "question": "?", "answers": [], "is_impossible": True} for i in range(n_unanswerable)]
    return [{"title": f"t{k}", "paragraphs": [{"context": "c", "qas": [qa]} for qa in qas[k::2]]} for k in range(2)]


def _ids(articles) -> list[str]:
    return [qa["id"] for art in articles for para in art["paragraphs"] for qa in para["qas"]]


def test_removes_answerable_questions_only_down_to_the_share():
    arts = _articles(60, 20)
    kept = drop_answerable(arts, 0.8, seed=3)
    # 20 unanswerable need floor(20 * 0.2 / 0.8) = 5 answerable for 80 %
    assert unanswerable_counts(kept) == (20, 25)
    ids = _ids(kept)
    assert {i for i in ids if i.startswith("n")} == {f"n{i}" for i in range(20)}
    assert set(ids) <= set(_ids(arts)) and ids == [i for i in _ids(arts) if i in set(ids)]  # file order kept
    # fixed by the seed; another seed draws other answerable questions
    assert _ids(drop_answerable(arts, 0.8, seed=3)) == ids and _ids(drop_answerable(arts, 0.8, seed=4)) != ids
    # paragraphs without questions left are dropped; the input is not changed
    assert all(para["qas"] for art in kept for para in art["paragraphs"])
    assert unanswerable_counts(arts) == (20, 80)
    # not a multiple: 7 unanswerable at 0.8 keep floor(1.75) = 1 answerable (87.5 %, the closest at or above 80 %)
    assert unanswerable_counts(drop_answerable(_articles(10, 7), 0.8)) == (7, 8)


def test_a_share_removing_answerable_questions_cannot_reach_is_refused():
    with pytest.raises(DataError, match=r"20 unanswerable of 80 questions \(25.0 %\).* not reach 20.0 %"):
        drop_answerable(_articles(60, 20), 0.2)
    with pytest.raises(DataError, match="0 unanswerable of 5"):
        drop_answerable(_articles(5, 0), 0.8)
    with pytest.raises(DataError, match=r"in \(0, 1\)"):
        drop_answerable(_articles(5, 5), 1.0)


@pytest.mark.shared_data
def test_the_studys_80_percent_training_file(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import squad2_subsample
    finally:
        sys.path.remove(str(REPO / "scripts"))
    src = shared_file("squad2/dev-v2.0-half.json")
    out = tmp_path / "u80.json"
    assert squad2_subsample.main(["--input", str(src), "--articles", "0", "12", "--unanswerable-share", "0.8",
                                  "--seed", "0", "--output", str(out)]) == 0
    assert "2,342 unanswerable of 2,927 questions (80.0 %); the input had 2,342 of 4,449" in capsys.readouterr().out
    assert json.loads(out.read_text())["version"] == "v2.0"
    examples = read_qa(out)  # a valid SQuAD 2.0 file: answers checked against their contexts
    assert (len(examples), sum(not ex.answers for ex in examples)) == (2927, 2342)
    assert unanswerable_counts(squad_articles(out)) == (2342, 2927)
    assert squad2_subsample.main(["--input", str(src), "--articles", "0", "17", "--unanswerable-share", "0.8",
                                  "--output", str(out)]) == 2
    assert "has 16 articles" in capsys.readouterr().err
