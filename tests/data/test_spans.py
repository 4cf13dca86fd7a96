"""Tests for seqtag.data.spans (span readers: token spans, character spans over raw text, flat tags, document
ranges) and seqtag.data.span_windows (windows that hold every span whole)."""

from __future__ import annotations

import json
import random

import pytest

from seqtag.config import DataConfig
from seqtag.data.span_windows import encode_span_sentences, plan_span_windows, span_owner_context
from seqtag.data.spans import (
    SpanSentence,
    is_span_file,
    load_span_data,
    read_span_file,
    read_span_split,
    select_documents,
)
from seqtag.data.words import split_words
from seqtag.errors import DataError
from tests.tiny import make_tiny_model_dir


def write_jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from seqtag.config import ModelConfig
    from seqtag.modeling.loading import load_tokenizer

    words = ["il", "-", "2", "gene", "expression", "in", "t", "cells", "the", "protein", "binds", "dna"]
    return load_tokenizer(ModelConfig(str(make_tiny_model_dir(tmp_path_factory.mktemp("m"), words=words))))


# ---------------------------------------------------------------------------------------------------------------
# readers


def test_genia_file_is_read_with_its_own_keys_and_split_by_abstract(shared_data):
    path = shared_data / "genia" / "genia-dev.jsonl"
    assert is_span_file(path)
    sentences, widened = read_span_file(path)
    assert (len(sentences), sum(len(s.spans) for s in sentences), widened) == (1765, 4714, 0)
    assert sentences[0].spans[0] == (2, 3, "DNA") and sentences[0].tokens[2] == "c-fos"
    nested = sum(any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in x.spans) for x in sentences for s in x.spans)
    assert nested > 0
    train, dev = select_documents(sentences, [0, 159], "k"), select_documents(sentences, [159, 199], "k")
    assert len(train) + len(dev) == 1765 and not {s.doc_id for s in train} & {s.doc_id for s in dev}
    assert len({s.doc_id for s in train}) == 159 and len({s.doc_id for s in dev}) == 40


def test_token_spans_as_objects_or_lists_and_their_errors(tmp_path):
    good = write_jsonl(tmp_path / "a.jsonl", [
        {"tokens": ["IL-2", "gene"], "entities": [{"start": 0, "end": 2, "type": "DNA"}, [0, 1, "protein"]]},
        {"tokens": ["none"], "entities": []}])
    sentences, _ = read_span_file(good)
    assert [s.spans for s in sentences] == [((0, 2, "DNA"), (0, 1, "protein")), ()]
    assert (sentences[1].source, sentences[1].line) == (good, 2)
    bad = write_jsonl(tmp_path / "b.jsonl", [{"tokens": ["a"], "entities": []},
                                             {"tokens": ["a", "b"], "entities": [{"start": 1, "end": 3, "type": "X"}]}])
    with pytest.raises(DataError, match=r"b\.jsonl:2: entity 0 \[1, 3\) \(X\) is outside the 2 tokens"):
        read_span_file(bad)
    bad = write_jsonl(tmp_path / "c.jsonl", [{"tokens": ["a"], "entities": [{"begin": 0, "end": 1, "type": "X"}]}])
    with pytest.raises(DataError, match=r"c\.jsonl:1: entity 0 is .*end exclusive"):
        read_span_file(bad)


def test_character_spans_map_onto_predict_words_with_exact_offsets(tmp_path, tokenizer):
    text = "IL-2 gene expression in T cells."
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": text, "entities": [[0, 9, "DNA"], [0, 4, "protein"],
                                                                         [24, 32, "cell_type"], [23, 31, "cell_type"]]}])
    (s,), widened = read_span_file(path, tokenizer=tokenizer)
    words, offsets = split_words(text, tokenizer)
    assert list(s.tokens) == words and list(s.offsets) == offsets and widened == 0
    assert [w for w in words[:4]] == ["IL", "-", "2", "gene"]  # the splitting seqtag predict uses
    spans = {(text[offsets[a][0]:offsets[b - 1][1]], t) for a, b, t in s.spans}
    assert spans == {("IL-2 gene", "DNA"), ("IL-2", "protein"), ("T cells.", "cell_type"), ("T cells", "cell_type")}


def test_a_character_span_inside_a_word_is_an_error_or_widened_and_counted(tmp_path, tokenizer):
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "the protein binds", "entities": []},
                                             {"text": "the protein binds", "entities": [[4, 9, "protein"]]}])
    with pytest.raises(DataError, match=r"t\.jsonl:2: entity 0 \[4, 9\) 'prote' \(protein\) cuts inside the word "
                                        r"'protein' at \[4, 11\).*data.on_misaligned=widen"):
        read_span_file(path, tokenizer=tokenizer)
    sentences, widened = read_span_file(path, tokenizer=tokenizer, on_misaligned="widen")
    assert widened == 1 and sentences[1].spans == ((1, 2, "protein"),)
    blank = write_jsonl(tmp_path / "w.jsonl", [{"text": "the  protein", "entities": [[3, 5, "X"]]}])
    with pytest.raises(DataError, match="covers no word"):
        read_span_file(blank, tokenizer=tokenizer, on_misaligned="widen")


