"""Tests for seqtag.data.conll: CoNLL / JSON readers and writers, validation, Hugging Face datasets, real data."""

from __future__ import annotations

import functools
import io
import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqtag.data.conll import iter_conll, iter_text_lines, read_conll
from seqtag.data.jsonl import read_jsonl
from seqtag.data.readers import load_hub_dataset, read_sentences, read_tagged
from seqtag.data.schemes import convert, detect_scheme, find_problems, spans
from seqtag.data.sentence import Sentence, check_tags, token_location, validate_sentences
from seqtag.data.words import check_text
from seqtag.data.writers import write_conll, write_jsonl
from seqtag.errors import ConfigError, DataError
from tests.shared import shared_file as shared


@functools.cache
def _read_cached(path: str) -> list[Sentence]:
    return read_conll(path)


def write(tmp_path: Path, text: str | bytes, name: str = "f.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return p


def pairs(sentences):
    return [(s.tokens, s.tags) for s in sentences]


# ------------------------------------------------------------------------------------------------- CoNLL


def test_whitespace_only_lines_end_sentences_wnut_style(tmp_path):
    p = write(tmp_path, "@paul\tO\nIt\tB-x\n\t\nc\tO\n \t \n\n\nd\tI-creative-work\ne\tO\n\n\n")
    got = read_conll(p)
    assert pairs(got) == [(("@paul", "It"), ("O", "B-x")), (("c",), ("O",)),
                          (("d", "e"), ("I-creative-work", "O"))]
    assert [s.line for s in got] == [1, 4, 8]
    assert {s.source for s in got} == {str(p)}


def test_docstart_is_skipped_and_ends_a_sentence(tmp_path):
    text = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"
            "-DOCSTART- -X- O O\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n")
    got = read_conll(write(tmp_path, text))
    assert pairs(got) == [(("EU", "rejects"), ("B-ORG", "O")), (("Peter", "Blackburn"), ("B-PER", "I-PER"))]
    assert [s.line for s in got] == [3, 6]


def test_crlf_and_bom_read_like_lf(tmp_path):
    text = "a B-PER\nb I-PER\n\nc O\n"
    lf = read_conll(write(tmp_path, text, "lf.txt"))
    crlf = read_conll(write(tmp_path, text.replace("\n", "\r\n"), "crlf.txt"))
    bom = read_conll(write(tmp_path, b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode(), "bom.txt"))
    assert pairs(lf) == pairs(crlf) == pairs(bom) == [(("a", "b"), ("B-PER", "I-PER")), (("c",), ("O",))]
    assert [s.line for s in crlf] == [1, 4]


def test_four_column_selection(tmp_path):
    p = write(tmp_path, "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n")
    assert pairs(read_conll(p)) == [(("EU", "rejects"), ("B-ORG", "O")), (("Peter",), ("B-PER",))]
    assert pairs(read_conll(p, tag_column=2)) == [(("EU", "rejects"), ("B-NP", "B-VP")), (("Peter",), ("B-NP",))]
    assert pairs(read_conll(p, token_column=1, tag_column=-2))[0] == (("NNP", "VBZ"), ("B-NP", "B-VP"))
    untagged = read_conll(p, tag_column=None)
    assert pairs(untagged) == [(("EU", "rejects"), None), (("Peter",), None)]


def test_untagged_single_column(tmp_path):
    got = read_conll(write(tmp_path, "a\nb\n\nc\n"), tag_column=None)
    assert pairs(got) == [(("a", "b"), None), (("c",), None)]


def test_single_column_with_a_tag_column_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"f\.txt:1: .*same column.*tag_column=None"):
        read_conll(write(tmp_path, "a\nb\n"))


def test_missing_tag_column_names_the_line(tmp_path):
    p = write(tmp_path, "-DOCSTART- O\n\na\tO\nb\tB-PER\n\nc\nd\tO\n")
    with pytest.raises(DataError, match=r"f\.txt:6: 1 column\(s\) here but 2 on line 3.*missing") as e:
        read_conll(p)
    assert "mixes" not in str(e.value)


def test_extra_column_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"f\.txt:2: 3 column\(s\) here but 2 on line 1"):
        read_conll(write(tmp_path, "a O\nb X O\n"))


