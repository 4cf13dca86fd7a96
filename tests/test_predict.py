"""seqtag.predict: predictions that do not depend on how they are batched."""

import pytest

from seqtag.config import from_dict
from seqtag.predict import load_tagger
from tests.tiny import sentences, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from seqtag.train import train

    tmp = tmp_path_factory.mktemp("predict")
    return train(from_dict(tiny_config(tmp, n_train=64, train={"epochs": 4, "batch_size": 8, "learning_rate": 3e-3})))


def test_predictions_do_not_depend_on_batching(run):
    sents = [[w for w, _ in s] for s in sentences(40, seed=7)]
    sents.append(sents[0] * 9)  # longer than max_length: several windows
    reference = load_tagger(run, batch_size=1).tag(sents)
    assert any(t != "O" for tags, _ in reference for t in tags)  # the model tags something
    for batch_size, max_tokens in ((64, 4096), (7, 50), (64, 1)):
        got = load_tagger(run, batch_size=batch_size, max_tokens=max_tokens).tag(sents)
        assert [tags for tags, _ in got] == [tags for tags, _ in reference]
        for (_, p), (_, q) in zip(got, reference):
            assert p == pytest.approx(q, abs=1e-5)
