"""Checks of a config against the things it names, before anything is trained: the data files, the model
directory, the model's position limit, and the loss's per-class values against the label set.

``seqtag validate`` runs :func:`check_config_inputs` in full; training runs it without reading the labels
(``read_labels=False``: the data is about to be read anyway) and checks the loss against the label set it builds
with :func:`check_loss_for_labels`. Every problem raises a :class:`~seqtag.errors.SeqtagError` naming the key,
the value and the fix; what was found is returned as notes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from seqtag.config import Config, LossConfig, ModelConfig
from seqtag.data.files import check_readable_file
from seqtag.data.hub_datasets import is_saved_dataset
from seqtag.data.ner import train_labels
from seqtag.data.qa_windows import QA_TAGS
from seqtag.data.spans import read_span_split
from seqtag.errors import ConfigError
from seqtag.losses import LOSSES, check_class_values
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


def check_config_inputs(cfg: Config, *, read_labels: bool = True) -> list[str]:
    """Check what ``cfg`` names; return notes on what was found (one line each).

    * every configured data file exists, is a file and can be read (only its first byte is read);
    * a local model directory (a path or ``pkg:``) holds ``config.json`` and tokenizer files, and
      ``data.max_length`` fits its position embeddings (Hub ids are not checked: that needs the network);
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
    if not path.is_dir():
        return [f"model.name_or_path: {cfg.model.name_or_path} is a Hub id (not checked: that needs the Hub)"]
    key = "model.name_or_path"
    if not (path / "config.json").is_file():
        raise ConfigError(f"{key}: {path} has no config.json, so it is not a from_pretrained model directory (an "
                          f"empty directory or an interrupted download?); point {key} at a model directory or a "
                          f"Hub id")
    if not any((path / f).is_file() for f in (*_TOKENIZER_FILES, "tokenizer_config.json")):
        # (a tokenizer_config.json alone may be a tokenizer without vocabulary files: load_tokenizer says more)
        raise ConfigError(f"{key}: {path} holds no tokenizer files ({', '.join(_TOKENIZER_FILES)}); save the "
                          f"tokenizer into it (tokenizer.save_pretrained) or point {key} at a complete model")
    limit = model_position_limit(cfg.model)
    if limit is not None and cfg.data.max_length > limit[0]:
        raise ConfigError(f"data.max_length={cfg.data.max_length} is above the model's position limit of {limit[0]} "
                          f"({limit[1]}); set data.max_length to at most {limit[0]} (longer sentences are windowed)")
    return [f"{key}: local model directory {path}"
            + (f", position limit {limit[0]} >= data.max_length={cfg.data.max_length}" if limit else "")]


def model_position_limit(model: ModelConfig) -> tuple[int, str] | None:
    """The longest input a local model's position embeddings allow, and where that number comes from.

    Read from ``config.json``'s ``max_position_embeddings`` (less the padding offset of RoBERTa-style models).
    ``None`` for a Hub id, a model without absolute positions, or a config without the field.
    """
    path = Path(model_path(model)) / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"model.name_or_path: {path} is not valid JSON ({e}); the model directory is damaged") from None
    n = config.get("max_position_embeddings")
    if not isinstance(n, int) or isinstance(n, bool) or config.get("position_biased_input") is False:
        return None
    where = f"max_position_embeddings={n} in {path}"
    if config.get("model_type") in _OFFSET_POSITIONS:
        offset = int(config.get("pad_token_id") or 1) + 1
        return n - offset, f"{where}, less {offset} for {config['model_type']}'s padding offset"
    return n, where
