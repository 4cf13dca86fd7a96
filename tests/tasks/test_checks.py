"""seqtag.tasks.checks: what a config names is checked before training (files, model directory, position limit, loss
values per label), and ``seqtag validate`` reports it."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from seqtag.config import LossConfig, ModelConfig, apply_overrides, from_dict
from seqtag.errors import ConfigError, DataError
from seqtag.tasks import checks
from seqtag.tasks.checks import check_config_inputs, check_loss_for_labels, model_position_limit
from tests.cli_subprocess import listing, run_seqtag, user_error

TRAIN = "Peter B-PER\nlives O\nin O\nParis B-LOC\n\nAnna B-PER\nSmith I-PER\n"
LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def fake_model(path, **config):
    """A model directory as far as the checks look: config.json and a vocabulary."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 64, **config}))
    (path / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return path


@pytest.fixture
def raw(tmp_path):
    (tmp_path / "train.txt").write_text(TRAIN)
    (tmp_path / "dev.txt").write_text(TRAIN)
    return {"model": {"name_or_path": str(fake_model(tmp_path / "model"))},
            "data": {"train": str(tmp_path / "train.txt"), "dev": str(tmp_path / "dev.txt"), "max_length": 32,
                     "stride": 8}}


def test_a_good_config_gives_notes_with_the_scheme_and_labels(raw):
    notes = check_config_inputs(from_dict(raw))
    assert notes[0] == "data files readable: data.train, data.dev"
    assert notes[1].endswith("position limit 64 >= data.max_length=32")
    assert notes[2] == f"data.train: tag scheme IOB2 (detected); 5 labels in IOB2: {', '.join(LABELS)}"


@pytest.mark.parametrize("override, error, match", [
    ("data.train={tmp}/nope.txt", DataError, r"^data\.train: file .*nope\.txt does not exist; fix the path"),
    ("data.dev={tmp}", DataError, r"^data\.dev: .* is a directory, not a file \(it holds dev\.txt, model, train\.txt\)"),
    ("loss.alpha=[1,2,3]", ConfigError, r"^loss\.alpha has 3 values but the training data \(.*train\.txt\) gives 5 "
                                        r"labels \(O, B-LOC, I-LOC, B-PER, I-PER\); give one value per label"),
    ("loss.weight=[1,2]", ConfigError, r"^loss\.weight has 2 values but .* gives 5 labels"),
    ("data.max_length=128", ConfigError, r"^data\.max_length=128 is above the model's position limit of 64 "
                                         r"\(max_position_embeddings=64 in .*config\.json\)"),
    ("data.scheme=IOBES", DataError, r"train\.txt:1: .*IOBES"),
])
def test_problems_name_the_key_and_the_numbers(raw, tmp_path, override, error, match):
    name = override.split("=")[0]
    overrides = [override.format(tmp=tmp_path)]
    if name.startswith("loss."):
        overrides.insert(0, "loss.name=focal" if name == "loss.alpha" else "loss.name=cross_entropy")
    with pytest.raises(error, match=match):
        check_config_inputs(apply_overrides(raw, overrides))


def test_loss_values_of_the_right_length_pass(raw):
    cfg = apply_overrides(raw, ["loss.name=focal", "loss.alpha=[0.1,1,1,1,1]"])
    assert len(check_config_inputs(cfg)) == 3
    check_loss_for_labels(LossConfig("cross_entropy", {"weight": None}), LABELS)


def test_model_directory_without_config_or_tokenizer(raw, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"model\.name_or_path: .*empty has no config\.json, so it is not a "
                                          r"from_pretrained model directory"):
        check_config_inputs(apply_overrides(raw, [f"model.name_or_path={tmp_path / 'empty'}"]))
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"holds no tokenizer files \(tokenizer\.json, vocab\.txt"):
        check_config_inputs(apply_overrides(raw, [f"model.name_or_path={tmp_path / 'empty'}"]))


