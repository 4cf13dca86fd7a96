"""Experiment configuration: frozen dataclasses, loaded from one flat YAML file plus ``key=value`` overrides.

Everything is validated at load, before any model or data is touched: an unknown key, a wrong type, an
unknown loss or an invalid loss parameter raises :class:`~seqtag.errors.ConfigError` naming the key, the value
and the valid choices.

>>> cfg = from_dict({"model": {"name_or_path": "bert-base-cased"}, "data": {"train": "train.txt"}})
>>> cfg.loss.name, cfg.train.learning_rate
('cross_entropy', 5e-05)
>>> apply_overrides(cfg, ["loss.name=focal", "loss.gamma=1", "train.epochs=2"]).loss.params
{'gamma': 1}
"""

from __future__ import annotations

import codecs
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from seqtag.errors import ConfigError
from seqtag.losses import validate_loss_params

TASKS = ("ner", "qa")
MIXED_PRECISION = ("no", "bf16", "fp16", "auto")
DATA_FORMATS = ("auto", "conll", "jsonl", "hub", "squad")
SCHEMES_OR_AUTO = ("auto", "IOB1", "IOB2", "IOBES", "BILOU")
TRAIN_SCHEMES = ("IOB2", "IOBES", "BILOU")
QA_HEADS = ("pointer", "tagging")
MODEL_HEADS = ("linear", "crf")
DECODINGS = ("argmax", "viterbi")


@dataclass(frozen=True)
class ModelConfig:
    name_or_path: str  # Hub id, local directory, or pkg:PACKAGE/sub/path for a model shipped inside a pip package
    revision: str | None = None  # Hub branch, tag or commit; pin it for reproducible runs
    trust_remote_code: bool = False  # run Python code from the model repository: only for repositories you trust
    allow_pickle: bool = False  # load pickle (.bin) weights: pickle can execute code, so safetensors only by default
    head: str = "linear"  # NER: linear (softmax per word) | crf (a linear-chain CRF over the words, trained by its exact NLL)


@dataclass(frozen=True)
class DataConfig:
    train: str  # file (CoNLL columns, JSONL, SQuAD JSON/zip), pkg:PACKAGE/path, or a split name when format=hub
    dev: str | None = None  # evaluated every epoch; the best checkpoint is chosen on it
    test: str | None = None  # evaluated once, with the best checkpoint, at the end
    format: str = "auto"  # auto (by extension) | conll | jsonl | hub | squad
    hub_dataset: str | None = None  # with format=hub: a Hub dataset name or a directory saved by datasets.save_to_disk
    hub_config: str | None = None  # with format=hub: the dataset configuration name, if it has several
    tokens_column: str = "tokens"  # with format=hub/jsonl: the column holding the words
    tags_column: str = "ner_tags"  # format=hub: the column holding the tags; jsonl: the tag key of records without "tags"
    token_column: int = 0  # CoNLL: column index of the word
    tag_column: int = -1  # CoNLL: column index of the tag (default: the last)
    scheme: str = "auto"  # tag scheme of the files: auto-detected from train, or IOB1 | IOB2 | IOBES | BILOU
    train_scheme: str = "IOB2"  # the scheme the model is trained and evaluated in (files are converted)
    on_invalid: str = "error"  # an invalid tag sequence (I-X after O in IOB2...): error, or repair it and count
    unseen_labels: str = "error"  # a dev/test entity type never seen in training: error, or map_to_o and count
    max_length: int = 128  # subword window length, special tokens included; longer sentences are windowed
    stride: int = 32  # subwords of context shared by consecutive windows of a long sentence
    label_all_tokens: bool = False  # train on every subword (B- becomes I- on continuations); eval stays per word
    max_train_examples: int | None = None  # keep the first N training sentences/questions (quick runs, tests)
    max_eval_examples: int | None = None  # keep the first N dev/test sentences/questions
    cache_dir: str | None = None  # tokenised-data cache; default ~/.cache/seqtag
    encoding: str = "utf-8"  # text encoding of the CoNLL/JSONL files, e.g. latin-1 or cp1252 (ASCII-compatible ones)
    # QA only
    qa_head: str = "pointer"  # pointer: start/end logits (AutoModelForQuestionAnswering); tagging: O/B-ANS/I-ANS
    doc_stride: int = 128  # context tokens shared by consecutive windows (run_qa.py's doc_stride)
    max_answer_length: int = 30  # longest answer in subword tokens considered by decoding
    train_articles: list[int] | None = None  # on a SQuAD file: [start, end) article range used for training
    dev_articles: list[int] | None = None  # [start, end) article range of the dev split (same file allowed)
    test_articles: list[int] | None = None  # [start, end) article range of the test split


