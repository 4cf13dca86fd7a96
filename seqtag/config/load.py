"""Loading and validating a config: types, choices, ranges and cross-key rules checked at load, before
any model or data is touched; ``key=value`` overrides; the YAML a run saves.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from seqtag.config.rules import check_head, check_ranges, default_decoding
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


def from_dict(raw: dict) -> Config:
    """Build and validate a :class:`Config` from a nested mapping (as read from YAML)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections (model, data, loss, train, predict, hub), got "
                          f"{type(raw).__name__} {raw!r:.60}")
    cfg = _build(Config, raw, "")
    check_ranges(cfg)
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
        if out["predict"]["decoding"] == default_decoding(cfg):  # likewise: what the head implies is not saved
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
