import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml

from seqtag.config import (
    RANGES,
    SECTIONS,
    apply_overrides,
    check_repo_id,
    dump_config,
    from_dict,
    load_config,
    to_dict,
)
from seqtag.errors import ConfigError, LossConfigError
from seqtag.runs import config_differences
from tests.cli_subprocess import listing, run_seqtag, user_error

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
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
    (BASE, ["train.mixed_precision=fp8"], r"valid values: no, bf16, fp16, auto"),
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
    (BASE, ["model.head=crf", "task=qa", "data.format=squad", "data.doc_stride=64"], r"model.head=crf is for task: ner"),
    (BASE, ["predict.decoding=viterbi", "task=qa", "data.format=squad", "data.doc_stride=64"],
     r"predict.decoding=viterbi is for task: ner"),
    (BASE, ["train.crf_learning_rate=0"], r"crf_learning_rate. must be in \(0, 1\]"),
])
def test_config_errors_name_the_key(raw, overrides, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(raw, overrides)


def test_head_and_decoding_defaults_and_choices():
    cfg = from_dict(BASE)
    assert (cfg.model.head, cfg.predict.decoding, cfg.train.crf_learning_rate) == ("linear", "viterbi", 1e-2)
    assert "predict" not in to_dict(cfg)  # the default is not saved
    linear_argmax = apply_overrides(BASE, ["predict.decoding=argmax"])
    assert to_dict(linear_argmax)["predict"] == {"decoding": "argmax"} and from_dict(to_dict(linear_argmax)) == linear_argmax
    crf = apply_overrides(BASE, ["model.head=crf"])
    assert (crf.model.head, crf.predict.decoding) == ("crf", "viterbi")
    assert from_dict(to_dict(crf)) == crf and "predict" not in to_dict(crf)
    crf_argmax = apply_overrides(BASE, ["model.head=crf", "predict.decoding=argmax"])
    assert crf_argmax.predict.decoding == "argmax" and to_dict(crf_argmax)["predict"] == {"decoding": "argmax"}
    assert from_dict(to_dict(crf_argmax)) == crf_argmax
    assert apply_overrides(BASE, ["predict.decoding=viterbi"]).predict.decoding == "viterbi"
    qa = apply_overrides(BASE, ["task=qa", "data.format=squad", "data.doc_stride=64"])
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


QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


@pytest.mark.parametrize("overrides, blamed, message", [
    (["train.epochs=-1"], "override 'train.epochs=-1'", "config key 'train.epochs' must be at least 1, got -1"),
    (["train.epochs=two"], "override 'train.epochs=two'", "config key 'train.epochs' must be int, got 'two' (str)"),
    (["train.epoch=2"], "override 'train.epoch=2'", "unknown config key 'train.epoch' in section 'train'"),
    (["train.mixed_precision=fp8"], "override 'train.mixed_precision=fp8'", "valid values: no, bf16, fp16, auto"),
    (["train.epochs=2", "loss.name=nope"], "override 'loss.name=nope'", "unknown loss 'nope'"),
    (["loss.name=focal", "loss.gamma=-1"], "override 'loss.gamma=-1'", "loss 'focal': gamma=-1 is invalid"),
    (["data.max_length=12"], "override 'data.max_length=12'", "config key 'data.stride' must be in [0, max_length/2)"),
    (["model.head=crf", "loss.name=focal"], "overrides 'model.head=crf', 'loss.name=focal'", "would be ignored"),
    (["train.epochs=[1"], "override 'train.epochs=[1'", "is not a valid YAML scalar"),
])
def test_an_error_an_override_causes_names_the_override_not_the_file(overrides, blamed, message):
    """The file is valid; the override is what the user has to change."""
    with pytest.raises(ConfigError) as e:
        load_config(QUICKSTART, overrides)
    assert str(e.value).startswith(f"{blamed}: ") and message in str(e.value)
    assert "quickstart.yaml" not in str(e.value)


def test_an_error_of_the_file_names_the_file_whatever_the_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("model: {name_or_path: x}\ndata: {train: t}\ntrain: {epochs: 0}\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(p))}: config key 'train.epochs' must be at least 1"):
        load_config(p, ["train.seed=3", "loss.name=focal"])
    assert load_config(p, ["train.epochs=2"]).train.epochs == 2  # an override may also mend the file
    p.write_text("data: {train: t}\n")  # model.name_or_path is given on the command line only
    assert load_config(p, ["model.name_or_path=m"]).model.name_or_path == "m"


def test_train_names_the_override_on_the_command_line(tmp_path):
    msg = user_error(run_seqtag("train", QUICKSTART, "train.epochs=-1", cwd=tmp_path), "train")
    assert msg == "override 'train.epochs=-1': config key 'train.epochs' must be at least 1, got -1"
    assert listing(tmp_path) == []


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


# ------------------------------------------------------------------------------------------------ numeric ranges


def _is_numeric(tp) -> bool:
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) else [tp]
    return any(a in (int, float) or typing.get_args(a) in ((int,), (float,)) for a in args)


