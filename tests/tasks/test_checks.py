"""seqtag.tasks.checks: what a config names is checked before training (files, model directory, position limit, loss
values per label), and ``seqtag validate`` reports it."""

from __future__ import annotations

import json

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
    assert model_position_limit(ModelConfig("bert-base-cased")) is None  # a Hub id: not checked


def test_hub_ids_and_large_files_are_noted_not_read(raw, tmp_path, monkeypatch):
    notes = check_config_inputs(apply_overrides(raw, ["model.name_or_path=bert-base-cased", "data.max_length=4096"]))
    assert "model.name_or_path: bert-base-cased is a Hub id (not checked: that needs the Hub)" in notes
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
