"""Where the shared benchmark data lives, and the one rule for tests that need it.

``../shared/data`` beside the repository: a test that needs a file skips when it is absent, and fails when
``SEQTAG_REQUIRE_SHARED_DATA=1`` (as in CI), so that missing data can never pass silently.
"""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SQUAD_ZIP = SHARED_DATA / "squad" / "dev-v1.1.json.zip"


def shared_file(relative: str) -> Path:
    """``../shared/data/RELATIVE``, or skip (fail under SEQTAG_REQUIRE_SHARED_DATA=1) when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        if os.environ.get("SEQTAG_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"{path} is missing and SEQTAG_REQUIRE_SHARED_DATA=1")
        pytest.skip(f"{path} not found (shared data absent)")
    return path
