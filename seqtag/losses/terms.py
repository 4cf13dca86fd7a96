"""What every registry loss shares: input checks, the upcast, per-position terms and the reductions.

A loss is written as a function returning :class:`Terms` (per-position loss, its weight, the mask of
labelled positions, the share of the "mean" denominator); :func:`reduce_terms` turns them into the
``"mean"``, ``"sum"`` or ``"none"`` result, one rule for all losses."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from seqtag.constants import IGNORE_INDEX
from seqtag.errors import LossConfigError
from seqtag.losses.params import check_class_values

REDUCTIONS = ("mean", "sum", "none")

ClassValues = Sequence[float] | Tensor | None
"""A per-class list (one non-negative number per class, in label-id order), a 1-D tensor, or None."""


class Terms(NamedTuple):
    """Per-position pieces of a loss, all shape ``(N,)``."""

    loss: Tensor  # per-position loss, 0 at ignored positions
    weight: Callable[[], Tensor]  # the factor multiplying -log p_t; lazy: only Loss.weights needs it
    mask: Tensor  # bool, True where the target is not ignored
    norm: Tensor | None = None  # each position's share of the "mean" denominator; None: 1 per non-ignored position


def prepare(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Check shapes and upcast to >= float32. Returns ``x (N, C)`` and ``mask (N,)`` (True: not ignored)."""
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, C); got {tuple(logits.shape)}. "
                         "Flatten token logits with logits.reshape(-1, C) and targets with targets.reshape(-1)")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"targets must have shape (N,) = ({logits.shape[0]},) to match logits "
                         f"{tuple(logits.shape)}; got {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class ids (and {IGNORE_INDEX} to ignore); got {targets.dtype}")
    if logits.shape[1] < 2:
        raise ValueError(f"logits need at least 2 classes; got C={logits.shape[1]}")
    return logits.to(torch.promote_types(logits.dtype, torch.float32)), targets != IGNORE_INDEX


def safe_targets(targets: Tensor, mask: Tensor) -> Tensor:
    """Targets with ignored positions replaced by class 0 (their values are masked out later)."""
    return torch.where(mask, targets, 0).long()


def nll_per_row(x: Tensor, targets: Tensor) -> Tensor:
    """``-log softmax(x)_t`` per row, ``(N,)``, 0 (and zero gradient) at ignored rows; one fused op."""
    return F.cross_entropy(x, targets.long(), ignore_index=IGNORE_INDEX, reduction="none")


def class_vector(param: str, values: ClassValues, x: Tensor) -> Tensor | None:
    """A per-class list as a ``(C,)`` tensor on x's device and dtype; checks the length against ``C``."""
    if values is None:
        return None
    if not isinstance(values, Tensor):
        values = check_class_values(param, values)
    vec = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    if vec.ndim != 1 or vec.shape[0] != x.shape[1]:
        raise LossConfigError(
            f"{param} has {vec.numel()} entries but the logits have C={x.shape[1]} classes; give one number per "
            f"class in label-id order (the order of id2label), or leave {param} unset")
    return vec


def target_log_probs(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(log p_t, log(1 - p_t))``, each ``(N,)``, for logits ``x (N, C)`` and targets ``t (N,)`` in ``[0, C)``.

    ``log(1 - p_t) = logsumexp_{j != t} x_j - logsumexp_j x_j``: no cancellation, and finite values and gradients
    when ``p_t`` rounds to 1. (logsumexp rather than log_softmax also because, on CPU, log_softmax over a small C
    such as 9 tags is several times slower.)
    """
    idx = t[:, None]
    lse = torch.logsumexp(x, dim=1)
    lse_rest = torch.logsumexp(x.scatter(1, idx, -math.inf), dim=1)
    return x.gather(1, idx).squeeze(1) - lse, lse_rest - lse


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is invalid; accepted: {', '.join(REDUCTIONS)}")


def reduce_terms(terms: Terms, reduction: str) -> Tensor:
    if reduction == "none":
        return terms.loss
    total = terms.loss.sum()
    if reduction == "sum":
        return total
    denom = terms.mask.sum() if terms.norm is None else terms.norm.sum()
    return total / torch.where(denom > 0, denom, 1)  # all ignored: 0 / 1, zero gradient


def term_weights(terms: Terms) -> Tensor:
    return torch.where(terms.mask, terms.weight().detach(), math.nan)
