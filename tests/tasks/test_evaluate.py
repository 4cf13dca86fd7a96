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


def test_split_test_scores_the_runs_own_test_split_as_a_file_of_those_sentences(crf_run, tmp_path, caplog):
    """--split reads data.test as training did, data.max_eval_examples included: the scores training wrote, and
    those of --data on a file holding only the 3 sentences it keeps."""
    from seqtag.tasks.evaluate import evaluate_run

    run, dev = crf_run
    test = dev.parent / "test.txt"
    metrics = json.loads((run / "metrics.json").read_text())
    by_split = evaluate_run(run, split="test")
    assert sentences_scored(by_split) == 3
    assert f"scoring the first 3 of the 5 sentences in data.test ({test})" in caplog.text
    kept = tmp_path / "test-kept.txt"
    kept.write_text("\n\n".join(test.read_text().split("\n\n")[:3]) + "\n\n", encoding="utf-8")
    by_file = evaluate_run(run, kept)
    assert sentences_scored(by_file) == 3
    assert by_split.scores.to_dict() == by_file.scores.to_dict() == metrics["test"]
    assert by_split.predictions == by_file.predictions
    assert evaluate_run(run, split="dev").scores.to_dict() == metrics["dev"]
    # data.* overrides apply to the split as to a file
    assert sentences_scored(evaluate_run(run, split="test", overrides=["data.max_eval_examples=null"])) == 5


def test_split_needs_a_configured_split_and_excludes_data(crf_run):
    from seqtag.errors import ConfigError
    from seqtag.runs import CONFIG_FILE
    from seqtag.tasks.evaluate import evaluate_run

    run, dev = crf_run
    with pytest.raises(ConfigError) as err:
        evaluate_run(run, split="test", overrides=["data.test=null"])
    assert str(err.value) == (f"--split test: data.test is null in {run / CONFIG_FILE}, so the run has no test split "
                              "to score; score a labelled file with --data FILE instead")
    for source in ({}, {"data_path": dev, "split": "test"}):
        with pytest.raises(ConfigError, match=r"a labelled file \(--data FILE\) or one of the run's own splits "
                                              r"\(--split dev or --split test\); give exactly one of them"):
            evaluate_run(run, **source)
    with pytest.raises(ConfigError, match="--split train: choose dev or test"):
        evaluate_run(run, split="train")
