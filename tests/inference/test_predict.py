"""seqtag.inference.predict: predictions that do not depend on how they are batched."""

import json

import pytest

from seqtag.config import from_dict
from seqtag.inference.predict import load_tagger
from tests.tiny import sentences, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from seqtag.training.loop import train

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


@pytest.fixture(scope="module")
def undertrained(tmp_path_factory):
    """A softmax run stopped early (one epoch of 24 sentences): its argmax tags many sentences invalidly."""
    from seqtag.training.loop import train

    tmp = tmp_path_factory.mktemp("under")
    return train(from_dict(tiny_config(tmp, train={"epochs": 1, "batch_size": 8, "learning_rate": 1e-3})))


def test_viterbi_on_a_softmax_run_never_outputs_an_invalid_sequence(undertrained):
    from seqtag.data.schemes import find_problems
    from seqtag.inference.engine import count_invalid

    sents = [[w for w, _ in s] for s in sentences(40, seed=7)]
    sents.append(sents[0] * 9)  # several windows
    argmax = [tags for tags, _ in load_tagger(undertrained, decoding="argmax").tag(sents)]
    assert count_invalid(argmax, "IOB2") >= 20  # measured: 39 of 41
    viterbi = load_tagger(undertrained, decoding="viterbi").tag(sents)
    assert sum(bool(find_problems(tags, "IOB2")) for tags, _ in viterbi) == 0
    assert any(t != "O" for tags, _ in viterbi for t in tags)  # valid because it tags entities well, not none
    metrics = json.loads((undertrained / "metrics.json").read_text())
    assert metrics["dev"]["invalid_sequences"] >= 5  # measured: 7 of 7 dev sentences


def test_a_run_keeps_the_decoding_its_record_names(undertrained, tmp_path):
    """A run trained when argmax was the linear head's default saved no predict.decoding; its run_info.json
    says argmax, and loading it keeps argmax (its scores' decoding), unless the caller asks for another."""
    import shutil

    from seqtag.inference.engine import load_finished_run

    old = tmp_path / "old"
    shutil.copytree(undertrained, old)
    assert "predict" not in (old / "seqtag_config.yaml").read_text()
    info = json.loads((old / "run_info.json").read_text())
    assert info["decoding"] == "viterbi"  # the default now
    (old / "run_info.json").write_text(json.dumps({**info, "decoding": "argmax"}))
    assert load_finished_run(old).cfg.predict.decoding == "argmax"
    assert load_finished_run(undertrained).cfg.predict.decoding == "viterbi"
    sents = [[w for w, _ in s] for s in sentences(40, seed=7)]
    assert [t for t, _ in load_tagger(old).tag(sents)] == [t for t, _ in load_tagger(undertrained, decoding="argmax").tag(sents)]
