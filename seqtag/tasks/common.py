"""The record a task gives the training loop: what differs between NER and QA, behind one small interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TaskSetup:
    model: Any  # a transformers model returning logits
    train_features: Any  # datasets.Dataset with the model's columns and "length"
    columns: list[str]  # the feature columns a batch carries
    loss_step: Callable  # (model, batch, loss) -> (loss_sum, n_labelled, logits (N, C), targets (N,))
    evaluate: Callable  # (model, split, accelerator, batch_size) -> scores of that split (seqtag.runs.SplitScores keys)
    eval_splits: list[str]  # "dev", "test" when configured
    info: dict = field(default_factory=dict)  # fields of seqtag.runs.RunInfo this task fills (labels, windows...)
    entity_label_ids: list[int] = field(default_factory=list)  # label ids the dynamics diagnostics call entities
    describe_examples: Callable = lambda batch: []  # batch -> short text of its examples (for NaN reports)
