"""seqtag.tasks.evaluate: a finished run scored on a file as training scored it (device, data.max_eval_examples,
decoding warnings)."""

import json

import pytest

from seqtag.config import from_dict
from tests.tiny import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def crf_run(tmp_path_factory):
    """A CRF run whose dev/test scores cover the first 3 of the 7 dev sentences (data.max_eval_examples=3)."""
    from seqtag.training.loop import train

    tmp = tmp_path_factory.mktemp("evaluate")
    cfg = tiny_config(tmp, model={"head": "crf"}, data={"max_eval_examples": 3}, train={"epochs": 1})
    return train(from_dict(cfg)), tmp / "dev.txt"


def sentences_scored(evaluation) -> int:
    return sum(row[2] is None for row in evaluation.predictions)  # NER rows: ("", "", None) after each sentence


def test_the_accelerator_comes_first_and_the_model_is_loaded_on_its_device(crf_run, monkeypatch):
    """Under `accelerate launch` every process must load the model onto its own GPU, not each onto the first."""
    import seqtag.tasks.evaluate as evaluate

    run, dev = crf_run
    calls = []
    real_accelerator, real_load = evaluate.make_accelerator, evaluate.load_finished_run

    def make_accelerator(*args, **kwargs):
        accelerator = real_accelerator(*args, **kwargs)
        calls.append(("accelerator", str(accelerator.device)))
        return accelerator

    def load_finished_run(run_dir, device=None):
        calls.append(("model", device))
        return real_load(run_dir, device)

    monkeypatch.setattr(evaluate, "make_accelerator", make_accelerator)
    monkeypatch.setattr(evaluate, "load_finished_run", load_finished_run)
    evaluate.evaluate_run(run, dev)
    (first, device), second = calls
    assert first == "accelerator" and second == ("model", device)  # "cpu" here, "cuda:RANK" under accelerate launch


def test_evaluate_keeps_the_runs_max_eval_examples_unless_told_otherwise(crf_run, caplog):
    from seqtag.tasks.evaluate import evaluate_run

    run, dev = crf_run
    evaluation = evaluate_run(run, dev)
    assert sentences_scored(evaluation) == 3
    assert evaluation.scores.to_dict() == json.loads((run / "metrics.json").read_text())["dev"]
    assert (f"scoring the first 3 of the 7 sentences in {dev}: the run sets data.max_eval_examples=3, as its dev/test "
            "scores did; add data.max_eval_examples=null to score them all") in caplog.messages
    assert sentences_scored(evaluate_run(run, dev, overrides=["data.max_eval_examples=null"])) == 7
    assert sentences_scored(evaluate_run(run, dev, overrides=["data.max_eval_examples=5"])) == 5


def test_a_crf_run_decoded_by_argmax_is_warned_about(crf_run, caplog):
    from seqtag.inference.predict import load_tagger
    from seqtag.tasks.evaluate import evaluate_run

    run, dev = crf_run

    def warnings():
        found = [m for m in caplog.messages if "a CRF run decoded by argmax" in m]
        caplog.clear()
        return found

    evaluate_run(run, dev, decoding="argmax")
    (message,) = warnings()
    assert message.startswith(f"{run}: a CRF run decoded by argmax: the CRF's emission scores were trained together "
                              "with its transitions and are not a tagger on their own")
    assert "Decode it with viterbi (--decoding viterbi, predict.decoding=viterbi)" in message
    load_tagger(run, decoding="argmax")
    assert len(warnings()) == 1
    evaluate_run(run, dev)
    load_tagger(run)
    assert warnings() == []  # viterbi, the CRF run's default
