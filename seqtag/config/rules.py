"""The rules a config must satisfy beyond its types: each key's range (:data:`RANGES`, which
``docs/config.md`` lists), the file encoding, the Hub repo id, and the combinations of head, task, loss
and decoding (:func:`check_head`)."""

from __future__ import annotations

import codecs
import dataclasses
import math
from typing import Any, NamedTuple

from seqtag.config.heads import SPAN_DECODING, check_loss_kind, check_span_head
from seqtag.config.schema import Config
from seqtag.errors import ConfigError


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


def check_ranges(cfg: Config) -> None:
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
        cfg = dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, decoding=default_decoding(cfg)))
    return cfg


def default_decoding(cfg: Config) -> str | None:
    """``predict.decoding`` when unset: viterbi for NER (see :class:`PredictConfig`), nested for the span head,
    None for QA."""
    if cfg.task != "ner":
        return None
    return SPAN_DECODING if cfg.model.head == "span" else "viterbi"
