"""seqtag.data.hub_datasets: one way to open a dataset split, for NER and QA alike."""

import pytest

from seqtag.data.hub_datasets import is_saved_dataset, load_split
from seqtag.errors import DataError


def test_saved_dataset_dict_and_single_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"x": [1, 2]}),
                               "validation": datasets.Dataset.from_dict({"x": [3]})})
    dd.save_to_disk(str(tmp_path / "dd"))
    datasets.Dataset.from_dict({"x": [4, 5, 6]}).save_to_disk(str(tmp_path / "one"))
    assert is_saved_dataset(tmp_path / "dd") and is_saved_dataset(tmp_path / "one")
    assert not is_saved_dataset(tmp_path) and not is_saved_dataset(tmp_path / "missing")
    assert load_split(tmp_path / "dd", "validation")["x"] == [3]
    assert load_split(str(tmp_path / "one"), "anything")["x"] == [4, 5, 6]  # a single Dataset is the split
    with pytest.raises(DataError, match=r"dd has no split 'test'; its splits: train, validation"):
        load_split(tmp_path / "dd", "test")


def test_a_dataset_that_cannot_be_loaded_says_what_to_do_offline(tmp_path):
    pytest.importorskip("datasets")
    with pytest.raises(DataError, match=r"could not load split 'train' of dataset .*nothing-here.* Offline\? Save "
                                         r"the dataset with save_to_disk\(\)"):
        load_split(tmp_path / "nothing-here", "train")
