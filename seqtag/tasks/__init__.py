"""What differs between NER and QA, behind one small record the training loop uses.

The loop in :mod:`seqtag.training.loop` never branches on the task: it asks a :class:`~seqtag.tasks.common.TaskSetup`
for the training features, the loss of a batch and the evaluation of a split.
"""

from __future__ import annotations

from seqtag.tasks import ner, qa
from seqtag.tasks.common import TaskSetup


def setup_task(cfg, tokenizer, accelerator) -> TaskSetup:
    return (ner.setup if cfg.task == "ner" else qa.setup)(cfg, tokenizer, accelerator)
