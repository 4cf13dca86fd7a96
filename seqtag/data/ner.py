"""NER data for training: read the configured splits, settle the tag scheme and label set, tokenise.

Reading and validation are plain functions over :class:`~seqtag.data.sentence.Sentence` lists; tokenisation is a
batched ``datasets.Dataset.map`` whose Arrow output is cached on disk under a key made of the data, the
tokenizer and the window settings, so a second run with the same inputs skips preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from seqtag.config import DataConfig
from seqtag.data import schemes
from seqtag.data.align import ALIGNMENT_VERSION, encode_sentences
from seqtag.data.readers import load_hub_dataset, read_tagged
from seqtag.data.sentence import Sentence, check_tags, token_location, validate_sentences
from seqtag.errors import DataError
from seqtag.paths import resolve

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NERData:
    """The splits of one experiment, converted to the training scheme, and the label set."""

    splits: dict[str, list[Sentence]]  # "train", "dev", "test" (those configured)
    labels: list[str]  # id -> label, O first
    source_scheme: str  # the files' scheme (declared or detected)
    train_scheme: str
    notes: dict  # counts worth logging: repaired tokens, unseen labels mapped to O


def read_split(data: DataConfig, split: str) -> list[Sentence]:
    """Read one configured split (``data.train`` / ``data.dev`` / ``data.test``) with its tags.

    Files go through :func:`~seqtag.data.readers.read_tagged`, the reader ``seqtag stats`` uses, so both report
    the same ``file:line`` errors; JSON records hold their tags under ``tags`` or ``data.tags_column``.
    """
    spec = getattr(data, split)
    if data.format == "hub":
        sentences = load_hub_dataset(
            resolve(data.hub_dataset, "data.hub_dataset"), spec, tokens_column=data.tokens_column,
            tags_column=data.tags_column, config_name=data.hub_config,
        )
        check_tags(sentences)
        return sentences
    fmt = data.format if data.format in ("conll", "jsonl") else "auto"
    return read_tagged(resolve(spec, f"data.{split}"), fmt, token_column=data.token_column,
                       tag_column=data.tag_column, tokens_key=data.tokens_column,
                       tags_keys=("tags", data.tags_column), encoding=data.encoding, key=f"data.{split}")


def read_train(data: DataConfig) -> list[Sentence]:
    """The training sentences (the first ``data.max_train_examples``); an error when every tag is ``O``."""
    train = read_split(data, "train")[: data.max_train_examples]
    if all(t == "O" for s in train for t in s.tags):
        n_tokens = sum(len(s.tokens) for s in train)
        kept = ", those kept by data.max_train_examples" if data.max_train_examples else ""
        where_tags = (f"data.tags_column ({data.tags_column!r})" if data.format == "hub" else
                      f"data.tag_column (now {data.tag_column}) for CoNLL, the 'tags' key or data.tags_column for JSON")
        raise DataError(
            f"data.train: every tag in {train[0].source} is O ({n_tokens} tokens in {len(train)} sentences{kept}), so "
            f"there is no entity to learn. Check where the tags are read from ({where_tags}), or train on data with "
            f"entity tags"
        )
    return train


def source_scheme(data: DataConfig, train: Sequence[Sentence]) -> str:
    """The tag scheme of the data files: ``data.scheme``, or detected from the training sentences when ``auto``."""
    if data.scheme != "auto":
        return data.scheme
    try:
        return schemes.detect_scheme(s.tags for s in train)
    except DataError as e:
        raise DataError(f"{train[0].source}: {e}. Fix the tags, or name the scheme with data.scheme") from None


def train_labels(data: DataConfig) -> tuple[str, list[str]]:
    """The files' tag scheme and the label set training will use, from ``data.train`` alone (for ``validate``).

    Reads and checks the training split the way :func:`load_ner_data` does, including the tag sequences
    (``data.on_invalid``), without reading dev/test or tokenising.
    """
    train = read_train(data)
    source = source_scheme(data, train)
    to_train_scheme(train, source, data)
    return source, schemes.labels_for(schemes.entity_types(s.tags for s in train), data.train_scheme)


def to_train_scheme(sentences: list[Sentence], source: str, data: DataConfig) -> tuple[list[Sentence], int]:
    """Check the tags against the files' scheme ``source`` (stop or repair, as ``data.on_invalid`` says) and
    convert them to ``data.train_scheme``. Returns the sentences and the number of repaired tokens."""
    sentences, repaired = validate_sentences(sentences, source, on_invalid=data.on_invalid)
    if source != data.train_scheme:
        sentences = [replace(s, tags=tuple(schemes.convert(list(s.tags), source, data.train_scheme)))
                     for s in sentences]
    return sentences, repaired


def _map_unseen(sentences: list[Sentence], known: set[str], split: str, policy: str) -> tuple[list[Sentence], int]:
    out, mapped = [], 0
    for s in sentences:
        tags = list(s.tags or ())
        for i, t in enumerate(tags):
            if t != "O" and schemes.entity_type(t) not in known:
                if policy == "error":
                    raise DataError(
                        f"{token_location(s, i)}: the {split} label {t!r} has an entity type never seen in training "
                        f"(known: {', '.join(sorted(known)) or 'none'}); fix the data, or set "
                        f"data.unseen_labels=map_to_o to tag it O (counted and logged)"
                    )
                tags[i] = "O"
                mapped += 1
        out.append(replace(s, tags=tuple(tags)) if mapped else s)
    return out, mapped


def load_ner_data(data: DataConfig) -> NERData:
    """Read every configured split, validate and convert its tags, build the label set from training data."""
    raw = {"train": read_train(data)}
    source = source_scheme(data, raw["train"])
    for split in ("dev", "test"):
        if getattr(data, split):
            raw[split] = read_split(data, split)[: data.max_eval_examples]
    notes: dict = {"repaired_tokens": {}, "unseen_mapped_to_o": {}}
    splits = {}
    splits["train"], notes["repaired_tokens"]["train"] = to_train_scheme(raw["train"], source, data)
    known = set(schemes.entity_types(s.tags for s in splits["train"]))
    for split in ("dev", "test"):
        if split in raw:
            splits[split], notes["repaired_tokens"][split], notes["unseen_mapped_to_o"][split] = settle_tags(
                raw[split], split, source, data, known)
    labels = schemes.labels_for(sorted(known), data.train_scheme)
    log.info("data.train: tag scheme %s (%s), trained as %s; %d entity types: %s", source,
             "detected" if data.scheme == "auto" else "data.scheme", data.train_scheme, len(known),
             ", ".join(sorted(known)))
    return NERData(splits=splits, labels=labels, source_scheme=source, train_scheme=data.train_scheme, notes=notes)


def settle_tags(sentences: list[Sentence], split: str, source_scheme: str, data: DataConfig,
                known_types: set[str] | None = None) -> tuple[list[Sentence], int, int]:
    """:func:`to_train_scheme`, then, for evaluation splits (``known_types`` given), ``data.unseen_labels`` for
    entity types never seen in training. Returns ``(sentences, repaired tokens, tokens mapped to O)``. Training's
    dev/test splits and ``seqtag evaluate`` go through this one function."""
    sentences, repaired = to_train_scheme(sentences, source_scheme, data)
    mapped = 0
    if known_types is not None:
        sentences, mapped = _map_unseen(sentences, known_types, split, data.unseen_labels)
    return sentences, repaired, mapped


def continuation_ids(labels: Sequence[str]) -> list[int]:
    """For ``label_all_tokens``: the label id of a word's non-first subwords (``B-X`` -> ``I-X``).

    >>> continuation_ids(["O", "B-PER", "I-PER"])
    [0, 2, 2]
    """
    index = {lab: i for i, lab in enumerate(labels)}
    out = []
    for lab in labels:
        typ = schemes.entity_type(lab)
        out.append(index[lab] if typ is None else index.get(f"I-{typ}", index[lab]))
    return out


def _cache_key(sentences: Sequence[Sentence], tokenizer, labels, data: DataConfig) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([labels, data.max_length, data.stride, data.label_all_tokens, tokenizer.name_or_path,
                         len(tokenizer), type(tokenizer).__name__, ALIGNMENT_VERSION], sort_keys=True).encode())
    h.update(hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).digest()
             if hasattr(tokenizer, "backend_tokenizer") else b"")
    for s in sentences:
        h.update("\x1f".join(s.tokens).encode())
        h.update(b"\x1e")
        h.update("\x1f".join(s.tags or ()).encode())
        h.update(b"\x1d")
    return h.hexdigest()[:24]


def cache_root(data: DataConfig) -> Path:
    return Path(data.cache_dir or os.environ.get("SEQTAG_CACHE", Path.home() / ".cache" / "seqtag"))


def tokenize_ner(sentences: Sequence[Sentence], tokenizer, labels: Sequence[str], data: DataConfig,
                 cache: bool = True):
    """Encode sentences as model windows in a ``datasets.Dataset`` (cached on disk when ``cache``).

    Columns: ``input_ids``, ``labels``, ``word_index``, ``sentence_index``, ``num_windows``, ``length``.
    """
    import datasets

    index = {lab: i for i, lab in enumerate(labels)}
    cont = continuation_ids(labels) if data.label_all_tokens else None
    has_tags = all(s.tags is not None for s in sentences)
    table = datasets.Dataset.from_dict({
        "tokens": [list(s.tokens) for s in sentences],
        "tags": [[index[t] for t in s.tags] if has_tags else [] for s in sentences],
        "sid": list(range(len(sentences))),
    })

    def encode(batch):
        enc = encode_sentences(tokenizer, batch["tokens"], batch["tags"] if has_tags else None,
                               max_length=data.max_length, stride=data.stride, continuation_ids=cont)
        enc["sentence_index"] = [batch["sid"][i] for i in enc["sentence_index"]]
        enc["length"] = [len(x) for x in enc["input_ids"]]
        return enc

    kwargs = {}
    if cache:
        root = cache_root(data) / "ner"
        root.mkdir(parents=True, exist_ok=True)
        kwargs = {"cache_file_name": str(root / f"{_cache_key(sentences, tokenizer, labels, data)}.arrow"),
                  "load_from_cache_file": True}
    return table.map(encode, batched=True, batch_size=256, remove_columns=table.column_names,
                     desc="tokenising", **kwargs)


def window_counts(dataset) -> tuple[int, int, int]:
    """``(sentences, sentences that needed more than one window, windows)`` of a tokenised split."""
    per_sentence = Counter(dataset["sentence_index"])
    return len(per_sentence), sum(n > 1 for n in per_sentence.values()), len(dataset["sentence_index"])