@dataclass(frozen=True)
class LossConfig:
    name: str = "cross_entropy"  # a key of seqtag.losses.LOSSES
    params: dict[str, Any] = field(default_factory=dict)  # written flat in YAML: loss: {name: focal, gamma: 2}


@dataclass(frozen=True)
class TrainConfig:
    output_dir: str = "runs/default"  # the run directory
    overwrite: bool = False  # replace an existing, different run in output_dir
    resume: bool = False  # continue from output_dir/checkpoints/last
    epochs: int = 3  # passes over the training data
    max_steps: int | None = None  # stop after this many optimizer steps (overrides epochs when reached first)
    batch_size: int = 32  # sentences per device per micro-batch
    eval_batch_size: int = 64  # sentences per device at evaluation
    grad_accum: int = 1  # micro-batches per optimizer step; the loss is normalised per labelled token of the window
    learning_rate: float = 5e-5  # peak AdamW learning rate
    crf_learning_rate: float = 1e-2  # model.head=crf: peak rate of the CRF's scores (Adam moves them ~rate per step)
    weight_decay: float = 0.01  # applied to matrices only (p.ndim >= 2), never to biases and LayerNorm
    warmup_ratio: float = 0.1  # share of optimizer steps with linear warmup, then linear decay to 0
    max_grad_norm: float = 1.0  # gradient clipping (0 disables)
    mixed_precision: str = "no"  # no | bf16 | fp16 | auto: bf16 on GPUs with bf16 (else fp16) and on CPUs with AMX, else no
    seed: int = 42  # same seed and config give the same metrics on CPU
    group_by_length: bool = True  # batches of similar length, less padding
    early_stopping_patience: int | None = None  # stop after N epochs without dev F1 improvement
    eval_every_epoch: bool = True  # false: dev only after the last epoch, whose weights are the result (many short epochs)
    log_every: int = 10  # optimizer steps between history.jsonl step records
    nan_policy: str = "stop"  # stop: abort on a NaN/inf loss keeping the last good checkpoint; skip: skip the batch and count it
    dynamics: bool = False  # log loss-weight dynamics per step (mean logit, mean weight, share of weights < 0.01 by O/entity)
    save_every_epoch: bool = True  # write a resumable checkpoint at the end of every epoch
    plot: bool = True  # write training_curves.png
    keep_checkpoint: bool = True  # keep checkpoints/last (optimizer state, ~3x the weights) once the run finished


@dataclass(frozen=True)
class PredictConfig:
    """How NER word scores become tags, in training's dev/test scores, ``seqtag evaluate`` and ``seqtag predict``
    (whose ``--decoding`` overrides it).

    ``argmax``: each word's best tag. ``viterbi``: the best tag sequence the tag scheme allows (a CRF run: with
    its learned transitions). Unset, it is ``viterbi`` for every NER run, as measured on 2026-12-02 with MiniLM
    (``docs/study/README.md``, "Structured decoding"; the same trained runs decoded both ways, paired by seed,
    test entity F1 in seqeval's default mode): Viterbi minus argmax +0.23 points on WNUT-17 (cross-entropy, 3
    seeds, never lower), +2.43 on CoNLL-2003 at the study's reduced budget (3/3 seeds), +1.26 and +2.63 with
    focal loss γ=2; it costs no measurable prediction time (``scripts/bench_crf.py --whole``: 1.00x). A CRF run
    decoded by the argmax of its emissions lost 8-12 points. A run keeps the decoding its ``run_info.json``
    records (runs trained when argmax was the default for the linear head say ``argmax``).
    """

    decoding: str | None = None  # NER: argmax | viterbi (unset: viterbi, the better on every measured run)