def test_column_index_out_of_range(tmp_path):
    with pytest.raises(DataError, match=r"f\.txt:2: tag_column=3 but the line has only 2"):
        read_conll(write(tmp_path, "\na O\n"), tag_column=3)
    with pytest.raises(DataError, match=r"token_column=-3"):
        read_conll(write(tmp_path, "a O\n"), token_column=-3)


def test_mixed_tab_and_space_separators(tmp_path):
    # WNUT-style TAB file with a token holding a space: 3 columns on line 3
    with pytest.raises(DataError, match=r"f\.txt:3: 3 column\(s\) here but 2 on line 1.*line 3 mixes TAB and space"):
        read_conll(write(tmp_path, "is\tO\n\nNew York\tB-location\n"))
    # the odd line came first: the error names it
    with pytest.raises(DataError, match=r"f\.txt:2: .*line 1 mixes TAB and space.*one separator"):
        read_conll(write(tmp_path, "New York\tB-location\nis\tO\n"))
    # mixing that keeps the column count is fine
    assert pairs(read_conll(write(tmp_path, "a NN\tO\nb\tNN O\n"))) == [(("a", "b"), ("O", "O"))]


def test_non_utf8_names_line_and_byte_offset(tmp_path):
    p = write(tmp_path, b"a\tO\n\nb\xe9\tO\n")
    with pytest.raises(DataError, match=r"f\.txt:3: byte 0xe9 at byte offset 6 .*iconv") as e:
        read_conll(p)
    assert "utf-8" in str(e.value)
    assert pairs(read_conll(p, encoding="latin-1")) == [(("a",), ("O",)), (("b\u00e9",), ("O",))]


def test_decode_error_advice_names_an_option_that_exists(tmp_path):
    p = write(tmp_path, b"b\xe9\tO\n")
    for read in (read_conll, functools.partial(read_tagged, fmt="conll")):
        with pytest.raises(DataError, match=r"f\.txt:1: byte 0xe9 .*not valid utf-8\. If the file is in another "
                                            r"encoding, name it: data\.encoding=latin-1 in a config, --encoding "
                                            r"latin-1 on the command line \(seqtag stats, seqtag predict\)"):
            read(p)
    assert pairs(read_tagged(p, encoding="latin-1")) == [(("b\u00e9",), ("O",))]
    j = write(tmp_path, '{"tokens": ["b\u00e9"], "tags": ["O"]}\n'.encode("cp1252"), "f.jsonl")
    with pytest.raises(DataError, match=r"f\.jsonl:1: byte 0xe9 .*data\.encoding=latin-1"):
        read_tagged(j)
    assert pairs(read_tagged(j, encoding="cp1252")) == [(("b\u00e9",), ("O",))]
    with pytest.raises(ConfigError, match=r"unknown encoding 'klingon' for .*f\.jsonl"):
        read_jsonl(j, encoding="klingon")


@pytest.mark.parametrize("text", ["", "\n\n", " \t\n\r\n", "-DOCSTART- -X- -X- O\n\n", "-DOCSTART-\n-DOCSTART-"])
def test_no_sentences_is_an_error(tmp_path, text):
    p = write(tmp_path, text)
    with pytest.raises(DataError, match=f"no sentences in {p}"):
        read_conll(p)
    assert list(iter_conll(p)) == []


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read .*nope.txt"):
        read_conll(tmp_path / "nope.txt")


def test_iter_conll_streams_before_a_later_error(tmp_path):
    it = iter_conll(write(tmp_path, "a O\nb O\n\nc\n"))
    assert next(it).tokens == ("a", "b")
    with pytest.raises(DataError, match=r":4:"):
        next(it)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from("ab \t\r\n-O\u00e9\x0b\x1c\u2028") | st.characters(codec="utf-8"), max_size=80),
       raw=st.binary(max_size=40), tag_column=st.sampled_from([-1, -2, 0, 1, 2, None]))
def test_reader_reads_anything_or_raises_data_error(tmp_path, text, raw, tag_column):
    for i, data in enumerate((text.encode("utf-8"), raw, b"-DOCSTART-\n" + raw)):
        p = tmp_path / f"any{i}.txt"
        p.write_bytes(data)
        try:
            got = read_conll(p, tag_column=tag_column)
        except DataError:
            continue
        assert got and all(s.tokens for s in got)
        assert all((s.tags is None) == (tag_column is None) for s in got)


# ------------------------------------------------------------------------------------------------- write


