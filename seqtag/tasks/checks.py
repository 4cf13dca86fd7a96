"""Checks of a config against the things it names, before anything is trained: the output directory, the data
files, the model directory, the model's position limit, the precision on this machine, and the loss's per-class
values against the label set.

:func:`check_start` is what training checks before it loads anything, and ``seqtag validate`` runs the same
function, reading the labels too (``read_labels``; training reads the data anyway, and checks the loss against
the label set it builds with :func:`check_loss_for_labels`). A Hub model's position limit is checked from the
local Hugging Face cache, or, when its config is not there, by :func:`check_loaded_model` once training has loaded
it. Every problem raises a :class:`~seqtag.errors.SeqtagError` naming the key, the value and the fix; what was
found is returned as notes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from seqtag import runs
from seqtag.config import Config, LossConfig, ModelConfig, dump_config
from seqtag.data.files import check_readable_file
from seqtag.data.hub_datasets import is_saved_dataset
from seqtag.data.ner import train_labels
from seqtag.data.qa_windows import QA_TAGS
from seqtag.data.spans import read_span_split
from seqtag.errors import ConfigError
from seqtag.inference.predict import warn_if_crf_argmax
from seqtag.losses import LOSSES, check_class_values
from seqtag.modeling.accel import bf16_is_emulated, check_precision
from seqtag.modeling.loading import load_tokenizer, model_path
from seqtag.paths import resolve

QUICK_BYTES = 64 * 2**20
"""Training files up to this size are read by ``validate`` to find the label set (about a second per 10 MiB)."""

# Models whose position ids start after the padding index (RoBERTa's convention): the usable length is
# max_position_embeddings - (pad_token_id + 1), e.g. 514 - 2 = 512.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm",
                     "data2vec-text", "xmod", "longformer", "ibert", "mpnet"}
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                    "tokenizer.model")


def saved_config_text(cfg: Config) -> str:
    """The config as a run directory saves it: resolved, with ``train.resume`` and ``train.overwrite`` off, so
    running the saved config again never deletes or continues a run by accident."""
    return dump_config(replace(cfg, train=replace(cfg.train, resume=False, overwrite=False)))


def check_start(cfg: Config, *, read_labels: bool = True) -> list[str]:
    """Everything training checks before it loads a model or reads data, in its order; ``seqtag validate`` runs
    this same function. Returns notes (one line each).

    * the output directory: free, or a run to overwrite or resume with the same config
      (:func:`seqtag.runs.check_run_dir`);
    * what the config names (:func:`check_config_inputs`, ``read_labels`` passed on);
    * ``train.mixed_precision`` on this machine (:func:`seqtag.modeling.accel.check_precision`: fp16 needs a GPU,
      bf16 on a GPU needs its support); a note when bf16 would be emulated on this CPU;
    * a warning when a CRF run is to be scored by argmax (:func:`seqtag.inference.predict.warn_if_crf_argmax`).
    """
    tc = cfg.train
    runs.check_run_dir(Path(tc.output_dir), saved_config_text(cfg), overwrite=tc.overwrite, resume=tc.resume)
    notes = check_config_inputs(cfg, read_labels=read_labels)
    precision = check_precision(tc.mixed_precision)
    emulated = " (emulated on this CPU: many times slower than fp32)" if precision == "bf16" and bf16_is_emulated() else ""
    shown = "fp32" if precision == "no" else precision
    notes.append(f"train.mixed_precision={tc.mixed_precision}: {shown} on this machine{emulated}")
    warn_if_crf_argmax(cfg.model.head == "crf", cfg.predict.decoding, "model.head=crf with predict.decoding=argmax")
    return notes


def check_config_inputs(cfg: Config, *, read_labels: bool = True) -> list[str]:
    """Check what ``cfg`` names; return notes on what was found (one line each).

    * every configured data file exists, is a file and can be read (only its first byte is read);
    * a local model directory (a path or ``pkg:``) holds ``config.json`` and tokenizer files;
    * ``data.max_length`` fits the model's position embeddings (:func:`model_position_limit`: a local model's
      config, or a Hub model's in the local Hugging Face cache; one not there is checked once loaded);
    * with ``read_labels``, for NER the training file (up to :data:`QUICK_BYTES`) is read as training reads it:
      the tag scheme and label set go into the notes, and per-class loss values (``loss.weight``,
      ``loss.alpha``) must have one value per label. QA's tagging head has the labels O, B-ANS, I-ANS.
    """
    notes = _check_data_files(cfg)
    notes += _check_model(cfg)
    if not read_labels:
        return notes
    if cfg.task == "qa":
        if cfg.data.qa_head == "tagging":
            check_loss_for_labels(cfg.loss, QA_TAGS, "the QA tagging head")
        elif _class_values(cfg.loss):
            name = _class_values(cfg.loss)[0]
            raise ConfigError(f"loss.{name} gives one value per class, but the classes of the QA pointer head are "
                              f"token positions; drop loss.{name} or use data.qa_head=tagging")
        return notes
    if cfg.data.format == "hub":
        return notes + ["labels not checked: data.format=hub is read at training time"]
    if cfg.model.head == "span":
        return notes + _span_notes(cfg)
    path = Path(resolve(cfg.data.train, "data.train"))
    if path.stat().st_size > QUICK_BYTES:
        return notes + [f"labels not checked: {path} is {path.stat().st_size / 2**20:.0f} MiB (validate reads "
                        f"training files up to {QUICK_BYTES // 2**20} MiB)"]
    scheme, labels = train_labels(cfg.data)
    how = "detected" if cfg.data.scheme == "auto" else "data.scheme"
    notes.append(f"data.train: tag scheme {scheme} ({how}); {len(labels)} labels in {cfg.data.train_scheme}: "
                 f"{', '.join(labels)}")
    check_loss_for_labels(cfg.loss, labels, f"the training data ({path})")
    return notes


def _span_notes(cfg: Config) -> list[str]:
    """The span head's training split read as training reads it (raw-text spans split into words by the model's
    tokenizer): its sentences, spans and entity types."""
    sentences, notes = read_span_split(cfg.data, "train", load_tokenizer(cfg.model))
    types = sorted({t for s in sentences for _, _, t in s.spans})
    widened = f", {notes['widened']} character spans widened to whole words" if notes.get("widened") else ""
    return [f"data.train: {len(sentences)} sentences, {sum(len(s.spans) for s in sentences)} entity spans{widened}; "
            f"{len(types)} entity types: {', '.join(types)}"]


def _class_values(loss: LossConfig) -> list[str]:
    """The loss parameters given as per-class lists (``weight``, ``alpha``)."""
    spec = LOSSES[loss.name]
    return [k for k, check in spec.checks.items() if check is check_class_values and loss.params.get(k) is not None]


def check_loss_for_labels(loss: LossConfig, labels: Sequence[str], source: str = "the training data") -> None:
    """Raise :class:`ConfigError` when a per-class loss value list does not have one value per label.

    >>> check_loss_for_labels(LossConfig("focal", {"alpha": [1, 2]}), ["O", "B-X", "I-X"])
    Traceback (most recent call last):
    ...
    seqtag.errors.ConfigError: loss.alpha has 2 values but the training data gives 3 labels (O, B-X, I-X); give one value per label, in this order
    """
    for name in _class_values(loss):
        values = loss.params[name]
        if len(values) != len(labels):
            raise ConfigError(f"loss.{name} has {len(values)} values but {source} gives {len(labels)} labels "
                              f"({', '.join(labels)}); give one value per label, in this order")


def _check_data_files(cfg: Config) -> list[str]:
    d = cfg.data
    splits = [s for s in ("train", "dev", "test") if getattr(d, s)]
    if d.format == "hub":
        local = Path(resolve(d.hub_dataset, "data.hub_dataset")).expanduser()
        kind = ("a saved dataset directory" if is_saved_dataset(local) else
                "a local path for datasets.load_dataset" if local.exists() else
                "a Hub dataset id (not checked: that needs the Hub)")
        return [f"data.hub_dataset: {d.hub_dataset} is {kind}; splits {', '.join(getattr(d, s) for s in splits)}"]
    for split in splits:
        check_readable_file(resolve(getattr(d, split), f"data.{split}"), f"data.{split}")
    return [f"data files readable: {', '.join(f'data.{s}' for s in splits)}"]


def _check_model(cfg: Config) -> list[str]:
    path = Path(model_path(cfg.model))  # a local-looking path that does not exist fails here
    key = "model.name_or_path"
    if not path.is_dir():
        limit = model_position_limit(cfg.model)
        _check_max_length(cfg, limit)
        return [f"{key}: {cfg.model.name_or_path} is a Hub id; " + (
            f"position limit {limit[0]} >= data.max_length={cfg.data.max_length} ({limit[1]})" if limit else
            "its position limit is checked once it is loaded (its config is not in the local Hugging Face cache)")]
    if not (path / "config.json").is_file():
        raise ConfigError(f"{key}: {path} has no config.json, so it is not a from_pretrained model directory (an "
                          f"empty directory or an interrupted download?); point {key} at a model directory or a "
                          f"Hub id")
    if not any((path / f).is_file() for f in (*_TOKENIZER_FILES, "tokenizer_config.json")):
        # (a tokenizer_config.json alone may be a tokenizer without vocabulary files: load_tokenizer says more)
        raise ConfigError(f"{key}: {path} holds no tokenizer files ({', '.join(_TOKENIZER_FILES)}); save the "
                          f"tokenizer into it (tokenizer.save_pretrained) or point {key} at a complete model")
    limit = model_position_limit(cfg.model)
    _check_max_length(cfg, limit)
    return [f"{key}: local model directory {path}"
            + (f", position limit {limit[0]} >= data.max_length={cfg.data.max_length}" if limit else "")]


def _check_max_length(cfg: Config, limit: tuple[int, str] | None) -> None:
    if limit is not None and cfg.data.max_length > limit[0]:
        raise ConfigError(f"data.max_length={cfg.data.max_length} is above the model's position limit of {limit[0]} "
                          f"({limit[1]}); set data.max_length to at most {limit[0]} (longer sentences are windowed)")


def check_loaded_model(cfg: Config, model) -> None:
    """After training loaded the model, before it trains: ``data.max_length`` against the position limit of the
    loaded model's config, with :func:`check_config_inputs`'s message. It catches what the start checks could not
    read (a Hub model whose config was not in the local cache); past the limit, position ids index outside the
    embedding table (an IndexError on a CPU, a device-side assert on a GPU)."""
    _check_max_length(cfg, position_limit(model.config.to_dict(), f"the config of {cfg.model.name_or_path}"))


def model_position_limit(model: ModelConfig) -> tuple[int, str] | None:
    """The longest input a model's position embeddings allow, and where that number comes from.

    Read from ``config.json``: a local model's, or a Hub model's in the local Hugging Face cache (no network).
    ``None`` for a Hub model not in the cache, a model without absolute positions, or a config without the field.
    """
    path = Path(model_path(model))
    path = path / "config.json" if path.is_dir() else _cached_hub_config(model)
    if path is None or not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"model.name_or_path: {path} is not valid JSON ({e}); the model directory is damaged") from None
    return position_limit(config, str(path)) if isinstance(config, dict) else None


def _cached_hub_config(model: ModelConfig) -> Path | None:
    """The ``config.json`` of Hub model ``model`` (at ``model.revision``) in the local Hugging Face cache, if there."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model.name_or_path, "config.json", revision=model.revision)
    except ValueError:  # not a valid repo id; loading it will say so
        return None
    return Path(found) if isinstance(found, str) else None


def position_limit(config: dict, source: str) -> tuple[int, str] | None:
    """The position limit a transformers config (as a dict) gives, and where it comes from (``source``): its
    ``max_position_embeddings``, less the padding offset of RoBERTa-style models; None without absolute positions.

    >>> position_limit({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}, "c.json")
    (512, "max_position_embeddings=514 in c.json, less 2 for roberta's padding offset")
    """
    n = config.get("max_position_embeddings")
    if not isinstance(n, int) or isinstance(n, bool) or config.get("position_biased_input") is False:
        return None
    where = f"max_position_embeddings={n} in {source}"
    if config.get("model_type") in _OFFSET_POSITIONS:
        offset = int(config.get("pad_token_id") or 1) + 1
        return n - offset, f"{where}, less {offset} for {config['model_type']}'s padding offset"
    return n, where
