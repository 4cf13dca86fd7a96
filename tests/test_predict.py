"""seqtag.predict: batches bounded by a token budget, and predictions that do not depend on how they are batched."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.config import from_dict
from seqtag.predict import Tagger, load_tagger
from tests.tiny import sentences, tiny_config


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), max_size=60), batch_size=st.integers(1, 70),
       max_tokens=st.integers(1, 2000))
def test_batches_cover_every_window_once_within_both_budgets(lengths, batch_size, max_tokens):
    tagger = Tagger(None, None, [], "IOB2", 128, 16, batch_size=batch_size, max_tokens=max_tokens)
    batches = tagger.batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)  # longest first: each batch pads to its first window
    for b in batches:
        assert len(b) <= batch_size
        assert len(b) == 1 or lengths[b[0]] * len(b) <= max_tokens  # one window longer than the budget goes alone
        # greedy: the next window would not have fitted (else the batch would have taken it)
    for b, nxt in zip(batches, batches[1:]):
        assert len(b) == batch_size or lengths[b[0]] * (len(b) + 1) > max_tokens or not nxt


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