def test_write_conll_exact_text_and_round_trip(tmp_path):
    sents = [Sentence(("EU", "rejects"), ("B-ORG", "O")), Sentence(("Peter",), ("B-PER",))]
    buf = io.StringIO()
    write_conll(sents, buf)
    assert buf.getvalue() == "EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n\n"
    p = tmp_path / "out.txt"
    write_conll(sents, p, sep=" ")
    assert p.read_text() == "EU B-ORG\nrejects O\n\nPeter B-PER\n\n"
    assert pairs(read_conll(p)) == pairs(sents)
    write_conll([Sentence(("a", "b"), None)], p)
    assert p.read_text() == "a\nb\n\n"


@pytest.mark.parametrize(
    "sentence",
    [Sentence(("New York",), ("B-LOC",), "in.jsonl", 7), Sentence(("a",), ("B LOC",)), Sentence(("",), ("O",)),
     Sentence(("-DOCSTART-",), ("O",)), Sentence((), ())],
)
def test_write_conll_refuses_what_conll_cannot_hold(sentence):
    with pytest.raises(DataError):
        write_conll([sentence], io.StringIO())


def test_write_conll_error_names_the_token_and_refuses_mixed_tagging():
    with pytest.raises(DataError, match=r"in\.jsonl:7, token 1: token 'New York'.*write_jsonl"):
        write_conll([Sentence(("in", "New York"), ("O", "B-LOC"), "in.jsonl", 7)], io.StringIO())
    with pytest.raises(DataError, match="mixes tagged and untagged"):
        write_conll([Sentence(("a",), ("O",)), Sentence(("b",), None)], io.StringIO())
    with pytest.raises(ConfigError, match="sep"):
        write_conll([Sentence(("a",), ("O",))], io.StringIO(), sep=",")


def _is_text(s: str) -> bool:
    try:
        check_text(s, "")
    except DataError:
        return False
    return True


# what a CoNLL cell can hold: no white space, no control character (seqtag.data.words.check_text)
_cell = st.text(min_size=1, max_size=6).filter(lambda s: not any(c.isspace() for c in s) and s != "-DOCSTART-"
                                               and _is_text(s))
# A leading U+FEFF at the very start of a file is read as a byte-order mark, so keep it off the first token.
_first_cell = _cell.filter(lambda s: not s.startswith("\ufeff"))


@st.composite
def sentence_lists(draw):
    tagged = draw(st.booleans())
    out = []
    for k in range(draw(st.integers(1, 4))):
        toks = draw(st.lists(_first_cell if k == 0 else _cell, min_size=1, max_size=5))
        tags = tuple(draw(st.lists(_cell, min_size=len(toks), max_size=len(toks)))) if tagged else None
        out.append(Sentence(tuple(toks), tags))
    return out


@settings(max_examples=150, deadline=None)
@given(sents=sentence_lists(), sep=st.sampled_from(["\t", " "]))
def test_write_then_read_conll_gives_the_same_sentences(sents, sep):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "rt.txt"
        write_conll(sents, p, sep=sep)
        got = read_conll(p, tag_column=-1 if sents[0].tags is not None else None)
        assert pairs(got) == pairs(sents)
        # line numbers: each sentence starts after the previous one and its blank line
        expected_lines = [1]
        for s in sents[:-1]:
            expected_lines.append(expected_lines[-1] + len(s.tokens) + 1)
        assert [s.line for s in got] == expected_lines
        q = Path(d) / "rt.jsonl"
        write_jsonl(sents, q)
        assert pairs(read_jsonl(q)) == pairs(sents)


# -------------------------------------------------------------------------------------------------- JSON


def test_read_jsonl_records_optional_tags_and_keys(tmp_path):
    p = write(tmp_path, '{"tokens": ["a", "b"], "tags": ["B-X", "I-X"], "id": 1}\n\n{"tokens": ["c"], "tags": ["O"]}\n',
              "d.jsonl")
    got = read_jsonl(p)
    assert pairs(got) == [(("a", "b"), ("B-X", "I-X")), (("c",), ("O",))]
    assert [s.line for s in got] == [1, 3]
    assert pairs(read_jsonl(p, tags_key=None)) == [(("a", "b"), None), (("c",), None)]
    q = write(tmp_path, '{"words": ["a"], "ner": ["O"]}\n', "k.jsonl")
    assert pairs(read_jsonl(q, tokens_key="words", tags_key="ner")) == [(("a",), ("O",))]
    assert pairs(read_jsonl(write(tmp_path, '{"tokens": ["a"]}\n', "u.jsonl"))) == [(("a",), None)]


