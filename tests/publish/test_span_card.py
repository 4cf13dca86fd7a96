"""Tests for seqtag.publish.span_card: the model card of a span-head run says that pipeline() cannot read the head,
and its plain-PyTorch lines compute the same scores as seqtag's head."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from seqtag import runs
from seqtag.config import dump_config, from_dict
from seqtag.modeling.span_head import new_span_tagger
from seqtag.publish.card import render_card
from seqtag.publish.span_card import SPAN_SCORES
from seqtag.runs import RunInfo, SplitScores, TypeScores, WindowCounts
from tests.tiny import make_tiny_model_dir

pytestmark = pytest.mark.usefixtures("one_thread")
TYPES = ["DNA", "protein"]
WORDS = ["il", "-", "2", "gene", "expression", "in", "t", "cells", "."]


@pytest.fixture(scope="module")
def span_run_dir(tmp_path_factory):
    """A finished span run written the way training writes one (random weights, made-up scores)."""
    from transformers import AutoModel, AutoTokenizer

    tmp = tmp_path_factory.mktemp("card")
    base = make_tiny_model_dir(tmp / "base", words=WORDS)
    run = tmp / "run"
    torch.manual_seed(0)
    model = new_span_tagger(AutoModel.from_pretrained(base), TYPES, max_span_length=3)
    model.encoder.config.id2label, model.encoder.config.label2id = dict(enumerate(TYPES)), {t: i for i, t in enumerate(TYPES)}
    model.save_pretrained(run)
    AutoTokenizer.from_pretrained(base).save_pretrained(run)
    cfg = from_dict({"model": {"name_or_path": str(base), "head": "span", "max_span_length": 3},
                     "data": {"train": "train.jsonl", "dev": "dev.jsonl"}, "loss": {"name": "span_multilabel"}})
    (run / runs.CONFIG_FILE).write_text(dump_config(cfg), encoding="utf-8")
    runs.write_run_info(run, RunInfo(status="finished", task="ner", labels=TYPES, model_head="span", decoding="nested",
                                     windows={"dev": WindowCounts(40, 0, 40)}, epochs=1, global_steps=3))
    runs.write_metrics(run / runs.METRICS_FILE, {"dev": SplitScores(
        f1=0.5, precision=0.6, recall=0.4286, per_type={"DNA": TypeScores(0.5, 0.5, 0.5, 4),
                                                        "protein": TypeScores(2 / 3, 0.4, 0.5, 5)})})
    return run, model.eval()


def test_the_card_says_pipeline_cannot_read_the_head_and_scores_are_exact_match(span_run_dir):
    run, _ = span_run_dir
    card = render_card(run, "alice/genia-span")
    meta = yaml.safe_load(card.split("---")[1])
    assert "pipeline_tag" not in meta and meta["model-index"][0]["results"][0]["metrics"][2]["value"] == 0.5
    assert "**`transformers.pipeline()` cannot read a span head**" in card
    assert "span_head.safetensors" in card and "nested entities (DNA, protein)" in card
    assert "Exact-match span precision, recall and F1" in card and "| DNA | 0.5000 | 0.5000 | 0.5000 | 4 |" in card
    assert "seqeval" not in card and "B-DNA" not in card and "aggregation_strategy" not in card
    assert 'repo = "alice/genia-span"' in card


def test_the_cards_pytorch_lines_compute_seqtags_scores(span_run_dir, monkeypatch, capsys):
    import huggingface_hub

    run, model = span_run_dir
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: str(run / name))
    namespace: dict = {}
    exec(SPAN_SCORES.format(repo=str(run), words=WORDS), namespace)  # noqa: S102 - the card's own text
    printed = capsys.readouterr().out
    grid = namespace["scores"]  # (types, start, end)
    enc = namespace["enc"]
    with torch.no_grad():
        ours = model(enc["input_ids"], enc["attention_mask"], torch.tensor([namespace["first"]]))["logits"][0]
    for c in range(len(TYPES)):
        for i in range(len(WORDS)):
            for n in range(3):
                if i + n < len(WORDS):
                    assert grid[c, i, i + n].item() == pytest.approx(ours[c, i, n].item(), abs=1e-5)
    assert printed.startswith("[") and json.loads((run / "config.json").read_text())["architectures"] == ["BertModel"]
