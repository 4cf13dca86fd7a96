"""Read and write NER data: CoNLL column files, JSON Lines, Hugging Face datasets.

Every reader returns :class:`Sentence` values and raises :class:`~seqtag.errors.DataError` naming ``file:line``
and what to do when the input is malformed. :func:`validate_sentences` checks the tags against a tag scheme
(:mod:`seqtag.data.schemes`) and either stops at the first invalid tag or repairs them.

CoNLL format, as read here: one token per line, columns separated by runs of whitespace (TAB or space; every
token line of a file must have the same number of columns), sentences separated by whitespace-only lines (WNUT-17
train uses lines holding a single TAB), ``-DOCSTART-`` lines skipped (they also end a sentence), LF or CRLF line
ends, an optional UTF-8 byte-order mark. Tokens therefore cannot contain whitespace.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from seqtag.data.files import check_readable_file, decode_error, decode_text
from seqtag.data.hub_datasets import load_split
from seqtag.data.schemes import _BadTag, check_scheme, find_problems, parse_tag, repair
from seqtag.errors import ConfigError, DataError, where

DOCSTART = "-DOCSTART-"
ON_INVALID = ("error", "repair")


@dataclass(frozen=True)
class Sentence:
    """One sentence: its tokens, its tags (``None`` for untagged input) and where it came from.

    ``line`` is the 1-based line of the first token in a CoNLL or JSON Lines file (the record's first line in a
    JSON list), or the 0-based row + 1 of a Hugging Face dataset.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None
    source: str = ""
    line: int = 0

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise DataError(
                f"{where(self.source or '<input>', self.line)}: {len(self.tokens)} tokens but {len(self.tags)} tags"
            )


def token_location(sentence: Sentence, index: int) -> str:
    """Where token ``index`` of ``sentence`` is, for error messages.

    CoNLL files have one token per line, so token ``i`` is on line ``line + i``. JSON records give the record's
    line and the token index; Hugging Face datasets (source ``"NAME[SPLIT]"``) give the row. The kind is told
    from the source name (``.json``/``.jsonl`` suffix, ``]`` at the end).

    >>> token_location(Sentence(("a", "b"), ("O", "O"), "train.txt", 10), 1)
    'train.txt:11'
    >>> token_location(Sentence(("a", "b"), ("O", "O"), "train.jsonl", 10), 1)
    'train.jsonl:10, token 1'
    """
    src = sentence.source or "<input>"
    if src.endswith("]"):
        return f"{src} row {sentence.line - 1}, token {index}"
    if src.endswith((".json", ".jsonl")):
        return f"{src}:{sentence.line}, token {index}"
    return f"{src}:{sentence.line + index}"


# ----------------------------------------------------------------------------------------------------- CoNLL


def _column_index(column: int, n_columns: int, name: str, loc: str) -> int:
    index = column + n_columns if column < 0 else column
    if not 0 <= index < n_columns:
        raise DataError(f"{loc}: {name}={column} but the line has only {n_columns} column(s); set {name} to a column "
                        f"that exists (0-based, negative counts from the end)")
    return index


def _has_mixed_separators(line: str) -> bool:
    inner = line.strip()
    return "\t" in inner and " " in inner


def _codec(encoding: str, src: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r} for {src}; use a Python codec name such as utf-8, latin-1 "
                          f"or cp1252") from None


def _decode(raw: bytes, encoding: str, src: str, lineno: int, line_start: int) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise decode_error(src, lineno, raw[e.start], line_start + e.start, encoding) from None


def iter_conll(
    path: str | Path, token_column: int = 0, tag_column: int | None = -1, encoding: str = "utf-8"
) -> Iterator[Sentence]:
    """Stream the sentences of a CoNLL column file (see the module docstring for the format).

    ``token_column`` and ``tag_column`` are 0-based column indices (negative counts from the end);
    ``tag_column=None`` reads untagged text (``Sentence.tags is None``). ``encoding`` must be ASCII-compatible
    (UTF-8, Latin-1, cp1252). Errors are raised when the bad line is reached, so a stream may fail part-way.
    An empty file yields nothing; :func:`read_conll` treats that as an error.
    """
    src = str(path)
    codec = _codec(encoding, src)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"cannot read {src}: {e.strerror or e}") from None
    with f:
        n_columns = 0  # the file's column count, set by its first token line
        norm_line, norm_mixed = 0, False
        token_i = tag_i = 0
        tokens: list[str] = []
        tags: list[str] = []
        first_line = 0
        offset = 0
        for lineno, raw in enumerate(f, start=1):
            line_start, offset = offset, offset + len(raw)
            if lineno == 1 and codec == "utf-8" and raw.startswith(codecs.BOM_UTF8):
                raw, line_start = raw[len(codecs.BOM_UTF8):], line_start + len(codecs.BOM_UTF8)
            line = _decode(raw, encoding, src, lineno, line_start)
            fields = line.split()
            if not fields or fields[0] == DOCSTART:
                if tokens:
                    yield Sentence(tuple(tokens), tuple(tags) if tag_column is not None else None, src, first_line)
                    tokens, tags = [], []
                continue
            if not n_columns:
                n_columns, norm_line, norm_mixed = len(fields), lineno, _has_mixed_separators(line)
                loc = f"{src}:{lineno}"
                token_i = _column_index(token_column, n_columns, "token_column", loc)
                if tag_column is not None:
                    tag_i = _column_index(tag_column, n_columns, "tag_column", loc)
                    if tag_i == token_i:
                        raise DataError(
                            f"{loc}: the line has {n_columns} column(s), so token_column={token_column} and "
                            f"tag_column={tag_column} name the same column; a tagged file needs a token and a tag "
                            f"column (pass tag_column=None to read untagged text)"
                        )
            elif len(fields) != n_columns:
                raise _column_count_error(src, lineno, len(fields), _has_mixed_separators(line), n_columns,
                                          norm_line, norm_mixed)
            if not tokens:
                first_line = lineno
            tokens.append(fields[token_i])
            if tag_column is not None:
                tags.append(fields[tag_i])
        if tokens:
            yield Sentence(tuple(tokens), tuple(tags) if tag_column is not None else None, src, first_line)


