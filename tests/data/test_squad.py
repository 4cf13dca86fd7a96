"""Tests for seqtag.data.squad: readers, answer validation, the article split, and the real SQuAD dev file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from seqtag.data.squad import (
    QAExample,
    examples_from_articles,
    load_hub_qa,
    read_qa,
    read_squad,
    read_squad_jsonl,
    split_articles,
    squad_articles,
)
from seqtag.errors import DataError
from tests.shared import shared_file

CTX1 = "Denver Broncos beat the Carolina Panthers 24-10 at Levi's Stadium."
CTX2 = "Paris is the capital of France. Paris is large."
CTX3 = "Beyoncé was born in Houston, Texas."

ARTICLES = [
    {
        "title": "Super_Bowl",
        "paragraphs": [
            {
                "context": CTX1,
                "qas": [
                    {
                        "id": "q1",
                        "question": "Who won?",
                        "answers": [{"text": "Denver Broncos", "answer_start": 0}],
                    },
                    {
                        "id": "q2",
                        "question": "  What was the score?",
                        "answers": [
                            {"text": "24-10", "answer_start": 42},
                            {"text": "24-10", "answer_start": 42},
                        ],
                    },
                ],
            }
        ],
    },
    {
        "title": "Cities",
        "paragraphs": [
            {
                "context": CTX2,
                "qas": [
                    {"id": "q3", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}]}
                ],
            },
            {
                "context": CTX3,
                "qas": [
                    {
                        "id": "q4",
                        "question": "Where?",
                        "answers": [{"text": "Houston, Texas", "answer_start": 20}],
                    }
                ],
            },
        ],
    },
]

EXPECTED = [
    QAExample("q1", "Who won?", CTX1, (("Denver Broncos", 0),), "Super_Bowl"),
    QAExample("q2", "  What was the score?", CTX1, (("24-10", 42), ("24-10", 42)), "Super_Bowl"),
    QAExample("q3", "Capital?", CTX2, (("Paris", 0),), "Cities"),
    QAExample("q4", "Where?", CTX3, (("Houston, Texas", 20),), "Cities"),
]


def _jsonl_records(examples):
    return [
        {
            "id": ex.id,
            "title": ex.title,
            "question": ex.question,
            "context": ex.context,
            "answers": {"text": [t for t, _ in ex.answers], "answer_start": [s for _, s in ex.answers]},
        }
        for ex in examples
    ]


def _write_json(path: Path, articles) -> Path:
    path.write_text(json.dumps({"version": "1.1", "data": articles}), encoding="utf-8")
    return path


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_fixture_offsets_are_right():
    # the hand-written offsets above are themselves correct (guards the test data, not the code)
    assert CTX1[42:47] == "24-10" and CTX3[20:34] == "Houston, Texas"


def test_read_squad_json_and_zip(tmp_path):
    path = _write_json(tmp_path / "s.json", ARTICLES)
    assert read_squad(path) == EXPECTED
    zpath = tmp_path / "s.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.write(path, "inner/s.json")
    assert read_squad(zpath) == EXPECTED
    assert read_qa(zpath) == EXPECTED
    assert squad_articles(zpath) == ARTICLES


def test_read_jsonl_and_dispatch(tmp_path):
    path = _write_jsonl(tmp_path / "s.jsonl", _jsonl_records(EXPECTED))
    assert read_squad_jsonl(path) == EXPECTED
    assert read_qa(path) == EXPECTED
    other = _write_jsonl(tmp_path / "s.txt", _jsonl_records(EXPECTED))
    with pytest.raises(DataError, match=r"fmt='jsonl'"):
        read_qa(other)
    assert read_qa(other, fmt="jsonl") == EXPECTED


def test_mismatched_answer_start_names_id_and_nearest_offset(tmp_path):
    bad = json.loads(json.dumps(ARTICLES))
    # "Paris" occurs at 0 and 32; 30 is off by two from the second one
    bad[1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 30
    path = _write_json(tmp_path / "bad.json", bad)
    with pytest.raises(DataError) as err:
        read_squad(path)
    msg = str(err.value)
    assert "bad.json" in msg and "'q3'" in msg and "answer_start=30" in msg
    assert "context[30:35] is '. Par'" in msg  # the slice actually found at 30
    assert "set answer_start to 32" in msg


def test_answer_text_absent_from_context(tmp_path):
    recs = _jsonl_records(EXPECTED)
    recs[3]["answers"] = {"text": ["Dallas"], "answer_start": [20]}
    path = _write_jsonl(tmp_path / "a.jsonl", recs)
    with pytest.raises(DataError, match=r"a\.jsonl:4: question 'q4'.*does not occur"):
        read_squad_jsonl(path)


def test_jsonl_missing_key_names_line(tmp_path):
    recs = _jsonl_records(EXPECTED)
    del recs[2]["context"]
    path = tmp_path / "m.jsonl"
    # a blank line first: line numbers count physical lines
    path.write_text("\n" + "".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    with pytest.raises(DataError, match=r"m\.jsonl:4: .*no key 'context'"):
        read_squad_jsonl(path)
    recs = _jsonl_records(EXPECTED)
    del recs[0]["answers"]["answer_start"]
    with pytest.raises(DataError, match=r"m2\.jsonl:1: .*no key 'answer_start'"):
        read_squad_jsonl(_write_jsonl(tmp_path / "m2.jsonl", recs))


def test_squad_json_missing_key_names_location(tmp_path):
    bad = json.loads(json.dumps(ARTICLES))
    del bad[1]["paragraphs"][1]["qas"][0]["id"]
    with pytest.raises(DataError, match=r"data\[1\]\.paragraphs\[1\]\.qas\[0\]: .*no key 'id'"):
        read_squad(_write_json(tmp_path / "k.json", bad))


@pytest.mark.parametrize("name", ["e.json", "e.jsonl"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty"):
        read_qa(path)


def test_bad_json_line_and_duplicates_and_zip_members(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps(_jsonl_records(EXPECTED)[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"j\.jsonl:2: not valid JSON"):
        read_squad_jsonl(path)
    dup = json.loads(json.dumps(ARTICLES))
    dup[1]["paragraphs"][0]["qas"][0]["id"] = "q1"
    with pytest.raises(DataError, match=r"'q1' occurs more than once"):
        read_squad(_write_json(tmp_path / "d.json", dup))
    zpath = tmp_path / "two.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("a.json", "{}")
        z.writestr("b.json", "{}")
    with pytest.raises(DataError, match=r"exactly one \.json"):
        read_squad(zpath)


def test_split_articles():
    data = [{"title": f"t{i}"} for i in range(48)]
    train, ev = split_articles(data)
    assert [a["title"] for a in train] == [f"t{i}" for i in range(38)]
    assert [a["title"] for a in ev] == [f"t{i}" for i in range(38, 48)]
    with pytest.raises(DataError, match=r"outside the 10 articles"):
        split_articles(data[:10])


def test_load_hub_qa_from_saved_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    recs = _jsonl_records(EXPECTED)
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(recs[:3]), "validation": datasets.Dataset.from_list(recs[3:])}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    assert load_hub_qa(tmp_path / "dd", "train") == EXPECTED[:3]
    assert load_hub_qa(str(tmp_path / "dd"), "validation") == EXPECTED[3:]
    with pytest.raises(DataError, match=r"no split 'test'; its splits: train, validation"):
        load_hub_qa(tmp_path / "dd", "test")
    bad = [dict(r) for r in recs]
    bad[1] = {**bad[1], "answers": {"text": ["24-10"], "answer_start": [41]}}
    datasets.Dataset.from_list(bad).save_to_disk(str(tmp_path / "one"))
    with pytest.raises(DataError, match=r"row 1: question 'q2'.*set answer_start to 42"):
        load_hub_qa(tmp_path / "one", "train")


# ---------------------------------------------------------------------------------------------------------------
# the real SQuAD v1.1 dev file


def _require_squad() -> Path:
    return shared_file("squad/dev-v1.1.json.zip")


@pytest.mark.shared_data
def test_real_squad_dev_counts_and_split():
    path = _require_squad()
    data = squad_articles(path)
    examples = read_squad(path)
    # SOURCE.md statistics of the official file
    assert len(data) == 48
    assert sum(len(a["paragraphs"]) for a in data) == 2067
    assert len(examples) == 10570
    assert sum(len(ex.answers) for ex in examples) == 34726
    assert examples[0] == QAExample(
        "56be4db0acb8001400a502ec",
        "Which NFL team represented the AFC at Super Bowl 50?",
        examples[0].context,
        (("Denver Broncos", 177),) * 3,
        "Super_Bowl_50",
    )
    train, ev = split_articles(data)
    assert (len(train), len(ev)) == (38, 10)
    assert ev[0] is data[38] and ev[-1] is data[47]
    n_train, n_eval = len(examples_from_articles(train, path)), len(examples_from_articles(ev, path))
    assert n_train + n_eval == 10570 and n_eval == sum(
        len(p["qas"]) for a in data[38:] for p in a["paragraphs"]
    )


def test_readers_take_an_encoding_and_name_bad_bytes_and_directories(tmp_path):
    recs = _jsonl_records(EXPECTED[:1])
    recs[0]["context"] = "Caf\u00e9 " + recs[0]["context"]
    recs[0]["answers"]["answer_start"] = [s + 5 for s in recs[0]["answers"]["answer_start"]]
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in recs).encode("latin-1"))
    with pytest.raises(DataError, match=r"q\.jsonl:1: byte 0xe9 .*not valid utf-8.*data\.encoding=latin-1"):
        read_qa(jsonl)
    assert read_qa(jsonl, encoding="latin-1")[0].context.startswith("Caf\u00e9 ")
    squad = tmp_path / "s.json"
    squad.write_bytes(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "Caf\u00e9", "qas": [
        {"id": "1", "question": "?", "answers": [{"text": "Caf\u00e9", "answer_start": 0}]}]}]}]},
        ensure_ascii=False).encode("cp1252"))
    with pytest.raises(DataError, match=r"s\.json:1: byte 0xe9"):
        read_qa(squad)
    assert read_qa(squad, encoding="cp1252")[0].answers == (("Caf\u00e9", 0),)
    (tmp_path / "d.json").mkdir()
    with pytest.raises(DataError, match=r"d\.json is a directory, not a file"):
        read_qa(tmp_path / "d.json")


def test_a_control_character_in_a_question_or_context_names_where_it_is(tmp_path):
    import copy

    from seqtag.data.squad import read_question_records

    articles = copy.deepcopy(ARTICLES)
    articles[1]["paragraphs"][0]["context"] = CTX2.replace("capital", "capi\x00tal")
    with pytest.raises(DataError, match=r"data\[1\]\.paragraphs\[0\]: the context 'Paris is the capi\\x00tal.* holds "
                                        r"U\+0000, a control character, at character 17"):
        examples_from_articles(articles)
    rec = {"id": "q9", "question": "Who\x07?", "context": CTX3, "answers": {"text": ["Beyoncé"], "answer_start": [0]}}
    (tmp_path / "qa.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(DataError, match=r"qa\.jsonl:1: question 'q9': the question 'Who\\x07\?' holds U\+0007"):
        read_squad_jsonl(tmp_path / "qa.jsonl")
    (tmp_path / "ask.jsonl").write_text(json.dumps({"question": "Who?", "context": "\x1bAda"}) + "\n")
    with pytest.raises(DataError, match=r"ask\.jsonl:1: the context '\\x1bAda' holds U\+001B"):
        list(read_question_records(tmp_path / "ask.jsonl"))
    rec["question"] = "Who\u200b\t?"  # a zero-width space and a TAB are text
    (tmp_path / "qa.jsonl").write_text(json.dumps(rec) + "\n")
    assert read_squad_jsonl(tmp_path / "qa.jsonl")[0].question == "Who\u200b\t?"
# ---------------------------------------------------------------------------------------------------------------
# SQuAD 2.0: unanswerable questions

V2_ARTICLES = [{"title": "Cities", "paragraphs": [{"context": CTX2, "qas": [
    {"id": "a", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}], "is_impossible": False},
    {"id": "n", "question": "Capital of Spain?", "answers": [], "is_impossible": True,
     "plausible_answers": [{"text": "Paris", "answer_start": 32}]},
    {"id": "m", "question": "Mayor?", "answers": []},  # no is_impossible: the empty list decides, as the evaluator
]}]}]
V2_EXPECTED = [
    QAExample("a", "Capital?", CTX2, (("Paris", 0),), "Cities"),
    QAExample("n", "Capital of Spain?", CTX2, (), "Cities", (("Paris", 32),)),
    QAExample("m", "Mayor?", CTX2, (), "Cities"),
]


def test_read_squad2_json_jsonl_and_hub_layouts(tmp_path):
    assert read_qa(_write_json(tmp_path / "v2.json", V2_ARTICLES)) == V2_EXPECTED
    # JSON lines and the Hub's squad_v2 rows: empty answer lists; plausible answers in the same form, optional
    recs = [{"id": ex.id, "question": ex.question, "context": ex.context, "title": ex.title,
             "answers": {"text": [t for t, _ in ex.answers], "answer_start": [s for _, s in ex.answers]}}
            for ex in V2_EXPECTED]
    recs[1]["plausible_answers"] = {"text": ["Paris"], "answer_start": [32]}
    recs[1]["is_impossible"] = True
    assert read_qa(_write_jsonl(tmp_path / "v2.jsonl", recs)) == V2_EXPECTED
    datasets = pytest.importorskip("datasets")
    hub_rows = [{k: r[k] for k in ("id", "title", "context", "question", "answers")} for r in recs]  # squad_v2
    datasets.Dataset.from_list(hub_rows).save_to_disk(str(tmp_path / "squad_v2"))
    hub = load_hub_qa(tmp_path / "squad_v2", "train")
    assert [ex.answers for ex in hub] == [(("Paris", 0),), (), ()] and hub[1].plausible_answers == ()


def test_squad2_flags_and_plausible_answers_are_checked(tmp_path):
    bad = json.loads(json.dumps(V2_ARTICLES))
    bad[0]["paragraphs"][0]["qas"][0]["is_impossible"] = True  # but it lists an answer
    with pytest.raises(DataError, match=r"qas\[0\]: question 'a': is_impossible is true but it lists 1 answers"):
        read_qa(_write_json(tmp_path / "b1.json", bad))
    bad = json.loads(json.dumps(V2_ARTICLES))
    bad[0]["paragraphs"][0]["qas"][1]["is_impossible"] = "yes"
    with pytest.raises(DataError, match=r"question 'n': is_impossible must be true or false, got 'yes'"):
        read_qa(_write_json(tmp_path / "b2.json", bad))
    bad = json.loads(json.dumps(V2_ARTICLES))
    bad[0]["paragraphs"][0]["qas"][1]["plausible_answers"][0]["answer_start"] = 30
    with pytest.raises(DataError, match=r"question 'n': answer_start=30 .* set answer_start to 32"):
        read_qa(_write_json(tmp_path / "b3.json", bad))
    rec = {"id": "x", "question": "?", "context": CTX2, "answers": {"text": [], "answer_start": []},
           "plausible_answers": {"text": ["Paris"]}}
    with pytest.raises(DataError, match=r"p\.jsonl:1: .*'plausible_answers' object has no key 'answer_start'"):
        read_qa(_write_jsonl(tmp_path / "p.jsonl", [rec]))


def _qa_data(path: Path, allow: bool):
    from seqtag.config import from_dict

    return from_dict({"task": "qa", "model": {"name_or_path": "m"}, "data": {
        "train": str(path), "dev": str(path), "allow_unanswerable": allow, "doc_stride": 32}}).data


@pytest.mark.parametrize("split", ["train", "dev"])
def test_a_squad_v11_run_refuses_unanswerable_questions_naming_the_setting(tmp_path, split):
    from seqtag.data.squad import read_split

    path = _write_json(tmp_path / "v2.json", V2_ARTICLES)
    with pytest.raises(DataError) as err:
        read_split(_qa_data(path, allow=False), split)
    msg = str(err.value)
    assert msg.startswith(f"data.{split}: 2 of 3 questions have no answer (first: 'n')")
    assert msg.endswith("; this run reads SQuAD v1.1, where every question has one. Set data.allow_unanswerable=true "
                        'to train and score unanswerable questions (the model learns to answer "" and the no-answer '
                        "threshold is tuned on data.dev, 0.5 without a dev split), or remove those questions")
    # read by `seqtag evaluate`, which trains and tunes nothing: the threshold it would score at
    with pytest.raises(DataError) as err:
        read_split(_qa_data(path, allow=False), split, evaluate_at="--null-threshold 0.3")
    assert str(err.value).endswith("where every question has one. To score them, add data.allow_unanswerable=true: "
                                   "evaluate tunes no threshold and scores them with the SQuAD 2.0 evaluator at "
                                   "--null-threshold 0.3. Or remove those questions")
    examples, articles = read_split(_qa_data(path, allow=True), split)
    assert examples == V2_EXPECTED and articles == V2_ARTICLES
    # a v1.1 file reads as before either way
    assert read_split(_qa_data(_write_json(tmp_path / "v1.json", ARTICLES), allow=False), split)[0] == EXPECTED


def test_allow_unanswerable_is_a_qa_setting():
    from seqtag.config import from_dict
    from seqtag.errors import ConfigError

    with pytest.raises(ConfigError, match="data.allow_unanswerable is for task: qa"):
        from_dict({"model": {"name_or_path": "m"}, "data": {"train": "t.conll", "allow_unanswerable": True}})


@pytest.mark.shared_data
def test_real_squad2_half_dev_counts_and_article_split():
    path = shared_file("squad2/dev-v2.0-half.json")
    data = squad_articles(path)
    examples = read_qa(path)
    # SOURCE.md: 16 articles, 646 paragraphs, 6,078 questions, 3,168 unanswerable, each with plausible answers
    assert (len(data), sum(len(a["paragraphs"]) for a in data), len(examples)) == (16, 646, 6078)
    assert sum(not ex.answers for ex in examples) == 3168
    assert all(bool(ex.plausible_answers) == (not ex.answers) for ex in examples)
    # the split of configs/squad2_*.yaml: articles 1-12 / 13-14 / 15-16 (questions, unanswerable)
    counts = [(len(exs), sum(not ex.answers for ex in exs)) for exs in
              (examples_from_articles(data[a:b], path) for a, b in ((0, 12), (12, 14), (14, 16)))]
    assert counts == [(4449, 2342), (850, 421), (779, 405)]