def test_position_limits(tmp_path):
    def limit(**config):
        return model_position_limit(ModelConfig(str(fake_model(tmp_path / "m", **config))))

    assert limit(max_position_embeddings=512)[0] == 512
    assert limit(model_type="roberta", max_position_embeddings=514, pad_token_id=1) == (
        512, f"max_position_embeddings=514 in {tmp_path / 'm' / 'config.json'}, less 2 for roberta's padding offset")
    assert limit(model_type="deberta-v2", max_position_embeddings=512, position_biased_input=False) is None


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; ``hub_cache(repo_id, config)`` puts a model's config.json in it, as a download
    of the Hub's main branch leaves it (refs/main, snapshots/COMMIT/config.json)."""
    import huggingface_hub.constants

    root = tmp_path / "hf-cache"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))

    def cache(repo_id: str, config: dict):
        repo = root / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("c0ffee")
        (repo / "snapshots" / "c0ffee").mkdir(parents=True)
        (repo / "snapshots" / "c0ffee" / "config.json").write_text(json.dumps(config))
        return repo / "snapshots" / "c0ffee" / "config.json"

    return cache


def test_a_hub_models_position_limit_is_read_from_the_local_cache(raw, hub_cache):
    assert model_position_limit(ModelConfig("org/tiny-bert")) is None  # not in the cache
    path = hub_cache("org/tiny-bert", {"model_type": "bert", "max_position_embeddings": 64})
    assert model_position_limit(ModelConfig("org/tiny-bert")) == (64, f"max_position_embeddings=64 in {path}")
    with pytest.raises(ConfigError, match=rf"^data\.max_length=128 is above the model's position limit of 64 "
                                          rf"\(max_position_embeddings=64 in {re.escape(str(path))}\); set "
                                          r"data\.max_length to at most 64"):
        check_config_inputs(apply_overrides(raw, ["model.name_or_path=org/tiny-bert", "data.max_length=128"]))
    notes = check_config_inputs(apply_overrides(raw, ["model.name_or_path=org/tiny-bert"]), read_labels=False)
    assert notes[1] == f"model.name_or_path: org/tiny-bert is a Hub id; position limit 64 >= data.max_length=32 " \
                       f"(max_position_embeddings=64 in {path})"


def test_the_loaded_models_limit_is_checked_with_the_same_message(raw, tmp_path):
    """A Hub model whose config was not in the cache: training checks it once loaded, before the first step."""
    from transformers import BertConfig, BertForTokenClassification

    model = BertForTokenClassification(BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1,
                                                  num_attention_heads=1, intermediate_size=8,
                                                  max_position_embeddings=64))
    cfg = apply_overrides(raw, ["model.name_or_path=org/tiny-bert", "data.max_length=128"])
    with pytest.raises(ConfigError, match=r"^data\.max_length=128 is above the model's position limit of 64 "
                                          r"\(max_position_embeddings=64 in the config of org/tiny-bert\); set "
                                          r"data\.max_length to at most 64 \(longer sentences are windowed\)$"):
        checks.check_loaded_model(cfg, model)
    checks.check_loaded_model(apply_overrides(cfg, ["data.max_length=64"]), model)


def test_hub_ids_and_large_files_are_noted_not_read(raw, tmp_path, hub_cache, monkeypatch):
    notes = check_config_inputs(apply_overrides(raw, ["model.name_or_path=bert-base-cased", "data.max_length=4096"]))
    assert ("model.name_or_path: bert-base-cased is a Hub id; its position limit is checked once it is loaded (its "
            "config is not in the local Hugging Face cache)") in notes
    monkeypatch.setattr(checks, "QUICK_BYTES", 10)
    notes = check_config_inputs(from_dict(raw))
    assert notes[-1].startswith("labels not checked: ") and "validate reads training files up to 0 MiB" in notes[-1]


def test_read_labels_false_reads_no_data(raw, tmp_path):
    (tmp_path / "train.txt").write_text("a O\n")  # only O: reading it would fail
    assert len(check_config_inputs(from_dict(raw), read_labels=False)) == 2
    with pytest.raises(DataError, match="every tag in .* is O"):
        check_config_inputs(from_dict(raw))


def test_qa_heads(raw):
    qa = {**raw, "task": "qa", "data": {**raw["data"], "doc_stride": 8}}
    tagging = apply_overrides(qa, ["data.qa_head=tagging", "loss.weight=[0.1,1,1]"])
    check_config_inputs(tagging)
    with pytest.raises(ConfigError, match=r"loss\.weight has 2 values but the QA tagging head gives 3 labels \(O, "
                                          r"B-ANS, I-ANS\)"):
        check_config_inputs(apply_overrides(qa, ["data.qa_head=tagging", "loss.weight=[1,1]"]))
    with pytest.raises(ConfigError, match=r"classes of the QA pointer head are token positions"):
        check_config_inputs(apply_overrides(qa, ["loss.weight=[1,1,1]"]))


