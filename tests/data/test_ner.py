import logging
from dataclasses import replace

import pytest

from seqtag.config import DataConfig
from seqtag.data.ner import continuation_ids, load_ner_data, tokenize_ner, train_labels, window_counts
from seqtag.errors import DataError
from tests.cli_subprocess import listing, run_seqtag, user_error

IOB1_TRAIN = "EU I-ORG\nrejects O\nGerman I-MISC\ncall O\n\nPeter I-PER\nBlackburn I-PER\n\nBRUSSELS I-LOC\n"
DEV = "Peter I-PER\nsaid O\nin O\nLondon I-LOC\n\nACME I-CORP\n"


def _files(tmp_path, train=IOB1_TRAIN, dev=DEV):
    (tmp_path / "train.txt").write_text(train)
    (tmp_path / "dev.txt").write_text(dev)
    return DataConfig(train=str(tmp_path / "train.txt"), dev=str(tmp_path / "dev.txt"), cache_dir=str(tmp_path / "c"))


def test_scheme_detected_converted_and_labels_from_train(tmp_path):
    data = load_ner_data(_files(tmp_path, dev=DEV.replace("ACME I-CORP", "ACME I-ORG")))
    assert data.source_scheme == "IOB1" and data.train_scheme == "IOB2"
    assert data.labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert data.splits["train"][1].tags == ("B-PER", "I-PER")
    assert data.splits["dev"][0].tags == ("B-PER", "O", "O", "B-LOC")


def test_unseen_dev_label_is_an_error_or_mapped(tmp_path):
    cfg = _files(tmp_path)
    with pytest.raises(DataError, match=r"dev.txt:6: .*'B-CORP'.*never seen in training.*unseen_labels=map_to_o"):
        load_ner_data(cfg)
    data = load_ner_data(replace(cfg, unseen_labels="map_to_o"))
    assert data.splits["dev"][1].tags == ("O",) and data.notes["unseen_mapped_to_o"]["dev"] == 1


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(DataError, match=r"data.train: file .*nope.txt does not exist"):
        load_ner_data(DataConfig(train=str(tmp_path / "nope.txt")))


def test_a_directory_is_not_called_missing(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.txt").write_text(IOB1_TRAIN)
    with pytest.raises(DataError, match=r"data\.train: .*data is a directory, not a file \(it holds train\.txt\)"):
        load_ner_data(DataConfig(train=str(tmp_path / "data")))


def test_only_o_training_data_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "train.txt").write_text("a O\nb O\n\nc O\n")
    with pytest.raises(DataError, match=r"data\.train: every tag in .*train\.txt is O \(3 tokens in 2 sentences\), "
                                        r"so there is no entity to learn\. Check where the tags are read from "
                                        r"\(data\.tag_column \(now -1\) for CoNLL"):
        load_ner_data(DataConfig(train=str(tmp_path / "train.txt")))
    (tmp_path / "late.txt").write_text("a O\n\nb B-X\n")  # the entity is past max_train_examples
    with pytest.raises(DataError, match=r"is O \(1 tokens in 1 sentences, those kept by data\.max_train_examples\)"):
        load_ner_data(DataConfig(train=str(tmp_path / "late.txt"), max_train_examples=1))
    assert load_ner_data(DataConfig(train=str(tmp_path / "late.txt"))).labels == ["O", "B-X", "I-X"]


def test_max_examples_keep_the_first_n(tmp_path):
    cfg = _files(tmp_path, dev=DEV.replace("ACME I-CORP", "ACME I-ORG"))
    data = load_ner_data(replace(cfg, max_train_examples=2, max_eval_examples=1, unseen_labels="map_to_o"))
    assert [len(v) for v in data.splits.values()] == [2, 1]
    assert data.splits["train"][1].tokens == ("Peter", "Blackburn")
    assert data.labels == ["O", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]  # no LOC in the first 2


def test_jsonl_with_ner_tags_and_other_encodings_through_the_config(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"tokens": ["Peter", "said"], "ner_tags": ["B-PER", "O"]}\n')
    assert load_ner_data(DataConfig(train=str(tmp_path / "t.jsonl"))).labels == ["O", "B-PER", "I-PER"]
    (tmp_path / "l.jsonl").write_text('{"words": ["Peter"], "labels": ["B-PER"]}\n')
    cfg = DataConfig(train=str(tmp_path / "l.jsonl"), tokens_column="words")
    with pytest.raises(DataError, match=r"l\.jsonl:1: the record has no tag key 'tags' or 'ner_tags' \(its keys: "
                                        r"'words', 'labels'\)"):
        load_ner_data(cfg)
    assert load_ner_data(replace(cfg, tags_column="labels")).splits["train"][0].tags == ("B-PER",)
    (tmp_path / "latin.txt").write_bytes("Z\u00fcrich B-LOC\n".encode("latin-1"))
    cfg = DataConfig(train=str(tmp_path / "latin.txt"))
    with pytest.raises(DataError, match=r"latin\.txt:1: byte 0xfc .*data\.encoding=latin-1"):
        load_ner_data(cfg)
    assert load_ner_data(replace(cfg, encoding="latin-1")).splits["train"][0].tokens == ("Z\u00fcrich",)


