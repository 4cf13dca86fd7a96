"""Loading and validating a config: types, choices, ranges and cross-key rules checked at load, before
any model or data is touched; ``key=value`` overrides; the YAML a run saves."""

from __future__ import annotations

import codecs
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from seqtag.config.heads import SPAN_DECODING, check_loss_kind, check_span_head
from seqtag.config.schema import CHOICES, SECTIONS, Config, LossConfig
from seqtag.errors import ConfigError
from seqtag.losses import validate_loss_params


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
        if f.name in SECTIONS and not prefix:
            if not isinstance(value, dict):
                raise ConfigError(f"config section '{key}' must be a mapping of keys to values, got {value!r}")
            kwargs[f.name] = _build_loss(value) if f.name == "loss" else _build(SECTIONS[f.name], value, key)
            continue
        if key == "train.mixed_precision" and value is False:
            value = "no"  # YAML 1.1 reads a bare `no` (in a file or in train.mixed_precision=no) as false
        value = _check_type(key, value, hints[f.name])
        if key in CHOICES and value is not None and value not in CHOICES[key]:
            raise ConfigError(f"config key '{key}' is {value!r}; valid values: {', '.join(CHOICES[key])}")
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
    "model.max_span_length": Range(1, hint="words; model.head=span scores the spans of 1 to this many words"),
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
    if cfg.task == "ner" and d.allow_unanswerable:
        raise ConfigError("data.allow_unanswerable is for task: qa (SQuAD 2.0 questions without an answer)")
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

    A loss belongs to one kind of head (:attr:`seqtag.losses.LossSpec.kind`): the span losses score candidate
    spans, the others classes per position, so each is refused for the other kind. The span head decodes
    ``nested`` or ``flat``; the token heads ``argmax`` or ``viterbi``.
    """
    check_loss_kind(cfg)
    if cfg.model.head == "span":
        return check_span_head(cfg)
    if cfg.predict.decoding in ("nested", "flat"):
        raise ConfigError(f"predict.decoding={cfg.predict.decoding} is for model.head=span; model.head="
                          f"{cfg.model.head} decodes argmax or viterbi")
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
    """``predict.decoding`` when unset: viterbi for NER (see :class:`PredictConfig`), nested for the span head,
    None for QA."""
    if cfg.task != "ner":
        return None
    return SPAN_DECODING if cfg.model.head == "span" else "viterbi"


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
_SAVED_WHEN_SET = {("data", "encoding"), ("model", "head"), ("train", "crf_learning_rate"),
                   ("data", "allow_unanswerable"), ("model", "max_span_length"), ("data", "on_misaligned")}


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
            default = next(f.default for f in dataclasses.fields(SECTIONS[section]) if f.name == key)
            if out[section][key] == default:
                del out[section][key]
        if out["predict"]["decoding"] == _default_decoding(cfg):  # likewise: what the head implies is not saved
            del out["predict"]  # (its only key)
    return out


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise _override_error(ConfigError, f"override {item!r} must look like key.sub=value, e.g. "
                              f"train.learning_rate=2e-4", [item])
    key, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        first = str(e).strip().splitlines()[0]
        raise _override_error(ConfigError, f"override {item!r}: the value of '{key.strip()}' is not a valid YAML "
                              f"scalar ({first}); quote it, e.g. {key.strip()}='\"text\"'", [item]) from None
    return key.strip().split("."), value


def _override_error(error: type[ConfigError], message: str, overrides: list[str]) -> ConfigError:
    """A config error caused by ``overrides`` (``key=value`` on the command line), not by the config they change:
    its message starts with them, and its ``overrides`` attribute lists them (:func:`load_config` then does not
    name the file)."""
    e = error(message)
    e.overrides = overrides  # type: ignore[attr-defined]
    return e


def _overridden(raw: dict, overrides: list[str]) -> dict:
    """``raw`` (deep-copied) with ``overrides`` set in it; not validated."""
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy
    for item in overrides:
        path, value = _parse_override(item)
        node = raw
        for part in path[:-1]:
            if not isinstance(node.get(part, {}), dict):
                raise _override_error(ConfigError, f"override {item!r}: '{part}' is not a section", [item])
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return raw


def _blamed(raw: dict, overrides: list[str], error: ConfigError) -> list[str]:
    """The overrides that cause ``error``: those naming the key the message names, else each override without
    which the config is valid. Empty when the error is the config's own."""
    keys = {item: item.partition("=")[0].strip() for item in overrides}
    named = [item for item, key in keys.items() if f"'{key}'" in str(error) or f"{key}=" in str(error)]
    if named:
        return named
    blamed = []
    for item in overrides:
        try:
            from_dict(_overridden(raw, [o for o in overrides if o is not item]))
        except ConfigError:
            continue
        blamed.append(item)
    return blamed


def apply_overrides(cfg: Config | dict, overrides: list[str]) -> Config:
    """Apply ``key.sub=value`` overrides (values parsed as YAML scalars) and re-validate.

    An error the overrides cause starts with them (``override 'train.epochs=-1': ...``), so the command line, not
    the config it changes, is named as its source (:func:`_blamed`).
    """
    if not isinstance(cfg, Config | dict):
        return from_dict(cfg)  # raises, naming what the top level is
    raw = to_dict(cfg) if isinstance(cfg, Config) else dict(cfg)
    try:
        return from_dict(_overridden(raw, overrides))
    except ConfigError as e:
        blamed = [] if getattr(e, "overrides", None) or not overrides else _blamed(raw, overrides, e)
        if not blamed:
            raise
        which = ("override " if len(blamed) == 1 else "overrides ") + ", ".join(map(repr, blamed))
        raise _override_error(type(e), f"{which}: {e}", blamed) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (safe loader) and apply overrides. Errors name the file, or the override that caused
    them."""
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
        if getattr(e, "overrides", None):
            raise  # the command line's error, not the file's
        raise type(e)(f"{path}: {e}") from None


def dump_config(cfg: Config, *, every_default: bool = False) -> str:
    """The resolved config as YAML text (defaults filled in; ``every_default``: see :func:`to_dict`)."""
    return yaml.safe_dump(to_dict(cfg, every_default=every_default), sort_keys=False, allow_unicode=True)