def test_read_json_list_with_record_lines(tmp_path):
    text = '[\n  {"tokens": ["a"], "tags": ["O"]},\n\n  {"tokens": ["b", "c"],\n   "tags": ["B-X", "I-X"]}\n]\n'
    got = read_jsonl(write(tmp_path, text, "d.json"))
    assert pairs(got) == [(("a",), ("O",)), (("b", "c"), ("B-X", "I-X"))]
    assert [s.line for s in got] == [2, 4]
    with pytest.raises(DataError, match=r"e\.json:3: not valid JSON"):
        read_jsonl(write(tmp_path, '[{"tokens": ["a"]},\n\n {"tokens": [}]', "e.json"))
    with pytest.raises(DataError, match=r"no sentences"):
        read_jsonl(write(tmp_path, "[ ]", "empty.json"))


@pytest.mark.parametrize(
    "line2, pattern",
    [
        ('{"tokens": ["a", "b"], "tags": ["O"]}', r"d\.jsonl:2: 2 items in 'tokens' but 1 in 'tags'"),
        ('{"toks": ["a"], "tags": ["O"]}', r"d\.jsonl:2: the record has no 'tokens' key \(its keys: 'toks', 'tags'\)"),
        ('{"tokens": ["a"]', r"d\.jsonl:2: not valid JSON"),
        ('["a"]', r"d\.jsonl:2: expected a JSON object"),
        ('{"tokens": [], "tags": []}', r"d\.jsonl:2: 'tokens' must be a non-empty list"),
        ('{"tokens": ["a", 3], "tags": ["O", "O"]}', r"d\.jsonl:2: 'tokens' item 1 is 3"),
        ('{"tokens": ["a"], "tags": [0]}', r"d\.jsonl:2: 'tags' must be a list of tag strings"),
        ('{"tokens": ["a"]}', r"d\.jsonl:2: this record has no 'tags' key but the first record has"),
    ],
)
def test_read_jsonl_bad_records_name_line_and_key(tmp_path, line2, pattern):
    p = write(tmp_path, '{"tokens": ["x"], "tags": ["O"]}\n' + line2 + "\n", "d.jsonl")
    with pytest.raises(DataError, match=pattern):
        read_jsonl(p)


def test_read_jsonl_non_utf8(tmp_path):
    with pytest.raises(DataError, match=r"d\.jsonl:2: byte 0xff at byte offset 31"):
        read_jsonl(write(tmp_path, b'{"tokens": ["a"]}\n{"tokens": ["\xff"]}\n', "d.jsonl"))


def test_read_sentences_dispatches_on_extension(tmp_path):
    c = write(tmp_path, "a O\n", "x.conll")
    j = write(tmp_path, '{"tokens": ["a"], "tags": ["O"]}\n', "x.jsonl")
    js = write(tmp_path, '[{"tokens": ["a"], "tags": ["O"]}]', "x.json")
    assert pairs(read_sentences(c)) == pairs(read_sentences(j)) == pairs(read_sentences(js)) == [(("a",), ("O",))]
    assert pairs(read_sentences(c, tag_column=None)) == [(("a",), None)]
    assert pairs(read_sentences(write(tmp_path, '{"tokens": ["a"]}\n', "x.txt"), fmt="jsonl")) == [(("a",), None)]
    with pytest.raises(ConfigError, match="auto, conll, jsonl"):
        read_sentences(c, fmt="csv")


# ---------------------------------------------------------------------------------------------- validate


def test_validate_error_names_the_token_line_and_the_fix(tmp_path):
    p = write(tmp_path, "-DOCSTART- O\n\nThe O\nEU B-ORG\n\nPeter O\nBlackburn I-PER\nsaid O\n")
    sents = read_conll(p)
    with pytest.raises(DataError, match=r"f\.txt:7: invalid IOB2 tag sequence: I-PER follows O") as e:
        validate_sentences(sents, "IOB2")
    assert "data.on_invalid=repair" in str(e.value)
    fixed, n = validate_sentences(sents, "IOB2", on_invalid="repair")
    assert n == 1
    assert [s.tags for s in fixed] == [("O", "B-ORG"), ("O", "B-PER", "O")]
    assert [(s.source, s.line) for s in fixed] == [(s.source, s.line) for s in sents]
    assert fixed[0] is sents[0]  # valid sentences are passed through
    with pytest.raises(DataError, match=r"f\.txt:4: invalid IOB1 tag sequence: B-ORG follows O"):
        validate_sentences(sents, "IOB1")