def test_every_numeric_config_key_has_a_range():
    numeric = {f"{section}.{f.name}" for section, cls in SECTIONS.items()
               for f in dataclasses.fields(cls) if _is_numeric(typing.get_type_hints(cls)[f.name])}
    assert {"data.max_train_examples", "train.max_steps", "train.seed", "data.train_articles"} <= numeric
    assert numeric == set(RANGES), "add the new key to seqtag.config.RANGES"


@pytest.mark.parametrize("override, match", [
    ("data.max_train_examples=0", r"'data.max_train_examples' must be at least 1 .*leave it unset"),
    ("data.max_train_examples=-5", r"'data.max_train_examples' must be at least 1"),
    ("data.max_eval_examples=0", r"'data.max_eval_examples' must be at least 1"),
    ("train.max_steps=0", r"'train.max_steps' must be at least 1"),
    ("train.max_steps=-1", r"'train.max_steps' must be at least 1"),
    ("train.early_stopping_patience=0", r"'train.early_stopping_patience' must be at least 1"),
    ("train.learning_rate=-1e-5", r"'train.learning_rate' must be in \(0, 1\]"),
    ("train.learning_rate=5", r"'train.learning_rate' must be in \(0, 1\]"),
    ("train.learning_rate=.nan", r"'train.learning_rate'"),
    ("train.weight_decay=-0.01", r"'train.weight_decay' must be at least 0"),
    ("train.weight_decay=.inf", r"'train.weight_decay' must be at least 0"),
    ("train.max_grad_norm=-1", r"'train.max_grad_norm' must be at least 0 \(0 disables clipping\)"),
    ("train.warmup_ratio=1", r"'train.warmup_ratio' must be in \[0, 1\)"),
    ("train.seed=-1", r"'train.seed' must be in \[0, 4294967295\]"),
    ("train.epochs=0", r"'train.epochs' must be at least 1"),
    ("train.log_every=0", r"'train.log_every' must be at least 1"),
    ("data.max_length=4", r"'data.max_length' must be at least 8"),
    ("data.stride=-1", r"'data.stride' must be at least 0"),
    ("data.doc_stride=-1", r"'data.doc_stride' must be at least 0"),
    ("data.max_answer_length=0", r"'data.max_answer_length' must be at least 1"),
    ("data.train_articles=[-1,3]", r"'data.train_articles' must be at least 0"),
    ("data.tag_column=0", r"'data.token_column' and 'data.tag_column' are both 0"),
])
def test_numeric_keys_out_of_range_fail_at_load(override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(BASE, [override])


def test_range_boundaries_are_accepted():
    cfg = apply_overrides(BASE, ["data.max_train_examples=1", "train.max_steps=1", "train.weight_decay=0",
                                 "train.max_grad_norm=0", "train.seed=0", "train.learning_rate=1",
                                 "train.early_stopping_patience=1", "data.tag_column=1", "data.token_column=-2"])
    assert (cfg.data.max_train_examples, cfg.train.max_steps, cfg.train.seed) == (1, 1, 0)


def test_qa_doc_stride_must_leave_room_in_the_window():
    with pytest.raises(ConfigError, match=r"'data.doc_stride' must be below data.max_length=128"):
        apply_overrides(BASE, ["task=qa"])  # the defaults, 128 and 128, are fine for NER only
    assert apply_overrides(BASE, ["task=qa", "data.doc_stride=64"]).data.doc_stride == 64


# ------------------------------------------------------------------------------------------------------ hub


@pytest.mark.parametrize("repo_id", ["alice/bad name", "alice/-x", "alice/x-", "alice/a--b", "alice/a..b",
                                     "alice/x.git", "alice/" + "a" * 97, "alice/", "al ice/x", "alice/\u00fcmlaut"])
def test_bad_hub_repo_id_fails_at_load_naming_the_rule(repo_id):
    with pytest.raises(ConfigError, match=r"'hub.repo_id' is .* which the Hub does not accept: .*ASCII letters, digits, "
                                          r"'-', '_' and '.', at most 96 characters, without '--' or '..'"):
        apply_overrides(BASE, [f"hub.repo_id={repo_id!r}"])


def test_good_hub_repo_ids_pass():
    for repo_id in ("alice/minilm-wnut17", "Org_1/x.y_z", "a/" + "b" * 96):
        assert check_repo_id(repo_id) == repo_id
    with pytest.raises(ConfigError, match="namespace/name"):
        check_repo_id("a/b/c")
    with pytest.raises(ConfigError, match=r"^--repo-id is 'a/b-', which the Hub does not accept"):
        check_repo_id("a/b-", key="--repo-id")


# ------------------------------------------------------------------------------------------ the file itself


@pytest.mark.parametrize("text, match", [
    ("- model\n- data\n", r"c.yaml: the top level is a list \(\['model', 'data'\]\), but a config is a mapping"),
    ("just a string\n", r"c.yaml: the top level is a str \('just a string'\)"),
    ("", r"config file .*c.yaml is empty; a config needs at least model.name_or_path and data.train"),
    ("# only a comment\n", r"c.yaml is empty"),
])
def test_config_file_top_level_must_be_a_mapping(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_config_path_that_is_a_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"is a directory; pass a YAML file"):
        load_config(tmp_path)


def test_apply_overrides_rejects_a_list():
    with pytest.raises(ConfigError, match="must be a mapping of sections"):
        apply_overrides(["model"], [])


# ----------------------------------------------------------------------------------------------- encoding


def test_data_encoding_is_checked():
    assert apply_overrides(BASE, ["data.encoding=latin-1"]).data.encoding == "latin-1"
    with pytest.raises(ConfigError, match=r"'data.encoding' is 'klingon', which Python does not know"):
        apply_overrides(BASE, ["data.encoding=klingon"])
    with pytest.raises(ConfigError, match=r"'data.encoding' is 'utf-16'.*ASCII-compatible"):
        apply_overrides(BASE, ["data.encoding=utf-16"])


# ------------------------------------------------------------------------- saved configs and every default


def test_a_config_saved_before_data_encoding_still_resumes():
    """A run saved before data.encoding (model.head, train.crf_learning_rate, predict.decoding,
    data.allow_unanswerable) existed: its saved text and the text resuming it writes compare equal."""
    cfg = apply_overrides(BASE, ["loss.name=focal", "loss.gamma=1"])
    old = dataclasses.asdict(cfg)
    del old["data"]["encoding"], old["model"]["head"], old["train"]["crf_learning_rate"], old["predict"]
    del old["data"]["allow_unanswerable"], old["model"]["max_span_length"], old["data"]["on_misaligned"]
    old["loss"] = {"name": "focal", "gamma": 1}
    old_text = yaml.safe_dump(old, sort_keys=False)
    resumed = from_dict(yaml.safe_load(old_text))
    assert config_differences(old_text, dump_config(resumed)) == []
    assert "encoding" not in to_dict(resumed)["data"]
    latin = apply_overrides(cfg, ["data.encoding=latin-1"])
    assert to_dict(latin)["data"]["encoding"] == "latin-1" and from_dict(to_dict(latin)) == latin
    assert config_differences(old_text, dump_config(latin)) == ["data.encoding: None -> 'latin-1'"]
    argmax = apply_overrides(cfg, ["predict.decoding=argmax"])
    assert config_differences(old_text, dump_config(argmax)) == ["predict.decoding: None -> 'argmax'"]


def test_every_default_fills_the_loss_parameters_without_changing_the_saved_form():
    cfg = apply_overrides(BASE, ["loss.name=focal", "loss.gamma=1"])
    assert to_dict(cfg)["loss"] == {"name": "focal", "gamma": 1}  # what a run saves: unchanged
    full = to_dict(cfg, every_default=True)
    assert full["loss"] == {"name": "focal", "gamma": 1.0, "alpha": None}
    assert full["data"]["encoding"] == "utf-8"
    again = from_dict(yaml.safe_load(dump_config(cfg, every_default=True)))
    assert again.loss.params == {"gamma": 1.0, "alpha": None} and again.train == cfg.train


# ------------------------------------------------------------------------------------ through the command line


def test_validate_rejects_bad_numbers_repo_ids_and_list_configs_in_a_subprocess(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text(yaml.safe_dump(BASE))
    bad_list = tmp_path / "list.yaml"
    bad_list.write_text("- model: {name_or_path: m}\n")
    before = listing(tmp_path)
    msg = user_error(run_seqtag("validate", good, "data.max_train_examples=0", cwd=tmp_path), "validate")
    assert msg.startswith("override 'data.max_train_examples=0': config key 'data.max_train_examples' must be at "
                          "least 1")
    msg = user_error(run_seqtag("validate", good, "hub.repo_id=alice/bad name", cwd=tmp_path), "validate")
    assert "'hub.repo_id' is 'alice/bad name', which the Hub does not accept" in msg
    msg = user_error(run_seqtag("validate", bad_list, cwd=tmp_path), "validate")
    assert msg.startswith(f"config file {bad_list}: the top level is a list")
    assert listing(tmp_path) == before
