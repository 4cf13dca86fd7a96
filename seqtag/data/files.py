"""Checks on a data file before it is read (it exists, it is a file and not a directory, it can be opened), and
the one message for bytes that are not in the file's encoding.

Only the first byte is read, so the check is cheap on any file size (``seqtag validate`` runs it on every
configured file).
"""

from __future__ import annotations

import codecs
from pathlib import Path

from seqtag.errors import ConfigError, DataError


def check_readable_file(path: str | Path, key: str | None = None) -> Path:
    """Return ``Path(path)`` if it is a file that can be opened for reading; else raise :class:`DataError`.

    ``key`` (e.g. ``"data.train"``) is the config key that named the file; the message then says how to change
    it. A directory is reported as one, with the first few names inside it.
    """
    p = Path(path)
    head = f"{key}: " if key else ""
    fix = f"; fix the path in the config or override it with {key}=PATH" if key else ""
    if p.is_dir():
        try:
            inside = sorted(c.name for c in p.iterdir())
        except OSError:
            inside = []
        holds = f"it holds {', '.join(inside[:4])}{', ...' if len(inside) > 4 else ''}" if inside else "it is empty"
        in_key = f" in {key}" if key else ""
        raise DataError(f"{head}{p} is a directory, not a file ({holds}); name a data file{in_key}")
    if not p.exists():
        raise DataError(f"{head}file {p} does not exist{fix}")
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as e:
        raise DataError(f"{head}cannot read {p}: {e.strerror or e}{fix}") from None
    return p


def decode_error(src: str, lineno: int, byte: int, offset: int, encoding: str) -> DataError:
    """The error for a byte that is not valid ``encoding``, with the two ways out: name the encoding or convert.

    >>> print(decode_error("t.txt", 3, 0xe9, 6, "utf-8"))  # doctest: +NORMALIZE_WHITESPACE
    t.txt:3: byte 0xe9 at byte offset 6 (0-based, from the start of the file) is not valid utf-8. If the file is in
    another encoding, name it: data.encoding=latin-1 in a config, --encoding latin-1 on the command line (seqtag
    stats, seqtag predict), cp1252 for Windows files; or convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8 t.txt > t.utf8.txt`
    """
    return DataError(
        f"{src}:{lineno}: byte 0x{byte:02x} at byte offset {offset} (0-based, from the start of the file) is not "
        f"valid {encoding}. If the file is in another encoding, name it: data.encoding=latin-1 in a config, "
        f"--encoding latin-1 on the command line (seqtag stats, seqtag predict), cp1252 for Windows files; or convert it to UTF-8, e.g. "
        f"`iconv -f latin1 -t utf-8 {src} > {Path(src).stem}.utf8{Path(src).suffix}`"
    )


def decode_text(data: bytes, encoding: str, src: str) -> str:
    """``data`` decoded (a UTF-8 byte-order mark dropped), or :func:`decode_error` at the first bad byte's line.

    >>> decode_text(b"\\xef\\xbb\\xbfa\\nb", "utf-8", "x")
    'a\\nb'
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise decode_error(src, data.count(b"\n", 0, e.start) + 1, data[e.start], e.start, encoding) from None


def codec_name(encoding: str, src: str) -> str:
    """The codec's canonical name; a :class:`ConfigError` naming ``src`` for an unknown encoding."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r} for {src}; use a Python codec name such as utf-8, latin-1 "
                          f"or cp1252") from None
