"""Atomic writes and JSON reads: a file is written beside its target and renamed over it, with the
permissions a new file gets; a damaged JSON file is an error that names it."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from seqtag.errors import SeqtagError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_permissions(path: Path) -> None:
    """Give ``path`` the permissions a new file gets (0666 less the umask): some writers (safetensors) create
    0600 files, which colleagues on a shared server could not read."""
    os.chmod(path, 0o666 & ~_umask())


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one. The file gets
    the permissions any new file gets (0666 less the umask), like the files transformers writes beside it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600: colleagues on a shared server could not read it
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: str | Path):
    """Open ``path`` for writing text through ``PATH.partial`` beside it: renamed over ``path`` when the block
    ends normally, deleted when it raises (an error or an interrupt never leaves a half-written output)."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SeqtagError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise SeqtagError(f"{path} is not valid JSON ({e}); the run directory is damaged") from None