def test_flat_tag_files_train_the_span_head(tmp_path):
    conll = tmp_path / "train.txt"
    conll.write_text("IL-2\tB-DNA\ngene\tI-DNA\nbinds\tO\n\nT\tB-cell\n\n", encoding="utf-8")
    sentences, notes = read_span_split(DataConfig(train=str(conll)), "train")
    assert [s.spans for s in sentences] == [((0, 2, "DNA"),), ((0, 1, "cell"),)] and notes["scheme"] == "IOB2"
    assert not is_span_file(conll)


def test_document_ranges_and_unseen_types(tmp_path):
    records = [{"tokens": ["a"], "doc_id": d, "entities": [[0, 1, t]]} for d, t in
               (("d1", "X"), ("d1", "X"), ("d2", "X"), ("d3", "Y"))]
    path = write_jsonl(tmp_path / "all.jsonl", records)
    data = DataConfig(train=path, train_articles=[0, 2], dev=path, dev_articles=[2, 3])
    with pytest.raises(DataError, match=r"all\.jsonl:4: the dev entity type 'Y' was never seen in training"):
        load_span_data(data)
    from dataclasses import replace

    loaded = load_span_data(replace(data, unseen_labels="map_to_o"))
    assert loaded.types == ["X"] and len(loaded.splits["train"]) == 3 and loaded.splits["dev"][0].spans == ()
    assert loaded.notes["dev"]["unseen_dropped"] == 1
    with pytest.raises(DataError, match=r"data.dev_articles: \[2, 9\) but .* has 3 documents"):
        load_span_data(replace(data, dev_articles=[2, 9]))
    with pytest.raises(DataError, match="has no 'doc_id'"):
        select_documents([SpanSentence(("a",), (), "f.jsonl", 3)], [0, 1], "data.train_articles")


# ---------------------------------------------------------------------------------------------------------------
# windows


def test_every_span_that_fits_lies_whole_in_a_window():
    rng = random.Random(0)
    for _ in range(300):
        counts = [rng.choice([1, 1, 1, 2, 3]) for _ in range(rng.randint(1, 40))]
        max_pieces, stride, length = rng.randint(4, 12), rng.randint(0, 3), rng.randint(1, 6)
        windows = plan_span_windows(counts, max_pieces, stride, length)
        assert windows[0][0] == 0 and windows[-1][1] == len(counts)
        assert all(b2 > b1 and a2 > a1 for (a1, b1), (a2, b2) in zip(windows, windows[1:]))
        for i in range(len(counts)):
            for j in range(i + 1, min(len(counts), i + length) + 1):
                fits = sum(counts[i:j]) <= max_pieces
                inside = any(a <= i and j <= b for a, b in windows)
                assert inside or not fits, (counts, max_pieces, stride, length, (i, j))


def test_span_owner_context_is_distance_to_the_nearer_edge():
    ctx = span_owner_context(5, 3)
    assert ctx[2, 0] == 2 and ctx[1, 2] == 1 and ctx[0, 1] == 0 and ctx[3, 2] == -1


def test_a_sentence_longer_than_a_window_is_encoded_in_overlapping_windows(tokenizer):
    words = ["the", "protein", "binds", "dna", "in", "t", "cells", "the", "gene"] * 2
    spans = [(1, 2, "protein"), (5, 7, "cell"), (3, 4, "DNA"), (12, 16, "DNA"), (0, 18, "DNA")]
    enc, lost = encode_span_sentences(tokenizer, [words], [spans], ["DNA", "cell", "protein"], max_length=10,
                                      stride=2, max_span_length=4)
    assert lost == {"longer": 1, "unfit": 0}  # the 18-word span
    assert len(enc["input_ids"]) > 1 and set(enc["num_windows"]) == {len(enc["input_ids"])}
    assert enc["word_offset"][0] == 0
    for ids, positions, offset in zip(enc["input_ids"], enc["word_positions"], enc["word_offset"]):
        assert len(ids) <= 10 and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        assert tokenizer.convert_ids_to_tokens([ids[p] for p in positions]) == words[offset:offset + len(positions)]
    seen = set()
    for gold, offset, positions in zip(enc["gold_spans"], enc["word_offset"], enc["word_positions"]):
        triples = [gold[k:k + 3] for k in range(0, len(gold), 3)]
        for i, length, t in triples:
            assert i + length < len(positions)  # the whole span is in the window
            seen.add((offset + i, offset + i + length + 1, ["DNA", "cell", "protein"][t]))
    assert seen == set(spans[:4])
