"""How many optimizer steps a run takes, and the advice when that is too few to learn anything.

A first run on a file of a few dozen sentences with the quickstart's settings (batch 32, 3 epochs) takes a
handful of optimizer steps and scores dev F1 0: the new classifier head has barely moved from its random start,
so every word is tagged ``O``. ``seqtag validate`` warns before such a run (:func:`few_steps_note`) and training
says so at its end (:func:`zero_f1_advice`).
"""

from __future__ import annotations

import math
from pathlib import Path

from seqtag.config import Config, TrainConfig
from seqtag.data.ner import read_train
from seqtag.paths import resolve
from seqtag.tasks.checks import QUICK_BYTES

FEW_STEPS = 100
"""Below this many optimizer steps a run is "very short". Adam moves each weight by about the learning rate per
step, so at fine-tuning rates (5e-5 to 2e-4) 100 steps move a fresh classifier's weights by 0.02 at most: a
threshold for advice, not a measured boundary (the quickstart, 3,394 WNUT-17 sentences, takes 321 steps)."""


def optimizer_steps(batches_per_epoch: int, train: TrainConfig) -> int:
    """Optimizer steps of a run: ``ceil(batches / grad_accum)`` per epoch, times ``epochs``, at most ``max_steps``.

    ``batches_per_epoch`` counts one process's batches (under several processes each gets its share).

    >>> from seqtag.config import TrainConfig
    >>> optimizer_steps(3, TrainConfig(epochs=3)), optimizer_steps(7, TrainConfig(epochs=2, grad_accum=2, max_steps=5))
    (9, 5)
    """
    per_epoch = math.ceil(batches_per_epoch / train.grad_accum)
    return per_epoch * train.epochs if train.max_steps is None else min(train.max_steps, per_epoch * train.epochs)


def _change(train: TrainConfig) -> str:
    return (f"raise train.epochs (now {train.epochs}) or train.learning_rate (now {train.learning_rate:g}; 2e-4 "
            f"suits a small model), lower train.batch_size (now {train.batch_size}), or add training data")


def few_steps_note(cfg: Config) -> str | None:
    """A warning for ``seqtag validate`` when the planned run takes fewer than :data:`FEW_STEPS` optimizer steps;
    None otherwise, or when the count needs data that is not a local NER file of at most
    :data:`seqtag.tasks.checks.QUICK_BYTES` (a Hub dataset, a QA split, a larger file: larger runs are longer)."""
    if cfg.task != "ner" or cfg.data.format == "hub":
        return None
    path = Path(resolve(cfg.data.train, "data.train"))
    if path.stat().st_size > QUICK_BYTES:
        return None
    sentences = len(read_train(cfg.data))  # one window each, at least (longer ones give more)
    tc = cfg.train
    steps = optimizer_steps(math.ceil(sentences / tc.batch_size), tc)
    if steps >= FEW_STEPS:
        return None
    return (f"warning: this run takes about {steps} optimizer steps ({sentences} training sentences, batch "
            f"{tc.batch_size} x accumulation {tc.grad_accum}, {tc.epochs} epochs"
            f"{f', train.max_steps={tc.max_steps}' if tc.max_steps is not None else ''}), too few to learn much: "
            f"expect dev F1 near 0 (every word O). {_change(tc).capitalize()}")


def zero_f1_advice(dev_f1: float | None, steps: int, train: TrainConfig) -> str | None:
    """What to say at the end of a run whose dev F1 is 0 after fewer than :data:`FEW_STEPS` optimizer steps.

    >>> from seqtag.config import TrainConfig
    >>> zero_f1_advice(0.0, 9, TrainConfig(epochs=3))[:60]
    'dev F1 is 0 after only 9 optimizer steps: too few steps for '
    >>> zero_f1_advice(0.0, 500, TrainConfig()), zero_f1_advice(0.4, 9, TrainConfig()), zero_f1_advice(None, 9, TrainConfig())
    (None, None, None)
    """
    if dev_f1 is None or dev_f1 > 0 or steps >= FEW_STEPS:
        return None
    return (f"dev F1 is 0 after only {steps} optimizer steps: too few steps for this data (the model still tags "
            f"almost every word O). {_change(train).capitalize()}")
