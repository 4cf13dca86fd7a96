"""What differs between NER and QA, behind one small record the training loop uses.

The loop in :mod:`seqtag.train` never branches on the task: it asks a :class:`TaskSetup` for the training
features, the loss of a batch and the evaluation of a split.
"""

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
    evaluate: Callable  # (model, split, accelerator, batch_size) -> metrics dict for that split
    eval_splits: list[str]  # "dev", "test" when configured
    info: dict = field(default_factory=dict)  # written into run_info.json (labels, scheme, window counts...)
    describe_examples: Callable = lambda batch: []  # batch -> short text of its examples (for NaN reports)


def setup_task(cfg, tokenizer, accelerator) -> TaskSetup:
    if cfg.task == "ner":
        from seqtag.tasks.ner import setup
    else:
        from seqtag.tasks.qa import setup
    return setup(cfg, tokenizer, accelerator)
