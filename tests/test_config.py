from pathlib import Path

import pytest

from seqtag.config import apply_overrides, dump_config, from_dict, load_config, to_dict
from seqtag.errors import ConfigError, LossConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
BASE = {"model": {"name_or_path": "bert-base-cased"}, "data": {"train": "train.txt"}}


def test_ships_configs():
    names = {p.stem for p in CONFIGS}
    assert {"quickstart", "wnut17_local", "conll2003_local", "conll2003_hub", "wnut17_hub"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_round_trips(path):
    cfg = load_config(path)
    assert from_dict(to_dict(cfg)) == cfg
    text = path.read_text()
    assert f"seqtag train configs/{path.name}" in text, "the header must show the command that runs it"


def test_defaults_and_flat_loss_params():
    cfg = from_dict({**BASE, "loss": {"name": "focal", "gamma": 1.0, "alpha": None}})
    assert cfg.loss.params == {"gamma": 1.0, "alpha": None}
    assert cfg.train.learning_rate == 5e-5 and cfg.train.mixed_precision == "no"
    assert to_dict(cfg)["loss"] == {"name": "focal", "gamma": 1.0, "alpha": None}


def test_overrides_are_typed_and_validated():
    cfg = apply_overrides(from_dict(BASE), ["train.learning_rate=2e-4", "train.epochs=5", "data.dev=d.txt",
                                            "train.mixed_precision=bf16", "loss.name=lstar", "loss.k=0.5"])
    assert cfg.train.learning_rate == pytest.approx(2e-4) and cfg.train.epochs == 5
    assert cfg.data.dev == "d.txt" and cfg.loss.params == {"k": 0.5}


def test_mixed_precision_no_survives_yaml_booleans(tmp_path):
    """YAML 1.1 reads a bare `no` as false: `train.mixed_precision=no` and `mixed_precision: no` mean "no"."""
    assert apply_overrides(from_dict(BASE), ["train.mixed_precision=no"]).train.mixed_precision == "no"
    path = tmp_path / "c.yaml"
    path.write_text("model: {name_or_path: m}\ndata: {train: t.txt}\ntrain:\n  mixed_precision: no\n")
    assert load_config(path).train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="must be str"):
        apply_overrides(from_dict(BASE), ["train.mixed_precision=yes"])  # true is not a precision


@pytest.mark.parametrize("raw, overrides, match", [
    (BASE, ["train.epoch=3"], r"unknown config key 'train.epoch'.*valid keys: .*epochs"),
    (BASE, ["trian.epochs=3"], r"unknown config key 'trian'"),
    (BASE, ["train.epochs=three"], r"'train.epochs' must be int"),
    (BASE, ["train.epochs=true"], r"'train.epochs' must be int"),
    (BASE, ["train.mixed_precision=fp8"], r"valid values: no, bf16, fp16"),
    (BASE, ["data.stride=100"], r"data.stride"),
    (BASE, ["train.learning_rate=0"], r"learning_rate"),
    (BASE, ["hub.repo_id=noslash"], r"namespace/name"),
    ({"data": {"train": "x"}}, [], r"'model' is required"),
    (BASE, ["data.format=hub"], r"hub_dataset"),
    (BASE, ["justakey"], r"key.sub=value"),
    (BASE, ["model.head=crff"], r"'model.head' is 'crff'; valid values: linear, crf"),
    (BASE, ["predict.decoding=beam"], r"'predict.decoding' is 'beam'; valid values: argmax, viterbi"),
    (BASE, ["model.head=crf", "loss.name=focal"], r"model.head=crf .* loss.name=focal would be ignored"),
    (BASE, ["model.head=crf", "loss.label_smoothing=0.1"], r"loss.label_smoothing=0.1 would be ignored"),
    (BASE, ["model.head=crf", "data.label_all_tokens=true"], r"data.label_all_tokens=false"),
    (BASE, ["model.head=crf", "task=qa", "data.format=squad"], r"model.head=crf is for task: ner"),
    (BASE, ["predict.decoding=viterbi", "task=qa", "data.format=squad"], r"predict.decoding=viterbi is for task: ner"),
    (BASE, ["train.crf_learning_rate=0"], r"crf_learning_rate' must be > 0"),
])
def test_config_errors_name_the_key(raw, overrides, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(raw, overrides)


def test_head_and_decoding_defaults_and_choices():
    cfg = from_dict(BASE)
    assert (cfg.model.head, cfg.predict.decoding, cfg.train.crf_learning_rate) == ("linear", "argmax", 1e-2)
    crf = apply_overrides(BASE, ["model.head=crf"])  # unset decoding follows the head
    assert (crf.model.head, crf.predict.decoding) == ("crf", "viterbi")
    assert from_dict(to_dict(crf)) == crf and to_dict(crf)["predict"] == {"decoding": "viterbi"}
    assert apply_overrides(BASE, ["model.head=crf", "predict.decoding=argmax"]).predict.decoding == "argmax"
    assert apply_overrides(BASE, ["predict.decoding=viterbi"]).predict.decoding == "viterbi"
    qa = apply_overrides(BASE, ["task=qa", "data.format=squad"])
    assert qa.predict.decoding is None


def test_loss_errors_list_choices():
    with pytest.raises(LossConfigError, match="cross_entropy"):
        apply_overrides(BASE, ["loss.name=focall"])
    with pytest.raises(LossConfigError, match="gamma"):
        apply_overrides(BASE, ["loss.name=focal", "loss.gamma=-1"])
    with pytest.raises(LossConfigError, match="beta"):
        apply_overrides(BASE, ["loss.name=focal", "loss.beta=1"])


def test_load_config_names_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: {name_or_path: x}\ndata: {train: t}\ntrain: {epochs: 2, colour: red}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown config key 'train.colour'"):
        load_config(p)
    p.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_yaml_is_read_safely(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("model: !!python/object/apply:os.system ['echo pwned']\ndata: {train: t}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_dump_is_loadable(tmp_path):
    cfg = apply_overrides(from_dict(BASE), ["loss.name=dice", "loss.alpha=0.5"])
    p = tmp_path / "resolved.yaml"
    p.write_text(dump_config(cfg))
    assert load_config(p) == cfg
