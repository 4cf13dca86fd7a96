from dataclasses import replace

import pytest

from seqtag.config import DataConfig
from seqtag.data.ner import continuation_ids, load_ner_data, tokenize_ner, window_counts
from seqtag.errors import DataError

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
    assert window_counts(ds) == {"sentences": 3, "windowed_sentences": 0, "windows_of_windowed": 0}
