"""The binary forms: one logit per position, ``targets`` in {0, 1}, ``-100`` ignored.

The forms Su (2017) derives first, before the multiclass ones: binary focal, binary L* and binary L**."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from seqtag.constants import IGNORE_INDEX
from seqtag.losses.params import check_nonnegative, check_open_unit, check_unit_or_none
from seqtag.losses.terms import Terms, check_reduction, reduce_terms


def _binary(logits: Tensor, targets: Tensor, reduction: str,
            weights: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]) -> Tensor:
    """``-y w_pos log sigmoid(x) - (1 - y) w_neg log sigmoid(-x)``, reduced like the multiclass losses.

    ``weights(x, log sigmoid(x), log sigmoid(-x)) -> (w_pos, w_neg)``.
    """
    check_reduction(reduction)
    if logits.ndim != 1 or targets.shape != logits.shape:
        raise ValueError(f"binary losses take logits (N,) and targets (N,); got {tuple(logits.shape)} and "
                         f"{tuple(targets.shape)}")
    mask = targets != IGNORE_INDEX
    y = targets.masked_fill(~mask, 0)
    if bool(((y != 0) & (y != 1)).any()):
        raise ValueError(f"binary targets must be 0, 1 or {IGNORE_INDEX}")
    x = logits.to(torch.promote_types(logits.dtype, torch.float32)).masked_fill(~mask, 0.0)
    y = y.to(x.dtype)
    log_pos, log_neg = F.logsigmoid(x), F.logsigmoid(-x)
    w_pos, w_neg = weights(x, log_pos, log_neg)
    loss = -(y * w_pos * log_pos + (1 - y) * w_neg * log_neg)
    return reduce_terms(Terms(torch.where(mask, loss, 0), lambda: y * w_pos + (1 - y) * w_neg, mask), reduction)


def binary_focal(logits: Tensor, targets: Tensor, *, gamma: float = 2.0, alpha: float | None = 0.5,
                 reduction: str = "mean") -> Tensor:
    """Binary focal loss: ``-alpha y (1 - s)^gamma log s - (1 - alpha)(1 - y) s^gamma log(1 - s)``, ``s = sigmoid(x)``.

    Note: the default ``alpha=0.5`` weights both classes by 1/2, i.e. it is *half* of the unweighted form;
    ``alpha=None`` means no weighting (both terms weight 1). ``alpha`` applies to the positive class (y = 1).

    Args:
        logits: ``(N,)`` one logit per position. targets: ``(N,)`` in {0, 1}; ``-100`` is ignored.
        reduction: ``"mean"`` (over non-ignored positions), ``"sum"`` or ``"none"``.

    >>> x, y = torch.tensor([1.0, -2.0]), torch.tensor([1, 1])
    >>> binary_focal(x, y, gamma=1.0, alpha=None, reduction="none")   # (1 - s) * -log s
    tensor([0.0842, 1.8734])
    """
    gamma = check_nonnegative("gamma", gamma)
    alpha = check_unit_or_none("alpha", alpha)

    def weights(x: Tensor, log_pos: Tensor, log_neg: Tensor) -> tuple[Tensor, Tensor]:
        w_pos, w_neg = torch.exp(gamma * log_neg), torch.exp(gamma * log_pos)  # (1 - s)^gamma, s^gamma
        return (w_pos, w_neg) if alpha is None else (alpha * w_pos, (1 - alpha) * w_neg)

    return _binary(logits, targets, reduction, weights)


def binary_hard_truncation(logits: Tensor, targets: Tensor, *, threshold: float = 0.5,
                           reduction: str = "mean") -> Tensor:
    """Binary L* (Su 2017): ``-y theta(m - s) log s - (1 - y) theta(m - (1 - s)) log(1 - s)``, ``s = sigmoid(x)``.

    ``theta(z)`` is 1 for z >= 0, else 0: a position already predicted with probability above m is dropped.

    >>> binary_hard_truncation(torch.tensor([1.0, -2.0, -2.0]), torch.tensor([1, 1, 0]), reduction="none")
    tensor([0.0000, 2.1269, 0.0000])
    """
    m = check_open_unit("threshold", threshold)

    def weights(x: Tensor, log_pos: Tensor, log_neg: Tensor) -> tuple[Tensor, Tensor]:
        return (log_pos.exp() <= m).to(x.dtype), (log_neg.exp() <= m).to(x.dtype)

    return _binary(logits, targets, reduction, weights)


def binary_lstar(logits: Tensor, targets: Tensor, *, k: float = 1.0, reduction: str = "mean") -> Tensor:
    """Binary L** (Su 2017): ``-y sigmoid(-k x) log sigmoid(x) - (1 - y) sigmoid(k x) log sigmoid(-x)``.

    At k=1 this is binary focal with gamma=1 and no alpha; as k grows it tends to binary L* with threshold 0.5.

    >>> binary_lstar(torch.tensor([1.0, -2.0]), torch.tensor([1, 1]), reduction="none")
    tensor([0.0842, 1.8734])
    """
    k = check_nonnegative("k", k)

    def weights(x: Tensor, log_pos: Tensor, log_neg: Tensor) -> tuple[Tensor, Tensor]:
        return torch.sigmoid(-k * x), torch.sigmoid(k * x)

    return _binary(logits, targets, reduction, weights)
