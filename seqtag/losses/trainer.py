"""seqtag's losses inside the Hugging Face ``Trainer``: ``Trainer(..., compute_loss_func=trainer_loss("focal"))``.

:func:`trainer_loss` looks a loss up in the registry (:mod:`seqtag.losses`) and validates its parameters at once,
so a bad name or value fails where the user writes it, before any ``Trainer`` exists. It returns the function the
Trainer calls as ``compute_loss_func(outputs, labels, num_items_in_batch=...)`` (transformers >= 4.46; the call
and the counting below are read from transformers 5.24's ``Trainer.compute_loss`` and ``_get_num_items_in_batch``).

Normalisation: the Trainer counts the labels that are not ``-100`` in all micro-batches of one optimizer step
(across processes when ``average_tokens_across_devices``, the default, is on, and then multiplies the returned
loss by the process count because DDP averages gradients) and passes the count as ``num_items_in_batch``. The
returned loss is the registry loss **summed** over the micro-batch's labelled positions divided by that count, so
the gradient of an optimizer step is that of the mean loss per labelled token of everything it saw, whatever the
padding, the accumulation or the number of processes: the rule of seqtag's own loop (:mod:`seqtag.training.loop`), and
the rule of transformers' ``ForTokenClassification`` loss. Without ``num_items_in_batch`` (a direct call) it
divides by the micro-batch's own labelled-token count. A window with no labelled token gives 0, not NaN.
For ``cross_entropy`` with a class ``weight`` the divisor is still the labelled-token count (as in seqtag's loop),
not the sum of the targets' weights that ``F.cross_entropy``'s weighted mean uses.

Token classification (any model whose outputs hold ``logits`` ``(..., C)``, labels ``(...)`` integer, e.g.
``(B, T, C)`` and ``(B, T)``): labels ``-100`` are ignored.

Extractive QA (outputs hold ``start_logits`` and ``end_logits``, ``(B, T)``): a QA model takes its targets as
``start_positions`` and ``end_positions``, but the Trainer hands ``compute_loss_func`` only a column named
``labels`` (it pops it from the batch before the forward pass), and counts ``num_items_in_batch`` only from it.
So the dataset carries ``labels = [start, end]`` per window (``(B, 2)`` once collated) instead of the two position
columns, and ``TrainingArguments(label_names=["labels"])`` keeps that column (the default label names of a QA model
are ``start_positions``/``end_positions``, and ``remove_unused_columns`` would drop ``labels``). Each of start and
end is a classification over the T positions of the window, as in transformers' own QA loss; a position ``>= T``
(outside the window, which transformers clamps to T and ignores) or ``-100`` is ignored. The loss is
``(sum of start losses + sum of end losses) / num_items_in_batch``, and ``num_items_in_batch`` counts start and end
labels separately, so this is ``(mean start loss + mean end loss) / 2`` over the step's windows: for
``cross_entropy``, exactly transformers' built-in QA loss when no position is ignored and the micro-batches of a
step have equal sizes (transformers averages per-micro-batch means). Differences: a position ``>= T`` still counts
in ``num_items_in_batch`` (the Trainer counts every label but ``-100``); ``-100`` is ignored here, whereas
transformers clamps it to position 0; any other negative position is an error. Unlike seqtag's pointer head
(:mod:`seqtag.tasks.qa`), question and padding positions are classes too, as in transformers. Per-class
parameters (``weight``, ``alpha`` lists) are refused for QA: its classes are positions.

The exact ``Trainer`` calls, and what was checked against the Trainer's own losses: ``docs/trainer.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from torch import Tensor

from seqtag.constants import IGNORE_INDEX
from seqtag.errors import LossConfigError
from seqtag.losses.registry import Loss, check_token_loss, get_loss


def trainer_loss(name: str, **params: Any) -> Callable[..., Tensor]:
    """A ``compute_loss_func`` for ``transformers.Trainer``: the registry loss ``name`` with ``params``.

    ``name`` and ``params`` are validated now (:class:`~seqtag.errors.LossConfigError` names the valid choices).
    The result is :func:`trainer_loss_value` bound to the loss.

    >>> f = trainer_loss("focal", gamma=2)
    >>> logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])   # (B=1, T=3, C=2)
    >>> labels = torch.tensor([[0, 1, -100]])
    >>> round(f({"logits": logits}, labels).item(), 4)   # (0.0018 + 0.0227) / 2 labelled tokens
    0.0122
    >>> round(f({"logits": logits}, labels, num_items_in_batch=4).item(), 4)   # the step has 4 labelled tokens
    0.0061
    >>> trainer_loss("focal", gama=2)
    Traceback (most recent call last):
    ...
    seqtag.errors.LossConfigError: loss 'focal' has no parameter 'gama'; accepted: gamma (default 2.0), alpha (default None)
    """
    check_token_loss(name)
    return partial(trainer_loss_value, get_loss(name, **params))


def trainer_loss_value(loss: Loss, outputs: Mapping[str, Any], labels: Tensor | None,
                       num_items_in_batch: Tensor | int | None = None) -> Tensor:
    """The loss of one micro-batch, as ``Trainer.compute_loss`` expects it from ``compute_loss_func``.

    Args:
        loss: a registry loss (:func:`seqtag.losses.get_loss`).
        outputs: the model outputs: ``logits`` ``(..., C)``, or ``start_logits`` and ``end_logits`` ``(B, T)``.
        labels: class ids shaped like ``logits`` without its last axis, or ``(B, 2)`` start and end positions
            for QA; ``-100`` is ignored.
        num_items_in_batch: the Trainer's count of labels that are not ``-100`` in the whole optimizer step;
            None: this micro-batch's count.

    Returns:
        A float32 (or float64) scalar: the summed loss over labelled positions / ``num_items_in_batch``.
    """
    if not isinstance(outputs, Mapping):
        raise TypeError(f"compute_loss_func needs the model outputs as a ModelOutput/dict; got "
                        f"{type(outputs).__name__}. Do not set return_dict=False")
    if "start_logits" in outputs and "end_logits" in outputs:
        return _qa_loss(loss, outputs["start_logits"], outputs["end_logits"], labels, num_items_in_batch)
    if "logits" not in outputs:
        raise TypeError(f"the model outputs have neither logits nor start_logits/end_logits (keys: "
                        f"{', '.join(outputs)}); trainer_loss supports token classification and extractive QA")
    if labels is None:
        raise ValueError("compute_loss_func got labels=None: the batches have no 'labels' column. Give the "
                         "dataset a 'labels' column (class ids, -100 to ignore)")
    logits = outputs["logits"]
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels {tuple(labels.shape)} do not match logits {tuple(logits.shape)}; labels need the "
                         "logits' shape without the last axis (one class id per position)")
    x, t = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device)
    return loss(x, t, reduction="sum") / _count(num_items_in_batch, (t != IGNORE_INDEX).sum())


def _qa_loss(loss: Loss, start: Tensor, end: Tensor, labels: Tensor | None,
             num_items_in_batch: Tensor | int | None) -> Tensor:
    if labels is None or labels.ndim != 2 or labels.shape[1] != 2:
        got = "labels=None" if labels is None else f"labels of shape {tuple(labels.shape)}"
        raise ValueError(f"a QA model needs labels (B, 2) = [start, end] per window; got {got}. Put "
                         "labels=[start_position, end_position] in the dataset instead of start_positions and "
                         "end_positions, and set TrainingArguments(label_names=['labels'])")
    per_class = sorted(k for k, v in loss.params.items() if isinstance(v, list | tuple))
    if per_class:
        raise LossConfigError(f"{per_class[0]} gives one value per class, but the classes of start and end logits "
                              f"are token positions; build the loss without {per_class[0]}")
    pos = labels.to(start.device).long()
    if bool(((pos < 0) & (pos != IGNORE_INDEX)).any()):
        raise ValueError(f"QA positions must be >= 0 or {IGNORE_INDEX} (ignored); got {pos.min().item()}")
    counted = pos != IGNORE_INDEX  # what the Trainer counts into num_items_in_batch
    pos = torch.where(pos >= start.shape[1], IGNORE_INDEX, pos)  # outside the window: ignored, as transformers
    total = loss(start, pos[:, 0], reduction="sum") + loss(end, pos[:, 1], reduction="sum")
    return total / _count(num_items_in_batch, counted.sum())


def _count(num_items_in_batch: Tensor | int | None, own: Tensor) -> Tensor:
    """The divisor: ``num_items_in_batch``, else ``own`` (this micro-batch's count), at least 1."""
    n = own if num_items_in_batch is None else torch.as_tensor(num_items_in_batch, device=own.device)
    return n.clamp_min(1)
