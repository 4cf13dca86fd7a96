"""Read JSON Lines (one ``{"tokens": [...], "tags": [...]}`` object per line) or a JSON array of such
objects into :class:`~seqtag.data.sentence.Sentence` values; errors name ``file:line``. A token or tag holding a
control character (``"\\u0000"``; :func:`seqtag.data.words.check_text`) is an error naming the record's line and
the token."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from seqtag.data.files import codec_name, decode_text
from seqtag.data.sentence import Sentence
from seqtag.data.words import check_text
from seqtag.errors import DataError


def _json_array(text: str, src: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, value)`` for each element of a top-level JSON array, with the line it starts on."""
    decoder = json.JSONDecoder()
    ws = " \t\r\n"

    def skip(i: int) -> int:
        while i < len(text) and text[i] in ws:
            i += 1
        return i

    def fail(i: int, msg: str) -> DataError:
        return DataError(f"{src}:{text.count(chr(10), 0, i) + 1}: not valid JSON ({msg})")

    i = skip(skip(0) + 1)  # past '['
    if i < len(text) and text[i] == "]":
        return
    line, counted = 1, 0  # line number of position `counted`, advanced as records are read
    while True:
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise fail(e.pos, e.msg) from None
        line, counted = line + text.count("\n", counted, i), i
        yield line, value
        i = skip(end)
        if i < len(text) and text[i] == ",":
            i = skip(i + 1)
        elif i < len(text) and text[i] == "]":
            if skip(i + 1) != len(text):
                raise fail(skip(i + 1), "extra data after the closing ']'")
            return
        else:
            raise fail(i, "expected ',' or ']' between records")


def _record_sentence(
    record: Any, src: str, lineno: int, tokens_key: str, tags_key: str | None, want_tags: bool | None
) -> Sentence:
    loc = f"{src}:{lineno}"
    if not isinstance(record, dict):
        raise DataError(f"{loc}: expected a JSON object with a {tokens_key!r} list, got {type(record).__name__}")
    if tokens_key not in record:
        raise DataError(f"{loc}: the record has no {tokens_key!r} key (its keys: {', '.join(map(repr, record))}); "
                        f"name the key of the token list with data.tokens_column (tokens_key= in Python)")
    tokens = record[tokens_key]
    if not isinstance(tokens, list) or not tokens:
        raise DataError(f"{loc}: {tokens_key!r} must be a non-empty list of strings, got {tokens!r:.80}")
    for j, tok in enumerate(tokens):
        if not isinstance(tok, str) or not tok:
            raise DataError(f"{loc}: {tokens_key!r} item {j} is {tok!r}; tokens must be non-empty strings")
        check_text(tok, f"{loc}, token {j}", "the token")
    has_tags = tags_key is not None and tags_key in record
    if want_tags is not None and has_tags != want_tags:
        raise DataError(f"{loc}: this record {'has' if has_tags else 'has no'} {tags_key!r} key but the first "
                        f"record {'has' if want_tags else 'has no'}; tag every record or none")
    if not has_tags:
        return Sentence(tuple(tokens), None, src, lineno)
    tags = record[tags_key]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise DataError(f"{loc}: {tags_key!r} must be a list of tag strings (e.g. 'B-PER'), got {tags!r:.80}")
    if len(tags) != len(tokens):
        raise DataError(f"{loc}: {len(tokens)} items in {tokens_key!r} but {len(tags)} in {tags_key!r}; "
                        f"every token needs exactly one tag")
    for j, tag in enumerate(tags):
        check_text(tag, f"{loc}, token {j}", "the tag")
    return Sentence(tuple(tokens), tuple(tags), src, lineno)


def read_jsonl(
    path: str | Path, tokens_key: str = "tokens", tags_key: str | Sequence[str] | None = "tags",
    encoding: str = "utf-8", require_tags: bool = False,
) -> list[Sentence]:
    """Read records ``{"tokens": [...], "tags": [...]}`` from JSON Lines, or from a JSON list of such records.

    A file whose first non-blank character is ``[`` is read as one JSON list, else as one object per line
    (blank lines skipped). ``tags`` is optional, but every record or none must have it; ``tags_key=None``
    ignores tags. ``tags_key`` may list several keys (``("tags", "ner_tags")``): the first one the first record
    has is the tag key of every record. Other keys are ignored. ``require_tags``: a first record without a tag
    key is an error naming the keys expected and the keys it has.
    """
    src = str(path)
    records = json_records(path, encoding)
    keys = (tags_key,) if isinstance(tags_key, str) else tuple(tags_key or ())
    sentences: list[Sentence] = []
    for lineno, record in records:
        want = None if not sentences else sentences[0].tags is not None
        if not sentences:  # the first record decides which of the keys holds the tags
            key = next((k for k in keys if isinstance(record, dict) and k in record), keys[0] if keys else None)
            if require_tags and isinstance(record, dict) and key not in record:
                expected = " or ".join(map(repr, keys))
                raise DataError(f"{src}:{lineno}: the record has no tag key {expected} (its keys: "
                                f"{', '.join(map(repr, record))}); put the tags under 'tags', or name the key with "
                                f"data.tags_column=KEY (the tags of a record are a list of strings, one per token)")
        sentences.append(_record_sentence(record, src, lineno, tokens_key, key, want))
    if not sentences:
        raise DataError(f"no sentences in {src} (no JSON records)")
    return sentences


def json_records(path: str | Path, encoding: str = "utf-8") -> Iterable[tuple[int, Any]]:
    """The records of a JSON Lines file (one object per line) or of a JSON array, each with its line number;
    a file that cannot be read or decoded, or a line that is not JSON, is a ``DataError`` naming file and line."""
    src = str(path)
    codec_name(encoding, src)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {src}: {e.strerror or e}") from None
    text = decode_text(data, encoding, src)
    return _json_array(text, src) if text.lstrip().startswith("[") else _json_lines(text, src)


def _json_lines(text: str, src: str) -> Iterator[tuple[int, Any]]:
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{src}:{lineno}: not valid JSON ({e.msg} at column {e.colno}); JSON Lines "
                                f"holds one object per line") from None