def test_validate_command_in_a_subprocess(raw, tmp_path):
    """Exit 2 with one paragraph when a file is missing; on success the resolved config, every default filled."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**raw, "loss": {"name": "focal", "gamma": 1}}))
    before = listing(tmp_path)
    msg = user_error(run_seqtag("validate", config, f"data.train={tmp_path / 'nope.txt'}", cwd=tmp_path), "validate")
    assert msg == (f"data.train: file {tmp_path / 'nope.txt'} does not exist; fix the path in the config or override "
                   f"it with data.train=PATH")
    res = run_seqtag("validate", config, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    resolved = yaml.safe_load(res.stdout)
    assert resolved["loss"] == {"name": "focal", "gamma": 1.0, "alpha": None}
    assert resolved["data"]["encoding"] == "utf-8" and resolved["train"]["epochs"] == 3
    assert f"# data.train: tag scheme IOB2 (detected); 5 labels in IOB2: {', '.join(LABELS)}" in res.stderr
    assert res.stderr.rstrip().endswith(f"# {config}: valid")
    assert listing(tmp_path) == before


def test_training_checks_the_loaded_models_limit_before_it_starts(tmp_path, monkeypatch):
    """As for a Hub model whose config was not cached: the start checks find no limit, the loaded model has one."""
    from seqtag.training.loop import train
    from tests.tiny import tiny_config

    monkeypatch.setattr(checks, "model_position_limit", lambda model: None)
    cfg = from_dict(tiny_config(tmp_path, data={"max_length": 128}))
    with pytest.raises(ConfigError, match=r"^data\.max_length=128 is above the model's position limit of 64 "
                                          r"\(max_position_embeddings=64 in the config of .*model\)"):
        train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("overrides, gpu, expected", [
    (["train.mixed_precision=fp16"], None, "train.mixed_precision=fp16 needs a GPU; on a CPU use auto (fp32 here, "
                                           "bf16 on CPUs with AMX), bf16 or no"),
    (["train.mixed_precision=bf16"], "Tesla V100", "train.mixed_precision=bf16 asks for bf16, which this GPU (Tesla "
                                                   "V100) does not support; use train.mixed_precision=fp16, or auto "
                                                   "(fp16 on this GPU)"),
    (["train.output_dir={tmp}"], None, "output directory {tmp} already holds other files and is not a seqtag run "
                                       "directory, so seqtag will neither replace nor continue it; choose another "
                                       "train.output_dir"),
    (["train.resume=true"], None, "train.resume=true but {tmp}/run holds no checkpoint to resume from"),
])
def test_validate_runs_the_checks_training_starts_with(raw, tmp_path, monkeypatch, capsys, overrides, gpu, expected):
    """The errors `seqtag train` stops with before loading anything, `seqtag validate` gives too."""
    import torch

    from seqtag.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu is not None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: gpu)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**raw, "train": {"output_dir": str(tmp_path / "run")}}))
    assert main(["validate", str(config), *(o.format(tmp=tmp_path) for o in overrides)]) == 2
    assert capsys.readouterr().err.startswith(f"seqtag validate: error: {expected.format(tmp=tmp_path)}")
    assert main(["validate", str(config)]) == 0
    assert "# train.mixed_precision=no: fp32 on this machine\n" in capsys.readouterr().err


def test_validate_warns_of_a_crf_run_scored_by_argmax(raw, tmp_path, caplog):
    from seqtag.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**raw, "train": {"output_dir": str(tmp_path / "run")}}))
    assert main(["validate", str(config), "model.head=crf", "predict.decoding=argmax"]) == 0
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "model.head=crf with predict.decoding=argmax: a CRF run decoded by argmax: the CRF's emission scores were "
        "trained together with its transitions and are not a tagger on their own (expect many tag sequences the "
        "scheme forbids and a far lower F1). Decode it with viterbi (--decoding viterbi, predict.decoding=viterbi), "
        "which uses the CRF's learned transitions"]