def iter_text_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Stream ``(line_number, text)`` for each line of a plain text file (prediction input: one text per line).

    Line ends (LF or CRLF) and a leading byte-order mark are removed; blank lines are yielded too, so line numbers
    match the file. A byte that is not ``encoding`` raises the same :class:`DataError` as the other readers.
    """
    src = str(path)
    _codec(encoding, src)
    check_readable_file(path)
    with open(path, "rb") as f:
        offset = 0
        for lineno, raw in enumerate(f, start=1):
            line_start, offset = offset, offset + len(raw)
            text = _decode(raw, encoding, src, lineno, line_start).rstrip("\r\n")
            yield lineno, text.removeprefix("\ufeff") if lineno == 1 else text


def _column_count_error(
    src: str, lineno: int, n: int, mixed: bool, n_columns: int, norm_line: int, norm_mixed: bool
) -> DataError:
    head = f"{src}:{lineno}: {n} column(s) here but {n_columns} on line {norm_line}, the file's first token line"
    if mixed or norm_mixed:
        which = f"line {lineno}" if mixed else f"line {norm_line}"
        return DataError(f"{head}; {which} mixes TAB and space separators, which changes the column count. Use one "
                         f"separator (TAB or space) throughout the file; tokens cannot contain whitespace")
    if n < n_columns:
        return DataError(f"{head}: a column (the tag?) is missing. Every token line needs all {n_columns} columns")
    return DataError(f"{head}. Every token line needs the same columns; a token that contains whitespace splits "
                     f"into two columns")


def read_conll(
    path: str | Path, token_column: int = 0, tag_column: int | None = -1, encoding: str = "utf-8"
) -> list[Sentence]:
    """Read all sentences of a CoNLL column file; raise :class:`DataError` when it holds none.

    Same arguments as :func:`iter_conll`.
    """
    sentences = list(iter_conll(path, token_column, tag_column, encoding))
    if not sentences:
        raise DataError(f"no sentences in {path} (it is empty or holds only -DOCSTART- and blank lines)")
    return sentences


# ------------------------------------------------------------------------------------------------------ JSON


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
    _codec(encoding, src)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {src}: {e.strerror or e}") from None
    text = decode_text(data, encoding, src)
    if text.lstrip().startswith("["):
        records: Iterable[tuple[int, Any]] = _json_array(text, src)
    else:
        records = _json_lines(text, src)
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


def _json_lines(text: str, src: str) -> Iterator[tuple[int, Any]]:
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{src}:{lineno}: not valid JSON ({e.msg} at column {e.colno}); JSON Lines "
                                f"holds one object per line") from None


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


def check_tags(sentences: Iterable[Sentence], hint: str = "") -> None:
    """Raise :class:`DataError` at the ``file:line`` of the first malformed tag (``Disease``, ``B-``, ``B_PER``).

    A tag is ``O`` or ``PREFIX-TYPE`` (:func:`~seqtag.data.schemes.parse_tag`); ``hint`` ends the message.
    Untagged sentences pass.
    """
    for s in sentences:
        for i, tag in enumerate(s.tags or ()):
            try:
                parse_tag(tag)
            except DataError as e:
                raise DataError(f"{token_location(s, i)}: {e}. Fix the tag in the file{hint}") from None


# ----------------------------------------------------------------------------------------------------- write


def _open_for_write(path_or_file: str | Path | IO[str]) -> tuple[IO[str], bool]:
    if hasattr(path_or_file, "write"):
        return path_or_file, False  # type: ignore[return-value]
    return open(path_or_file, "w", encoding="utf-8", newline="\n"), True


def write_conll(sentences: Iterable[Sentence], path_or_file: str | Path | IO[str], sep: str = "\t") -> None:
    """Write ``token<sep>tag`` lines (``token`` alone for untagged sentences), a blank line after each sentence.

    Raises :class:`DataError` for what CoNLL cannot hold: an empty sentence, an empty token or tag, whitespace
    inside a token or tag, a ``-DOCSTART-`` token, or a mix of tagged and untagged sentences.
    """
    if sep not in ("\t", " "):
        raise ConfigError(f"sep={sep!r}: CoNLL columns are separated by '\\t' or ' '")
    f, close = _open_for_write(path_or_file)
    try:
        tagged: bool | None = None
        for s in sentences:
            if tagged is None:
                tagged = s.tags is not None
            elif tagged != (s.tags is not None):
                raise DataError(f"{where(s.source or '<input>', s.line)}: mixes tagged and untagged sentences; "
                                f"a CoNLL file has the same columns on every line")
            if not s.tokens:
                raise DataError(f"{where(s.source or '<input>', s.line)}: an empty sentence cannot be written")
            for i, tok in enumerate(s.tokens):
                _check_cell(tok, "token", s, i)
                line = tok
                if s.tags is not None:
                    _check_cell(s.tags[i], "tag", s, i)
                    line = f"{tok}{sep}{s.tags[i]}"
                f.write(line + "\n")
            f.write("\n")
    finally:
        if close:
            f.close()


def _check_cell(value: str, what: str, s: Sentence, i: int) -> None:
    if not value or any(c.isspace() for c in value) or (what == "token" and value == DOCSTART):
        raise DataError(f"{token_location(s, i)}: {what} {value!r} cannot be written as a CoNLL column (it is empty, "
                        f"holds whitespace or is {DOCSTART}); write JSON Lines instead (write_jsonl)")


def write_jsonl(
    sentences: Iterable[Sentence], path_or_file: str | Path | IO[str], tokens_key: str = "tokens",
    tags_key: str = "tags",
) -> None:
    """Write one ``{"tokens": [...], "tags": [...]}`` object per line (no ``tags`` key for untagged sentences)."""
    f, close = _open_for_write(path_or_file)
    try:
        for s in sentences:
            record: dict[str, list[str]] = {tokens_key: list(s.tokens)}
            if s.tags is not None:
                record[tags_key] = list(s.tags)
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        if close:
            f.close()


# -------------------------------------------------------------------------------------------------- validate


def validate_sentences(
    sentences: Iterable[Sentence], scheme: str, on_invalid: str = "error"
) -> tuple[list[Sentence], int]:
    """Check every sentence's tags against ``scheme`` (strictly, :func:`~seqtag.data.schemes.find_problems`).

    ``on_invalid="error"``: raise :class:`DataError` at the first invalid tag, naming ``source:line`` of the token,
    the rule it breaks and the fix. ``on_invalid="repair"``: rewrite invalid sequences with
    :func:`~seqtag.data.schemes.repair` (the conlleval reading, e.g. an IOB2 ``I-X`` after ``O`` becomes ``B-X``).
    Malformed tags and prefixes the scheme does not use raise in both modes. Untagged sentences pass unchanged.

    Returns ``(sentences, n_repaired_tokens)``; the count is 0 under ``"error"``.
    """
    check_scheme(scheme)
    if on_invalid not in ON_INVALID:
        raise ConfigError(f"on_invalid={on_invalid!r}; choose one of {', '.join(ON_INVALID)}")
    sentences = list(sentences)
    out: list[Sentence] = []
    n_repaired = 0
    for s in sentences:
        if s.tags is None:
            out.append(s)
            continue
        problems = find_problems(s.tags, scheme)
        if not problems:
            out.append(s)
            continue
        if on_invalid == "error":
            i, msg = problems[0]
            raise DataError(
                f"{token_location(s, i)}: invalid {scheme} tag sequence: {msg}. Fix the file, or set "
                f"data.on_invalid=repair to read it the way conlleval does (e.g. an I-X that starts a span becomes "
                f"B-X in IOB2), or check data.scheme"
            )
        try:
            fixed = repair(s.tags, scheme)
        except _BadTag as e:
            raise DataError(f"{token_location(s, e.index)}: {e}") from None
        n_repaired += sum(a != b for a, b in zip(fixed, s.tags, strict=True))
        out.append(Sentence(s.tokens, tuple(fixed), s.source, s.line))
    return out, n_repaired


# ------------------------------------------------------------------------------------------------------- hub


def load_hub_dataset(
    name_or_path: str | Path, split: str, tokens_column: str = "tokens", tags_column: str | None = "ner_tags",
    config_name: str | None = None,
) -> list[Sentence]:
    """Load one split of a Hugging Face dataset as sentences.

    The split is opened by :func:`seqtag.data.hub_datasets.load_split` (a ``save_to_disk`` directory or a Hub
    dataset). Integer tags with ``ClassLabel`` features are mapped to their names; string tags are used as they
    are. ``tags_column=None`` reads untagged data. Sentences get ``source="NAME[SPLIT]"`` and ``line = row + 1``.
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
