"""The run directory's lock: ``flock`` on ``.seqtag.lock``, released by the OS when the process ends."""

from __future__ import annotations

import os
from pathlib import Path

from seqtag.errors import SeqtagError

LOCK_FILE = ".seqtag.lock"


def lock_run_dir(run_dir: Path):
    """An exclusive lock on ``run_dir`` (``flock`` on ``.seqtag.lock``, which holds the owner's PID), as an open
    file to close when done. The operating system releases it when the process ends, ``kill -9`` included, so
    a lock is never stale. Raises :class:`SeqtagError` naming the PID when another process holds it."""
    import fcntl

    f = open(Path(run_dir) / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "unknown"
        f.close()
        raise SeqtagError(f"{run_dir} is in use: process {pid} is training in it. Wait for it to finish, stop it "
                          "(it saves a resumable checkpoint on Ctrl-C or SIGTERM), or choose another "
                          "train.output_dir") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def lock_holder(run_dir: Path) -> int | None:
    """The PID of the process training in ``run_dir`` now, or None when none is."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    try:
        f = lock_run_dir(run_dir)
    except SeqtagError:
        try:
            return int(path.read_text().strip())
        except ValueError:
            return -1
    f.close()
    return None
