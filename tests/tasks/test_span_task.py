"""Tests for seqtag.tasks.span (model.head=span on the training loop) and the config rules of the span head: what
it refuses at load, the targets and loss of a batch, a tiny run trained end to end and read back by evaluate,
predict, validate, stats, push and export, and the best weights reloaded with the head."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from seqtag.config import from_dict
from seqtag.data.schemes import spans
from seqtag.errors import ConfigError, SeqtagError
from seqtag.losses import get_loss
from seqtag.tasks.span import loss_step, span_targets
from tests.tiny import sentences, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


def span_config(tmp_path, **overrides) -> dict:
    """The tiny NER experiment as nested span data: PER and LOC, and PLACE from a LOC to the sentence's end."""
    cfg = tiny_config(tmp_path, n_train=0, n_dev=0, n_test=0)
    for split, n, seed in (("train", 24, 1), ("dev", 7, 2)):
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for sent in sentences(n, seed):
                words = [w for w, _ in sent]
                ents = [[a, b, t] for t, a, b in spans([t for _, t in sent], "IOB2")]
                ents += [[a, len(words) - 1, "PLACE"] for a, _, t in list(ents) if t == "LOC"]
                f.write(json.dumps({"tokens": words, "entities": ents}) + "\n")
    cfg["data"] = {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl"), "max_length": 32,
                   "stride": 8}
    cfg["model"].update(head="span", max_span_length=4)
    cfg["loss"] = {"name": "span_multilabel"}
    for section, values in overrides.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


# ---------------------------------------------------------------------------------------------------------------
# config


def test_heads_and_losses_of_the_other_kind_are_refused_at_load(tmp_path):
    cfg = span_config(tmp_path)
    assert from_dict(cfg).predict.decoding == "nested"
    with pytest.raises(ConfigError, match="model.head=span scores candidate spans, so it needs a span loss"):
        from_dict({**cfg, "loss": {"name": "focal"}})
    token = {**cfg, "model": {**cfg["model"], "head": "linear"}}
    with pytest.raises(ConfigError, match="loss.name=span_multilabel scores the candidate spans of model.head=span"):
        from_dict(token)
    with pytest.raises(ConfigError, match="loss.name=span_bce .* but task: qa"):
        from_dict({**token, "task": "qa", "data": {"train": "x.json", "format": "squad", "max_length": 384},
                   "loss": {"name": "span_bce"}})
    with pytest.raises(ConfigError, match="predict.decoding=viterbi is for the token heads"):
        from_dict({**cfg, "predict": {"decoding": "viterbi"}})
    with pytest.raises(ConfigError, match="predict.decoding=flat is for model.head=span"):
        from_dict({**token, "loss": {"name": "cross_entropy"}, "predict": {"decoding": "flat"}})
    with pytest.raises(ConfigError, match="train.dynamics"):
        from_dict({**cfg, "train": {**cfg["train"], "dynamics": True}})
    with pytest.raises(ConfigError, match="model.max_span_length"):
        from_dict({**cfg, "model": {**cfg["model"], "max_span_length": 0}})


# ---------------------------------------------------------------------------------------------------------------
# a batch


def test_loss_step_sums_the_loss_of_every_window_and_type():
    b, c, w, length = 2, 3, 4, 2
    logits = torch.randn(b, c, w, length, dtype=torch.float64)
    mask = torch.ones(b, w, length, dtype=torch.bool)
    mask[:, 3, 1] = False
    mask[1, 2:] = False  # a shorter window
    logits = logits.masked_fill(~mask[:, None], float("-inf"))

    class Model(torch.nn.Module):
        def forward(self, input_ids, attention_mask, word_positions):
            return {"logits": logits, "mask": mask}

    gold = torch.tensor([[0, 1, 2, 3, 0, 0], [1, 0, 1, -1, -1, -1]])  # window 0: (0-1, type 2), (3, type 0)
    batch = {"input_ids": torch.zeros(2, 5, dtype=torch.long), "attention_mask": torch.ones(2, 5),
             "word_positions": torch.zeros(2, 4, dtype=torch.long), "gold_spans": gold}
    loss = get_loss("span_multilabel")
    total, n, flat_logits, flat_targets = loss_step(Model(), batch, loss)
    targets = span_targets(gold, mask, c)
    assert targets[0, 2, 0, 1] == 1 and targets[0, 0, 3, 0] == 1 and targets[1, 1, 1, 0] == 1
    assert int((targets == 1).sum()) == 3 and bool((targets[~mask[:, None].expand_as(targets)] == -100).all())
    expected = sum(loss(logits[i, t].reshape(1, -1), targets[i, t].reshape(1, -1), reduction="sum")
                   for i in range(b) for t in range(c))
    torch.testing.assert_close(total, expected)
    assert int(n) == 2 and flat_logits.shape == (6, 8) and flat_targets.shape == (6, 8)


