"""The config rules of the span head (``model.head: span``) and of the two kinds of loss, checked at load by
:func:`seqtag.config.rules.check_head`."""

from __future__ import annotations

import dataclasses

from seqtag.config.schema import Config
from seqtag.errors import ConfigError
from seqtag.losses import LOSSES

SPAN_DECODING = "nested"
"""``predict.decoding`` of a span-head run when unset: every span scored above the threshold."""


def check_loss_kind(cfg: Config) -> None:
    """Refuse a loss of the other kind of head (:attr:`seqtag.losses.LossSpec.kind`): span losses score candidate
    spans (``model.head: span``), the others classes per position (the linear and CRF heads, QA)."""
    kind = LOSSES[cfg.loss.name].kind
    if cfg.model.head == "span" and kind != "span":
        span = ", ".join(n for n, spec in LOSSES.items() if spec.kind == "span")
        raise ConfigError(f"model.head=span scores candidate spans, so it needs a span loss ({span}); loss.name="
                          f"{cfg.loss.name} classifies each token. Set loss.name=span_multilabel, for example")
    if cfg.model.head != "span" and kind == "span":
        where = f"model.head={cfg.model.head}" if cfg.task == "ner" else f"task: {cfg.task}"
        raise ConfigError(f"loss.name={cfg.loss.name} scores the candidate spans of model.head=span, but {where} "
                          f"classifies each token; use a token loss (cross_entropy, focal...) or model.head=span")


def check_span_head(cfg: Config) -> Config:
    """Refuse what ``model.head: span`` does not combine with; return ``cfg`` with an unset ``predict.decoding`` set
    to :data:`SPAN_DECODING`."""
    if cfg.task != "ner":
        raise ConfigError("model.head=span is for task: ner (nested entities); a QA run chooses its head with "
                          "data.qa_head (pointer | tagging)")
    if cfg.data.label_all_tokens:
        raise ConfigError("data.label_all_tokens is for the token heads; model.head=span reads each word at its "
                          "first subword. Set data.label_all_tokens=false")
    if cfg.train.dynamics:
        raise ConfigError("train.dynamics logs per-token loss weights by O/entity tokens, which model.head=span does "
                          "not have; set train.dynamics=false")
    if cfg.predict.decoding in ("argmax", "viterbi"):
        raise ConfigError(f"predict.decoding={cfg.predict.decoding} is for the token heads; model.head=span decodes "
                          f"nested (every span above the threshold) or flat (the best non-overlapping ones)")
    if cfg.predict.decoding is None:
        cfg = dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, decoding=SPAN_DECODING))
    return cfg
