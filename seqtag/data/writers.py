"""Write sentences as CoNLL columns or JSON Lines, refusing cells the reader could not read back."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from seqtag.data.conll import DOCSTART
from seqtag.data.sentence import Sentence, token_location
from seqtag.errors import ConfigError, DataError, where


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
