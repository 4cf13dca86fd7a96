"""NER sentences from wherever they are: a file in either format (:func:`read_sentences`,
:func:`read_tagged`, the reader training, evaluation and ``seqtag stats`` share) or a split of a
Hugging Face dataset (:func:`load_hub_dataset`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqtag.data.conll import read_conll
from seqtag.data.files import check_readable_file
from seqtag.data.hub_datasets import load_split
from seqtag.data.jsonl import read_jsonl
from seqtag.data.sentence import Sentence, check_tags
from seqtag.data.words import check_text
from seqtag.errors import ConfigError, DataError

FORMATS = ("auto", "conll", "jsonl")


def read_sentences(path: str | Path, fmt: str = "auto", **kw: Any) -> list[Sentence]:
    """Read a data file: ``fmt="auto"`` picks JSON (:func:`read_jsonl`) for ``.jsonl``/``.json``, else CoNLL.

    ``kw`` go to the reader (:func:`read_conll` or :func:`read_jsonl`).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown data format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = "jsonl" if Path(path).suffix.lower() in (".jsonl", ".json") else "conll"
    return read_jsonl(path, **kw) if fmt == "jsonl" else read_conll(path, **kw)


def read_tagged(
    path: str | Path, fmt: str = "auto", *, token_column: int = 0, tag_column: int = -1,
    tokens_key: str = "tokens", tags_keys: Sequence[str] = ("tags", "ner_tags"), encoding: str = "utf-8",
    key: str | None = None,
) -> list[Sentence]:
    """Read a tagged data file for training, evaluation or ``seqtag stats``: the one reader they share.

    Checks the path first (:func:`~seqtag.data.files.check_readable_file`; ``key`` is the config key that named
    it), reads it as :func:`read_sentences` does (``token_column``/``tag_column`` for CoNLL, ``tokens_key`` and
    the first of ``tags_keys`` that the first record has for JSON), and raises :class:`DataError` at
    ``file:line`` when the file has no tags or a tag is malformed (:func:`check_tags`).
    """
    check_readable_file(path, key)
    if fmt == "auto":
        fmt = "jsonl" if Path(path).suffix.lower() in (".jsonl", ".json") else "conll"
    if fmt == "jsonl":
        sentences = read_jsonl(path, tokens_key=tokens_key, tags_key=tuple(dict.fromkeys(tags_keys)),
                               encoding=encoding, require_tags=True)
    else:
        sentences = read_sentences(path, fmt, token_column=token_column, tag_column=tag_column, encoding=encoding)
    check_tags(sentences, hint="" if fmt == "jsonl" else
               f"; if column {tag_column} is not the tag column, set data.tag_column (--tag-column for seqtag stats)")
    return sentences


def load_hub_dataset(
    name_or_path: str | Path, split: str, tokens_column: str = "tokens", tags_column: str | None = "ner_tags",
    config_name: str | None = None,
) -> list[Sentence]:
    """Load one split of a Hugging Face dataset as sentences.

    The split is opened by :func:`seqtag.data.hub_datasets.load_split` (a ``save_to_disk`` directory or a Hub
    dataset). Integer tags with ``ClassLabel`` features are mapped to their names; string tags are used as they
    are. ``tags_column=None`` reads untagged data. Sentences get ``source="NAME[SPLIT]"`` and ``line = row + 1``.
    A token holding a control character (:func:`seqtag.data.words.check_text`) is an error naming its row.
    """
    ds = load_split(name_or_path, split, config_name)
    source = f"{name_or_path}[{split}]"
    for col in (tokens_column, tags_column):
        if col is not None and col not in ds.column_names:
            raise DataError(f"{source}: no column {col!r}; its columns: {', '.join(ds.column_names)}")
    names = None
    if tags_column is not None:
        feature = getattr(ds.features[tags_column], "feature", None)
        names = getattr(feature, "names", None)
    all_tokens = ds[tokens_column]
    all_tags = ds[tags_column] if tags_column is not None else [None] * len(ds)
    out = []
    for row, (tokens, tags) in enumerate(zip(all_tokens, all_tags, strict=True)):
        if not tokens:
            raise DataError(f"{source} row {row}: no tokens; filter empty rows out before training")
        for j, tok in enumerate(tokens):
            if isinstance(tok, str):
                check_text(tok, f"{source} row {row}, token {j}", "the token")
        if tags is not None:
            if names is not None:
                if not all(0 <= t < len(names) for t in tags):
                    raise DataError(f"{source} row {row}: tag ids {tags} fall outside the {len(names)} ClassLabel "
                                    f"names of column {tags_column!r}")
                tags = [names[t] for t in tags]
            elif not all(isinstance(t, str) for t in tags):
                raise DataError(f"{source}: column {tags_column!r} holds integer ids without ClassLabel names; "
                                f"cast it to ClassLabel or map the ids to tag strings")
            tags = tuple(tags)
        out.append(Sentence(tuple(tokens), tags, source, row + 1))
    return out
