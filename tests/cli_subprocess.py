"""Run ``python -m seqtag`` in a subprocess, as a user would, and check its answer to a user error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_seqtag(*argv: object, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "seqtag", *map(str, argv)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def listing(root: Path) -> list[str]:
    """Every path under ``root``, relative, sorted: compare before and after to see that nothing was left behind."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


def user_error(res: subprocess.CompletedProcess, command: str) -> str:
    """Check exit code 2, no traceback and a one-paragraph error on stderr; return the message."""
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    head = f"seqtag {command}: error: "
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(head)]
    assert len(errors) == 1, res.stderr
    assert errors[0] == lines[-1], res.stderr  # the error is the last thing said, on one line
    return errors[0][len(head):]
