"""One split of a Hugging Face dataset, for every task: a directory written by ``save_to_disk`` or a Hub dataset.

The NER reader (:func:`seqtag.data.readers.load_hub_dataset`) and the QA reader
(:func:`seqtag.data.squad.load_hub_qa`) turn its rows into sentences or questions; finding and opening the split,
and the errors when that fails, are here once.
"""

from __future__ import annotations

from pathlib import Path

from seqtag.errors import DataError


def is_saved_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a directory written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    p = Path(path)
    return p.is_dir() and ((p / "dataset_dict.json").exists() or (p / "state.json").exists())


def load_split(name_or_path: str | Path, split: str, config_name: str | None = None):
    """Return split ``split`` of a dataset as a ``datasets.Dataset``.

    A ``save_to_disk`` directory is read with ``datasets.load_from_disk`` (a single saved ``Dataset`` is used
    whatever ``split`` says); anything else goes to ``datasets.load_dataset(name_or_path, config_name,
    split=split)``, which needs the network or the dataset in the local cache. Raises :class:`DataError` naming
    the dataset and the split, with the splits there are or what to do offline.
    """
    import datasets  # heavy; only needed here

    if is_saved_dataset(name_or_path):
        p = Path(name_or_path)
        loaded = datasets.load_from_disk(str(p))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"{p} has no split {split!r}; its splits: {', '.join(loaded)}")
            loaded = loaded[split]
        return loaded
    try:
        return datasets.load_dataset(str(name_or_path), config_name, split=split)
    except Exception as e:  # load_dataset raises many types (network, missing, bad config); all user-fixable
        raise DataError(
            f"could not load split {split!r} of dataset {str(name_or_path)!r}: {type(e).__name__}: "
            f"{' '.join(str(e).split())}. Offline? Save the dataset with save_to_disk() on a machine that can reach "
            f"the Hub and pass that directory"
        ) from e
