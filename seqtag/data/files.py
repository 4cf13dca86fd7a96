"""Checks on a data file before it is read: it exists, it is a file and not a directory, it can be opened.

Only the first byte is read, so the check is cheap on any file size (``seqtag validate`` runs it on every
configured file).
"""

from __future__ import annotations

from pathlib import Path

from seqtag.errors import DataError


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
