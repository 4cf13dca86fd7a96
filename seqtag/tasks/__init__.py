"""What differs between NER and QA, behind one small record the training loop uses.

The loop in :mod:`seqtag.training.loop` never branches on the task: it asks a :class:`~seqtag.tasks.common.TaskSetup`
for the training features, the loss of a batch and the evaluation of a split.

- :mod:`~seqtag.tasks.common`: the :class:`TaskSetup` record.
- :mod:`~seqtag.tasks.ner` / :mod:`~seqtag.tasks.qa`: each task's features, loss step and evaluation;
  :mod:`~seqtag.tasks.span`: NER with the span head (``model.head: span``, nested entities).
- :mod:`~seqtag.tasks.checks`: what ``seqtag validate`` and the start of training check in a config's inputs.
- :mod:`~seqtag.tasks.evaluate`: ``seqtag evaluate``: a finished run (torch or ONNX) scored on a file.

Imports: inference, modeling, data, config, runs, losses, metrics and the core modules; never training or above.
"""

from __future__ import annotations

from seqtag.tasks import ner, qa, span
from seqtag.tasks.common import TaskSetup


def setup_task(cfg, tokenizer, accelerator) -> TaskSetup:
    if cfg.task == "ner" and cfg.model.head == "span":
        return span.setup(cfg, tokenizer, accelerator)
    return (ner.setup if cfg.task == "ner" else qa.setup)(cfg, tokenizer, accelerator)