@dataclass(frozen=True)
class HubConfig:
    repo_id: str | None = None  # push the best model here when training ends (namespace/name)
    private: bool = False  # create the repository as private
    license: str | None = None  # license written in the model card (e.g. apache-2.0), when known


@dataclass(frozen=True)
class Config:
    model: ModelConfig
    data: DataConfig
    task: str = "ner"  # ner | qa
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    hub: HubConfig = field(default_factory=HubConfig)


_SECTIONS = {"model": ModelConfig, "data": DataConfig, "loss": LossConfig, "train": TrainConfig,
             "predict": PredictConfig, "hub": HubConfig}
_CHOICES = {
    "task": TASKS,
    "train.mixed_precision": MIXED_PRECISION,
    "data.format": DATA_FORMATS,
    "data.scheme": SCHEMES_OR_AUTO,
    "data.train_scheme": TRAIN_SCHEMES,
    "data.on_invalid": ("error", "repair"),
    "data.unseen_labels": ("error", "map_to_o"),
    "data.qa_head": QA_HEADS,
    "train.nan_policy": ("stop", "skip"),
    "model.head": MODEL_HEADS,
    "predict.decoding": DECODINGS,
}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _check_type(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted (and converted) where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(key, value, arg)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}' must be a list of {_type_name(item)}, got {value!r}")
        return [_check_type(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads 5e-5 as a string; accept it
            return float(value)
        except ValueError:
            pass
    if tp is Any or (isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        return value
    raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _build(cls: type, raw: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        where = f"section '{prefix}'" if prefix else "the top level"
        raise ConfigError(
            f"unknown config key '{(prefix + '.') if prefix else ''}{unknown[0]}' in {where}; "
            f"valid keys: {', '.join(names)}"
        )
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"config key '{key}' is required")
            continue
        value = raw[f.name]
        if f.name in _SECTIONS and not prefix:
            if not isinstance(value, dict):
                raise ConfigError(f"config section '{key}' must be a mapping of keys to values, got {value!r}")
            kwargs[f.name] = _build_loss(value) if f.name == "loss" else _build(_SECTIONS[f.name], value, key)
            continue
        if key == "train.mixed_precision" and value is False:
            value = "no"  # YAML 1.1 reads a bare `no` (in a file or in train.mixed_precision=no) as false
        value = _check_type(key, value, hints[f.name])
        if key in _CHOICES and value is not None and value not in _CHOICES[key]:
            raise ConfigError(f"config key '{key}' is {value!r}; valid values: {', '.join(_CHOICES[key])}")
        kwargs[f.name] = value
    return cls(**kwargs)


def _build_loss(raw: dict) -> LossConfig:
    raw = dict(raw)
    name = raw.pop("name", "cross_entropy")
    params = dict(raw.pop("params", {}) or {})
    params.update(raw)  # flat form: loss: {name: focal, gamma: 2}
    if not isinstance(name, str):
        raise ConfigError(f"config key 'loss.name' must be a string, got {name!r}")
    validate_loss_params(name, params)  # raises LossConfigError naming the loss or parameter
    return LossConfig(name=name, params=params)


class Range(NamedTuple):
    """The values a numeric config key may take: ``low`` to ``high`` (``None``: unbounded), ends included unless
    ``low_open`` / ``high_open``; floats must also be finite. ``hint`` is added to the error message.

    >>> Range(0, 1, high_open=True).describe(), Range(1).contains(0), Range(0, low_open=True).contains(float("nan"))
    ('in [0, 1)', False, False)
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    hint: str = ""

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        if self.low is None and self.high is None:
            return "a number"
        if self.high is None:
            return f"> {self.low}" if self.low_open else f"at least {self.low}"
        if self.low is None:
            return f"< {self.high}" if self.high_open else f"at most {self.high}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


_SEED_MAX = 2**32 - 1  # numpy's seed range, which accelerate's set_seed uses
_OPTIONAL = "; leave it unset (null) for no limit"

RANGES: dict[str, Range] = {
    "data.token_column": Range(hint="0-based column index, negative counts from the end; the file's column count "
                                    "is checked when it is read"),
    "data.tag_column": Range(hint="0-based column index, negative counts from the end; the file's column count "
                                  "is checked when it is read"),
    "data.max_length": Range(8, hint="subwords per window, special tokens included"),
    "data.stride": Range(0, hint="and below max_length / 2"),
    "data.max_train_examples": Range(1, hint="the number of training sentences/questions kept" + _OPTIONAL),
    "data.max_eval_examples": Range(1, hint="the number of dev/test sentences/questions kept" + _OPTIONAL),
    "data.doc_stride": Range(0, hint="and, for task qa, below data.max_length"),
    "data.max_answer_length": Range(1),
    "data.train_articles": Range(0, hint="article indices [start, end)"),
    "data.dev_articles": Range(0, hint="article indices [start, end)"),
    "data.test_articles": Range(0, hint="article indices [start, end)"),
    "train.epochs": Range(1),
    "train.max_steps": Range(1, hint="optimizer steps" + _OPTIONAL + " (epochs then decides)"),
    "train.batch_size": Range(1),
    "train.eval_batch_size": Range(1),
    "train.grad_accum": Range(1),
    "train.learning_rate": Range(0, 1, low_open=True, hint="typical fine-tuning rates are 1e-5 to 1e-3"),
    "train.crf_learning_rate": Range(0, 1, low_open=True, hint="used by model.head=crf only"),
    "train.weight_decay": Range(0, hint="0 disables it"),
    "train.warmup_ratio": Range(0, 1, high_open=True),
    "train.max_grad_norm": Range(0, hint="0 disables clipping"),
    "train.seed": Range(0, _SEED_MAX),
    "train.early_stopping_patience": Range(1, hint="epochs without dev F1 improvement" + _OPTIONAL),
    "train.log_every": Range(1),
}
"""The range of every numeric config key (a test checks that each int/float field of the dataclasses is here).
List-valued keys are checked item by item."""


def _get(cfg: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _check_ranges(cfg: Config) -> None:
    for key, rng in RANGES.items():
        value = _get(cfg, key)
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not rng.contains(item):
                hint = f" ({rng.hint})" if rng.hint else ""
                raise ConfigError(f"config key '{key}' must be {rng.describe()}{hint}, got {value!r}")
    d = cfg.data
    if d.stride >= d.max_length // 2:
        raise ConfigError(
            f"config key 'data.stride' must be in [0, max_length/2) = [0, {d.max_length // 2}), got {d.stride}"
        )
    if cfg.task == "qa" and d.doc_stride >= d.max_length:
        raise ConfigError(f"config key 'data.doc_stride' must be below data.max_length={d.max_length} (the window "
                          f"also holds the question), got {d.doc_stride}")
    if d.token_column == d.tag_column:
        raise ConfigError(f"config keys 'data.token_column' and 'data.tag_column' are both {d.tag_column}: the word "
                          f"and the tag must be different columns")
    if d.format == "hub" and not d.hub_dataset:
        raise ConfigError("data.format is 'hub' but data.hub_dataset is not set: name the dataset or saved directory")
    for key in ("train_articles", "dev_articles", "test_articles"):
        rng = getattr(d, key)
        if rng is not None and (len(rng) != 2 or not 0 <= rng[0] < rng[1]):
            raise ConfigError(f"config key 'data.{key}' must be [start, end) with 0 <= start < end, got {rng}")
    if cfg.task == "ner" and d.format == "squad":
        raise ConfigError("data.format 'squad' needs task: qa")
    if not cfg.train.eval_every_epoch and cfg.train.early_stopping_patience:
        raise ConfigError("train.early_stopping_patience needs dev scores after every epoch, but "
                          "train.eval_every_epoch=false evaluates after the last one only; drop one of the two")
    for key in ("model.name_or_path", "data.train", "train.output_dir"):
        if not str(_get(cfg, key)).strip():
            raise ConfigError(f"config key '{key}' is empty")
    _check_encoding(d.encoding)
    if cfg.hub.repo_id is not None:
        check_repo_id(cfg.hub.repo_id)


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(f"config key 'data.encoding' is {encoding!r}, which Python does not know; use a codec "
                          f"name such as utf-8, latin-1 or cp1252") from None
    if "\n -".encode(encoding, errors="replace") != b"\n -":
        raise ConfigError(f"config key 'data.encoding' is {encoding!r}; the readers split lines and columns on ASCII "
                          f"bytes, so use an ASCII-compatible encoding (utf-8, latin-1, cp1252...) or convert the "
                          f"files to UTF-8")


def _setting(key: str) -> str:
    return key if key.startswith("-") else f"config key '{key}'"


def check_repo_id(repo_id: str, key: str = "hub.repo_id") -> str:
    """Return ``repo_id`` if the Hub accepts it as ``namespace/name``, else raise :class:`ConfigError` naming the rule.

    The rule is huggingface_hub's ``validate_repo_id`` with a namespace required and ASCII only (as the Hub
    itself): letters, digits, ``-``, ``_`` and ``.``, at most 96 characters per part, no ``--`` or ``..``, no part
    starting or ending with ``-`` or ``.``, no ``.git`` at the end. ``key`` names the setting in the message
    (``hub.repo_id``, or ``--repo-id`` for ``seqtag push``).

    >>> check_repo_id("alice/minilm-wnut17")
    'alice/minilm-wnut17'
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    rule = ("a Hub repo id is namespace/name, each part made of ASCII letters, digits, '-', '_' and '.', at most 96 "
            "characters, without '--' or '..', not starting or ending with '-' or '.', and not ending in '.git'")
    if repo_id.count("/") != 1:
        raise ConfigError(f"{_setting(key)} must look like 'namespace/name', got {repo_id!r}; {rule}")
    try:
        validate_repo_id(repo_id)
        valid = repo_id.isascii()  # validate_repo_id's \w lets non-ASCII letters through; the Hub does not
    except HFValidationError:
        valid = False
    if not valid:
        raise ConfigError(f"{_setting(key)} is {repo_id!r}, which the Hub does not accept: {rule}")
    return repo_id


def check_head(cfg: Config) -> Config:
    """Refuse what ``model.head`` and ``predict.decoding`` do not combine with; return ``cfg`` with an unset NER
    ``predict.decoding`` set to its default (viterbi).

    The CRF head's loss is its own negative log-likelihood, so a registry loss other than plain cross-entropy
    would be silently ignored; its chain runs over one position per word, which ``data.label_all_tokens`` breaks.
    Both are NER options: the QA decoders already return only well-formed spans.
    """
    if cfg.model.head == "crf":
        if cfg.task != "ner":
            raise ConfigError("model.head=crf is for task: ner; a QA run chooses its head with data.qa_head "
                              "(pointer | tagging), whose span decoders only return well-formed answers")
        if cfg.loss.name != "cross_entropy" or cfg.loss.params:
            params = "".join(f" loss.{k}={v!r}" for k, v in cfg.loss.params.items())
            raise ConfigError(f"model.head=crf trains with the CRF's own negative log-likelihood, so loss.name="
                              f"{cfg.loss.name}{params} would be ignored; use loss.name=cross_entropy without "
                              f"parameters with model.head=crf, or model.head=linear for this loss")
        if cfg.data.label_all_tokens:
            raise ConfigError("model.head=crf runs its chain over one position per word (the first subword), "
                              "but data.label_all_tokens=true labels every subword; set data.label_all_tokens=false "
                              "or use model.head=linear")
    if cfg.task != "ner":
        if cfg.predict.decoding is not None:
            raise ConfigError(f"predict.decoding={cfg.predict.decoding} is for task: ner; the QA decoders already "
                              f"return only well-formed spans. Remove predict.decoding")
        return cfg
    if cfg.predict.decoding is None:
        cfg = dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, decoding=_default_decoding(cfg)))
    return cfg