# ---------------------------------------------------------------------------------------------------------------
# a tiny run, end to end


@pytest.fixture(scope="module")
def span_run(tmp_path_factory):
    from seqtag.training.loop import train

    tmp = tmp_path_factory.mktemp("span")
    cfg = span_config(tmp, train={"epochs": 2})
    return tmp, train(from_dict(cfg))


def test_a_span_run_saves_the_head_beside_the_plain_encoder_and_records_it(span_run):
    from seqtag.runs import read_metrics, read_run_info

    _, run = span_run
    assert (run / "span_head.safetensors").is_file() and (run / "model.safetensors").is_file()
    assert json.loads((run / "config.json").read_text())["architectures"] == ["BertModel"]
    info = read_run_info(run)
    assert (info.model_head, info.decoding, info.labels) == ("span", "nested", ["LOC", "PER", "PLACE"])
    assert info.windows["train"].examples == 24 and info.data_notes["train"]["gold_spans_longer"] == 0
    dev = read_metrics(run)["dev"]
    assert set(dev.per_type) <= {"LOC", "PER", "PLACE"} and 0.0 <= dev.f1 <= 1.0 and dev.accuracy is None


def test_evaluate_scores_the_run_as_training_did(span_run, tmp_path):
    from seqtag.runs import read_metrics
    from seqtag.tasks.evaluate import evaluate_run

    tmp, run = span_run
    result = evaluate_run(run, tmp / "dev.jsonl")
    assert result.scores == read_metrics(run)["dev"]  # the saved weights are the ones training scored
    first = result.predictions[f"{tmp / 'dev.jsonl'}:1"]
    assert first["gold"] and all(len(p) == 4 for p in first["predicted"])
    flat = evaluate_run(run, tmp / "dev.jsonl", decoding="flat").predictions
    for row in flat.values():  # flat: no two predicted spans share a word
        words = [i for a, b, *_ in row["predicted"] for i in range(a, b)]
        assert len(words) == len(set(words))
    with pytest.raises(ConfigError, match="predict.decoding=argmax is for the token heads"):
        evaluate_run(run, tmp / "dev.jsonl", decoding="argmax")
    # --split dev: the run's own dev split, the same sentences and scores
    by_split = evaluate_run(run, split="dev")
    assert by_split.scores == read_metrics(run)["dev"] and list(by_split.predictions) == list(result.predictions)


def test_the_best_weights_are_reloaded_with_the_span_head(span_run):
    from accelerate import Accelerator

    from seqtag.inference.engine import load_finished_run
    from seqtag.training.finish import load_best

    _, run = span_run
    loaded = load_finished_run(run, device="cpu").model
    saved = {k: v.clone() for k, v in loaded.state_dict().items()}
    with torch.no_grad():
        for p in loaded.parameters():
            p.add_(1.0)
    load_best(SimpleNamespace(accelerator=Accelerator(cpu=True), model=loaded, run_dir=run))
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, saved[k], msg=k)


def test_predict_push_export_validate_and_stats_know_the_span_head(span_run, capsys):
    from seqtag.cli.main import main
    from seqtag.inference.onnx_export import export_run
    from seqtag.inference.predict import format_record, load_tagger, predict_stream
    from seqtag.publish.hub import check_finished_run, files_to_upload
    from seqtag.tasks.checks import check_config_inputs

    tmp, run = span_run
    tagger = load_tagger(run)
    (rec,) = predict_stream(tagger, [{"words": ["John", "lives", "in", "Paris"]}])
    assert set(rec) == {"words", "entities"}
    with pytest.raises(SeqtagError, match="use --output-format jsonl"):
        format_record(rec, "conll")
    with pytest.raises(SeqtagError, match="--decoding viterbi is for token heads"):
        load_tagger(run, decoding="viterbi")
    assert "span_head.safetensors" in {p.name for p in files_to_upload(run)}
    (run / "span_head.safetensors").rename(tmp / "moved")
    with pytest.raises(SeqtagError, match="missing span_head.safetensors"):
        check_finished_run(run)
    (tmp / "moved").rename(run / "span_head.safetensors")
    with pytest.raises(SeqtagError, match="has a span head .* export does not support"):
        export_run(run, tmp / "export")
    notes = check_config_inputs(from_dict(span_config(tmp)))
    assert notes[-1].startswith("data.train: 24 sentences") and notes[-1].endswith("3 entity types: LOC, PER, PLACE")
    capsys.readouterr()
    assert main(["stats", str(tmp / "train.jsonl")]) == 0
    assert "mentions:" in capsys.readouterr().out