def test_validate_repair_counts_tokens_and_keeps_untagged():
    sents = [Sentence(("a", "b", "c"), ("B-X", "O", "I-Y")), Sentence(("d",), None),
             Sentence(("e", "f"), ("B-X", "E-X"))]
    fixed, n = validate_sentences(sents, "IOBES", on_invalid="repair")
    assert n == 2
    assert [s.tags for s in fixed] == [("S-X", "O", "S-Y"), None, ("B-X", "E-X")]


def test_validate_unrepairable_and_bad_mode():
    bad = [Sentence(("a", "b"), ("O", "B_X"), "t.txt", 10)]
    for mode in ("error", "repair"):
        with pytest.raises(DataError, match=r"t\.txt:11: .*'B_X'"):
            validate_sentences(bad, "IOB2", on_invalid=mode)
    with pytest.raises(ConfigError, match="error, repair"):
        validate_sentences([], "IOB2", on_invalid="fix")
    with pytest.raises(ConfigError):
        validate_sentences([], "BIO")


def test_token_location_kinds():
    assert token_location(Sentence(("a", "b"), None, "x.txt", 4), 1) == "x.txt:5"
    assert token_location(Sentence(("a", "b"), None, "x.json", 4), 1) == "x.json:4, token 1"
    assert token_location(Sentence(("a", "b"), None, "wnut_17[train]", 4), 1) == "wnut_17[train] row 3, token 1"


def test_sentence_checks_lengths():
    with pytest.raises(DataError, match=r"x\.txt:3: 2 tokens but 1 tags"):
        Sentence(("a", "b"), ("O",), "x.txt", 3)


# --------------------------------------------------------------------------------------------------- hub


def _features(datasets, names):
    return datasets.Features({"tokens": datasets.List(datasets.Value("string")),
                              "ner_tags": datasets.List(datasets.ClassLabel(names=names))})


def test_load_hub_dataset_from_saved_dataset_maps_classlabels(tmp_path):
    datasets = pytest.importorskip("datasets")
    names = ["O", "B-PER", "I-PER", "B-LOC"]
    ds = datasets.Dataset.from_dict(
        {"tokens": [["Peter", "Blackburn", "in", "Paris"], ["ok"]], "ner_tags": [[1, 2, 0, 3], [0]]},
        features=_features(datasets, names))
    ds.save_to_disk(str(tmp_path / "saved"))
    got = load_hub_dataset(tmp_path / "saved", "train")
    assert pairs(got) == [(("Peter", "Blackburn", "in", "Paris"), ("B-PER", "I-PER", "O", "B-LOC")), (("ok",), ("O",))]
    assert [(s.source, s.line) for s in got] == [(f"{tmp_path / 'saved'}[train]", 1), (f"{tmp_path / 'saved'}[train]", 2)]
    assert pairs(load_hub_dataset(tmp_path / "saved", "train", tags_column=None)) == [
        (("Peter", "Blackburn", "in", "Paris"), None), (("ok",), None)]
    with pytest.raises(DataError, match=r"no column 'labels'; its columns: tokens, ner_tags"):
        load_hub_dataset(tmp_path / "saved", "train", tags_column="labels")


def test_load_hub_dataset_dict_splits_and_string_tags(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"words": [["a", "b"]], "tags": [["B-X", "I-X"]]}),
        "validation": datasets.Dataset.from_dict({"words": [["c"]], "tags": [["O"]]}),
    })
    dd.save_to_disk(str(tmp_path / "dd"))
    got = load_hub_dataset(tmp_path / "dd", "validation", tokens_column="words", tags_column="tags")
    assert pairs(got) == [(("c",), ("O",))]
    with pytest.raises(DataError, match="no split 'test'; its splits: train, validation"):
        load_hub_dataset(tmp_path / "dd", "test", tokens_column="words", tags_column="tags")