def test_train_labels_reads_only_train_and_logs_nothing_else(tmp_path, caplog):
    cfg = _files(tmp_path)  # its dev file has an unseen type: train_labels does not read it
    assert train_labels(cfg) == ("IOB1", ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER",
                                          "I-PER"])
    assert train_labels(replace(cfg, train_scheme="BILOU", scheme="IOB1"))[1][:5] == [
        "O", "B-LOC", "I-LOC", "L-LOC", "U-LOC"]
    with caplog.at_level(logging.INFO, logger="seqtag.data.ner"):
        load_ner_data(replace(cfg, unseen_labels="map_to_o"))
    assert "tag scheme IOB1 (detected), trained as IOB2; 4 entity types: LOC, MISC, ORG, PER" in caplog.text


def test_only_o_training_data_stops_train_before_the_model_loads(tmp_path):
    """Through the CLI in a subprocess: exit 2, one paragraph, no traceback, no run directory."""
    from tests.tiny import tiny_config, write_config

    raw = tiny_config(tmp_path, n_dev=0, n_test=0)
    (tmp_path / "train.txt").write_text("".join(f"w{i} O\n" + ("\n" if i % 3 == 2 else "") for i in range(9)))
    raw["data"]["scheme"] = "auto"
    config = write_config(tmp_path / "c.yaml", raw)
    before = listing(tmp_path)
    msg = user_error(run_seqtag("train", config, cwd=tmp_path), "train")
    assert msg.startswith(f"data.train: every tag in {tmp_path / 'train.txt'} is O (9 tokens in 3 sentences)")
    assert listing(tmp_path) == before


def test_continuation_ids():
    assert continuation_ids(["O", "B-A", "I-A", "B-B", "I-B"]) == [0, 2, 2, 4, 4]


@pytest.fixture
def tok(tmp_path):
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "eu", "rejects", "german", "call", "peter", "black",
             "##burn", "brussels", "said", "in", "london"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab=str(tmp_path / "vocab.txt"))


def test_tokenised_dataset_is_cached_on_disk(tmp_path, tok, monkeypatch):
    cfg = _files(tmp_path, dev=DEV.replace("ACME I-CORP", "ACME I-ORG"))
    data = load_ner_data(cfg)
    ds = tokenize_ner(data.splits["train"], tok, data.labels, cfg)
    files = list((tmp_path / "c" / "ner").glob("*.arrow"))
    assert len(files) == 1
    assert ds["input_ids"][1] == [2, 9, 10, 11, 3] and ds["labels"][1] == [-100, 7, 8, -100, -100]
    import seqtag.data.ner as ner

    def fail(*a, **k):
        raise AssertionError("tokenised again instead of reading the cache")

    monkeypatch.setattr(ner, "encode_sentences", fail)
    again = tokenize_ner(data.splits["train"], tok, data.labels, cfg)  # second run reads the cache
    assert again["input_ids"] == ds["input_ids"]
    with pytest.raises(AssertionError, match="tokenised again"):  # other settings: a new key, a new pass
        tokenize_ner(data.splits["train"], tok, data.labels, replace(cfg, max_length=64))
    assert window_counts(ds) == (3, 0, 3)  # sentences, windowed sentences, windows


def test_an_unseen_label_in_json_lines_names_its_record_and_token(tmp_path):
    """A JSON record is one line however many tokens it holds: the error gives the record's line and the token."""
    import json

    train = [{"tokens": ["Peter", "lives"], "tags": ["B-PER", "O"]}, {"tokens": ["Paris"], "tags": ["B-LOC"]}]
    dev = [*train, {"tokens": ["ACME", "Corp", "said"], "tags": ["O", "B-ORG", "O"]}]
    for name, records in (("train.jsonl", train), ("dev.jsonl", dev)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = DataConfig(train=str(tmp_path / "train.jsonl"), dev=str(tmp_path / "dev.jsonl"), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match=r"dev\.jsonl:3, token 1: the dev label 'B-ORG' has an entity type never seen"):
        load_ner_data(cfg)