def _default_decoding(cfg: Config) -> str | None:
    """``predict.decoding`` when unset: viterbi for NER (see :class:`PredictConfig`), None for QA."""
    return None if cfg.task != "ner" else "viterbi"


def from_dict(raw: dict) -> Config:
    """Build and validate a :class:`Config` from a nested mapping (as read from YAML)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections (model, data, loss, train, predict, hub), got "
                          f"{type(raw).__name__} {raw!r:.60}")
    cfg = _build(Config, raw, "")
    _check_ranges(cfg)
    return check_head(cfg)


# Keys added after run directories were first written: saved only when they differ from their default, so a
# run's saved seqtag_config.yaml from before still compares equal when the run is resumed.
_SAVED_WHEN_SET = {("data", "encoding"), ("model", "head"), ("train", "crf_learning_rate")}


def to_dict(cfg: Config, *, every_default: bool = False) -> dict:
    """The resolved config as a plain nested dict, loss parameters written flat (round-trips through from_dict).

    ``every_default`` also writes the loss's default parameters (from the loss registry) and the keys that are
    otherwise saved only when set; the config it describes is the same.

    >>> to_dict(from_dict({"model": {"name_or_path": "m"}, "data": {"train": "t"}}), every_default=True)["loss"]
    {'name': 'cross_entropy', 'weight': None, 'label_smoothing': 0.0}
    """
    out = dataclasses.asdict(cfg)
    loss = out.pop("loss")
    params = loss["params"]
    if every_default:
        params = validate_loss_params(loss["name"], params)
    out["loss"] = {"name": loss["name"], **params}
    if not every_default:
        for section, key in _SAVED_WHEN_SET:
            default = next(f.default for f in dataclasses.fields(_SECTIONS[section]) if f.name == key)
            if out[section][key] == default:
                del out[section][key]
        if out["predict"]["decoding"] == _default_decoding(cfg):  # likewise: what the head implies is not saved
            del out["predict"]  # (its only key)
    return out


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value, e.g. train.learning_rate=2e-4")
    key, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"override {item!r}: the value of '{key.strip()}' is not a valid YAML scalar ({first}); "
                          f"quote it, e.g. {key.strip()}='\"text\"'") from None
    return key.strip().split("."), value


def apply_overrides(cfg: Config | dict, overrides: list[str]) -> Config:
    """Apply ``key.sub=value`` overrides (values parsed as YAML scalars) and re-validate."""
    if not isinstance(cfg, Config | dict):
        return from_dict(cfg)  # raises, naming what the top level is
    raw = to_dict(cfg) if isinstance(cfg, Config) else dict(cfg)
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy
    for item in overrides:
        path, value = _parse_override(item)
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return from_dict(raw)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (safe loader) and apply overrides. Errors name the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory; pass a YAML file (a run's config is "
                          f"{path / 'seqtag_config.yaml'}, the shipped configs are in configs/)")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; the shipped configs are in configs/")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(e).split())}") from None
    if raw is None:
        raise ConfigError(f"config file {path} is empty; a config needs at least model.name_or_path and data.train "
                          f"(see configs/quickstart.yaml)")
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: the top level is a {type(raw).__name__} ({raw!r:.40}), but a config "
                          f"is a mapping of sections (model:, data:, loss:, train:, hub:); see configs/quickstart.yaml")
    try:
        return apply_overrides(raw, overrides or [])
    except ConfigError as e:
        raise type(e)(f"{path}: {e}") from None


def dump_config(cfg: Config, *, every_default: bool = False) -> str:
    """The resolved config as YAML text (defaults filled in; ``every_default``: see :func:`to_dict`)."""
    return yaml.safe_dump(to_dict(cfg, every_default=every_default), sort_keys=False, allow_unicode=True)
