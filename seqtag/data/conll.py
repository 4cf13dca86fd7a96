"""Read CoNLL column files into :class:`~seqtag.data.sentence.Sentence` values; errors name ``file:line``.

CoNLL format, as read here: one token per line, columns separated by runs of whitespace (TAB or space; every
token line of a file must have the same number of columns), sentences separated by whitespace-only lines (WNUT-17
train uses lines holding a single TAB), ``-DOCSTART-`` lines skipped (they also end a sentence), LF or CRLF line
ends, an optional UTF-8 byte-order mark. Tokens therefore cannot contain whitespace. A control character other
than TAB, LF, CR, VT and FF is an error (:func:`seqtag.data.words.check_text`).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

from seqtag.data.files import check_readable_file, codec_name, decode_error
from seqtag.data.sentence import Sentence
from seqtag.data.words import check_text
from seqtag.errors import DataError

DOCSTART = "-DOCSTART-"


def _column_index(column: int, n_columns: int, name: str, loc: str) -> int:
    index = column + n_columns if column < 0 else column
    if not 0 <= index < n_columns:
        raise DataError(f"{loc}: {name}={column} but the line has only {n_columns} column(s); set {name} to a column "
                        f"that exists (0-based, negative counts from the end)")
    return index


def _has_mixed_separators(line: str) -> bool:
    inner = line.strip()
    return "\t" in inner and " " in inner


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
    codec = codec_name(encoding, src)
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
            check_text(line, f"{src}:{lineno}", path=src, encoding=encoding)
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
    match the file. A byte that is not ``encoding``, or a control character (:func:`seqtag.data.words.check_text`),
    raises the same :class:`DataError` as the other readers.
    """
    src = str(path)
    codec_name(encoding, src)
    check_readable_file(path)
    with open(path, "rb") as f:
        offset = 0
        for lineno, raw in enumerate(f, start=1):
            line_start, offset = offset, offset + len(raw)
            text = _decode(raw, encoding, src, lineno, line_start).rstrip("\r\n")
            check_text(text, f"{src}:{lineno}", path=src, encoding=encoding)
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