def test_load_hub_dataset_int_tags_without_names(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"tokens": [["a"]], "ner_tags": [[0]]}).save_to_disk(str(tmp_path / "ints"))
    with pytest.raises(DataError, match="without ClassLabel names"):
        load_hub_dataset(tmp_path / "ints", "train")
    ds = datasets.Dataset.from_dict({"tokens": [["a"], ["b"]], "ner_tags": [[0], [-1]]},
                                    features=_features(datasets, ["O"]))
    ds.save_to_disk(str(tmp_path / "neg"))
    with pytest.raises(DataError, match=r"row 1: tag ids \[-1\] fall outside the 1 ClassLabel names"):
        load_hub_dataset(tmp_path / "neg", "train")


# ---------------------------------------------------------------------------------------------- real data

# Independent references: the counts in ../shared/data/*/SOURCE.md (and the published CoNLL-2003 tables).
REAL = {
    "wnut17/train.txt": (3394, 62730, {"person": 660, "location": 548, "group": 264, "corporation": 221,
                                       "creative-work": 140, "product": 142}),
    "wnut17/dev.txt": (1009, 15733, {"person": 470, "location": 74, "group": 39, "corporation": 34,
                                     "creative-work": 105, "product": 114}),
    "wnut17/test.txt": (1287, 23394, {"person": 429, "location": 150, "group": 165, "corporation": 66,
                                      "creative-work": 142, "product": 127}),
    "conll2003/train.txt": (14041, 203621, {"PER": 6600, "ORG": 6321, "LOC": 7140, "MISC": 3438}),
    "conll2003/dev.txt": (3250, 51362, {"PER": 1842, "ORG": 1341, "LOC": 1837, "MISC": 922}),
    "conll2003/test.txt": (3453, 46435, {"PER": 1617, "ORG": 1661, "LOC": 1668, "MISC": 702}),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", list(REAL))
def test_real_data_counts(rel):
    n_sent, n_tok, mentions = REAL[rel]
    sents = _read_cached(str(shared(rel)))
    assert len(sents) == n_sent
    assert sum(len(s.tokens) for s in sents) == n_tok
    assert detect_scheme(s.tags for s in sents) == "IOB2"
    assert sum(len(find_problems(s.tags, "IOB2")) for s in sents) == 0
    assert Counter(t for s in sents for t, _, _ in spans(s.tags, "IOB2")) == mentions


@pytest.mark.shared_data
@pytest.mark.parametrize("iob1, iob2, n_b, n_slips", [("eng.train", "train.txt", 72, 2), ("eng.testa", "dev.txt", 4, 0),
                                                      ("eng.testb", "test.txt", 20, 0)])
def test_conll2003_iob1_converts_to_the_iob2_files(iob1, iob2, n_b, n_slips):
    """n_slips: B-X after O or another type in the IOB1 files (counted with awk), e.g. eng.train:152428."""
    old = _read_cached(str(shared(f"conll2003/original_iob1/{iob1}")))
    new = _read_cached(str(shared(f"conll2003/{iob2}")))
    assert detect_scheme(s.tags for s in old) == "IOB1"
    assert sum(t.startswith("B-") for s in old for t in s.tags) == n_b
    assert len(old) == len(new)
    back_differs = 0
    for a, b in zip(old, new, strict=True):
        assert (a.tokens, a.line) == (b.tokens, b.line)
        assert convert(a.tags, "IOB1", "IOB2") == list(b.tags), f"{a.source}:{a.line}"
        back_differs += convert(b.tags, "IOB2", "IOB1") != list(a.tags)
    # going back gives the strict IOB1 encoding, which differs exactly where the original breaks IOB1
    assert back_differs == sum(len(find_problems(s.tags, "IOB1")) for s in old) == n_slips


@pytest.mark.shared_data
def test_wnut17_train_tab_only_separators_and_stream():
    path = shared("wnut17/train.txt")
    lines = path.read_bytes().split(b"\n")
    assert sum(line == b"\t" for line in lines) == 2394  # the quirk the reader must handle (SOURCE.md)
    first = next(iter_conll(path))
    assert first.line == 1 and first.tokens[0] == "@paulwalk"
    sents = _read_cached(str(path))
    # every sentence starts on the line after a whitespace-only line
    assert all(lines[s.line - 2].strip() == b"" for s in sents[1:])


def test_json_round_trip_keeps_unicode(tmp_path):
    sents = [Sentence(("Dubbz\ufeff", "watched\u200bwas", "\U0001f600"), ("B-person", "O", "O"))]
    write_jsonl(sents, tmp_path / "u.jsonl")
    assert json.loads((tmp_path / "u.jsonl").read_text(encoding="utf-8"))["tokens"][2] == "\U0001f600"
    assert pairs(read_jsonl(tmp_path / "u.jsonl")) == pairs(sents)
    write_conll(sents, tmp_path / "u.txt")
    assert pairs(read_conll(tmp_path / "u.txt")) == pairs(sents)


# ------------------------------------------------------------------------------------- the shared tagged reader


@pytest.mark.parametrize("text, pattern", [
    ("a B-Disease\nb Disease\n", r"t\.txt:2: malformed tag 'Disease': a tag is 'O' or PREFIX-TYPE .*Fix the tag in "
                                  r"the file; if column -1 is not the tag column, set data\.tag_column"),
    ("a O\n\nb B-\nc O\n", r"t\.txt:3: malformed tag 'B-'"),
    ("a B_PER\n", r"t\.txt:1: malformed tag 'B_PER'"),
])
def test_read_tagged_reports_malformed_tags_at_file_line(tmp_path, text, pattern):
    with pytest.raises(DataError, match=pattern):
        read_tagged(write(tmp_path, text, "t.txt"))


def test_read_tagged_jsonl_tag_keys(tmp_path):
    ner = write(tmp_path, '{"tokens": ["a", "b"], "ner_tags": ["B-X", "O"]}\n', "n.jsonl")
    assert pairs(read_tagged(ner)) == [(("a", "b"), ("B-X", "O"))]  # tags or ner_tags by default
    assert pairs(read_tagged(ner, tags_keys=("tags", "ner_tags", "tags"))) == [(("a", "b"), ("B-X", "O"))]
    other = write(tmp_path, '{"id": 1, "tokens": ["a"], "labels": ["O"]}\n', "o.jsonl")
    with pytest.raises(DataError, match=r"o\.jsonl:1: the record has no tag key 'tags' or 'ner_tags' \(its keys: "
                                        r"'id', 'tokens', 'labels'\); put the tags under 'tags', or name the key "
                                        r"with data\.tags_column=KEY"):
        read_tagged(other)
    assert pairs(read_tagged(other, tags_keys=("tags", "labels"))) == [(("a",), ("O",))]
    ids = write(tmp_path, '{"tokens": ["a"], "ner_tags": [3]}\n', "i.jsonl")
    with pytest.raises(DataError, match=r"i\.jsonl:1: 'ner_tags' must be a list of tag strings"):
        read_tagged(ids)
    bad = write(tmp_path, '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a", "b"], "tags": ["O", "PER"]}\n',
                "b.jsonl")
    with pytest.raises(DataError, match=r"b\.jsonl:2, token 1: malformed tag 'PER'.*Fix the tag in the file$"):
        read_tagged(bad)
    with pytest.raises(DataError, match=r"the record has no 'words' key .*data\.tokens_column"):
        read_tagged(ner, tokens_key="words")


def test_read_tagged_checks_the_path_first(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.txt").write_text("a O\n")
    with pytest.raises(DataError, match=r"^data\.train: .*d is a directory, not a file \(it holds train\.txt\); "
                                        r"name a data file in data\.train$"):
        read_tagged(tmp_path / "d", key="data.train")
    with pytest.raises(DataError, match=r"^file .*nope\.txt does not exist$"):
        read_tagged(tmp_path / "nope.txt")


def test_check_tags_accepts_o_and_prefix_type_and_untagged():
    check_tags([Sentence(("a", "b"), ("B-creative-work", "O")), Sentence(("c",), None)])
    with pytest.raises(DataError, match=r"x\.txt:5: malformed tag 'I-'"):
        check_tags([Sentence(("a", "b"), ("O", "I-"), "x.txt", 4)])


def test_iter_text_lines_keeps_line_numbers_and_names_bad_bytes(tmp_path):
    p = write(tmp_path, "\ufeffJohn lives here\r\n\nin Z\u00fcrich\n".encode("utf-8"), "t.txt")
    assert list(iter_text_lines(p)) == [(1, "John lives here"), (2, ""), (3, "in Z\u00fcrich")]
    latin = write(tmp_path, "ok\nin Z\u00fcrich\n".encode("latin-1"), "l.txt")
    with pytest.raises(DataError, match=r"l\.txt:2: byte 0xfc at byte offset 7 .*data\.encoding=latin-1"):
        list(iter_text_lines(latin))
    assert list(iter_text_lines(latin, encoding="latin-1"))[1] == (2, "in Z\u00fcrich")


# ------------------------------------------------------------------------------------------ control characters


@pytest.mark.parametrize("ch", ["\x00", "\x01", "\x1c", "\x1f", "\x7f", "\x85", "\x9f"])
def test_a_control_character_in_a_conll_token_names_the_line_and_the_character(tmp_path, ch):
    p = write(tmp_path, f"Peter\tB-PER\ntelan{ch}giectasia\tO\n\n")
    code = rf"U\+{ord(ch):04X}"
    with pytest.raises(DataError, match=rf"f\.txt:2: the line .* holds {code}, a control character, at character 5\. "
                                        r"Only TAB, LF, CR, VT and FF among control characters are read"):
        read_conll(p)
    with pytest.raises(DataError, match=rf"f\.txt:2: .* holds {code}"):
        list(iter_text_lines(p))  # prediction input


def test_the_fix_for_a_nul_byte_is_a_command_that_works(tmp_path):
    import shlex
    import subprocess

    p = write(tmp_path, "Peter\tB-PER\ntelan\x00giectasia\tO\n\n")
    with pytest.raises(DataError) as e:
        read_conll(p)
    command = str(e.value).split("`")[1]
    assert command == f"tr -d '\\000' < {p} > f.clean.txt"
    subprocess.run(command.replace("f.clean.txt", shlex.quote(str(tmp_path / "f.clean.txt"))), shell=True, check=True)
    assert pairs(read_conll(tmp_path / "f.clean.txt")) == [(("Peter", "telangiectasia"), ("B-PER", "O"))]


def test_c1_characters_in_a_latin1_file_point_at_cp1252(tmp_path):
    p = write(tmp_path, b"He\x93s\tO\n\n")  # cp1252's left double quotation mark
    with pytest.raises(DataError, match=r"U\+0093, a control character.*read the file as cp1252"):
        read_conll(p, encoding="latin-1")
    assert pairs(read_conll(p, encoding="cp1252")) == [(("He\u201cs",), ("O",))]


def test_white_space_controls_and_separators_split_format_characters_stay(tmp_path):
    """TAB, VT, FF, CR and Unicode separators separate columns; zero-width and bidi format characters are kept."""
    p = write(tmp_path, "a\x0bO\nb\x0cO\nc\u2028O\nd\u00a0O\ne\rO\r\nwatched\u200bwas\tO\nx\u200ey\ufeff\tO\n\n")
    assert pairs(read_conll(p)) == [(("a", "b", "c", "d", "e", "watched\u200bwas", "x\u200ey\ufeff"), ("O",) * 7)]


def test_a_control_character_in_json_names_the_record_and_the_token(tmp_path):
    lines = ['{"tokens": ["Peter"], "tags": ["B-PER"]}', '{"tokens": ["a", "b"], "tags": ["O", "O"]}',
             '{"tokens": ["telan\\u0000giectasia", "x"], "tags": ["O", "O"]}']
    p = write(tmp_path, "\n".join(lines) + "\n", "d.jsonl")
    with pytest.raises(DataError, match=r"d\.jsonl:3, token 0: the token 'telan\\x00giectasia' holds U\+0000"):
        read_jsonl(p)
    p = write(tmp_path, '{"tokens": ["a", "b"], "tags": ["O", "B-\\u0001X"]}\n', "t.jsonl")
    with pytest.raises(DataError, match=r"t\.jsonl:1, token 1: the tag 'B-\\x01X' holds U\+0001"):
        read_jsonl(p)
    p = write(tmp_path, '{"tokens": ["a\\ud800b"]}\n', "s.jsonl")
    with pytest.raises(DataError, match=r"s\.jsonl:1, token 0: .* holds U\+D800, a lone surrogate"):
        read_jsonl(p)


def test_a_control_character_in_a_hub_dataset_names_the_row(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"tokens": [["ok"], ["a", "telan\x00giectasia"]], "ner_tags": [["O"], ["O", "O"]]})
    ds.save_to_disk(str(tmp_path / "saved"))
    with pytest.raises(DataError, match=r"saved\[train\] row 1, token 1: the token 'telan\\x00giectasia' holds U\+0000"):
        load_hub_dataset(tmp_path / "saved", "train")
