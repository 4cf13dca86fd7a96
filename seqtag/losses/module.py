"""A registry loss as a ``torch.nn.Module``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from seqtag.losses.registry import check_token_loss, get_loss
from seqtag.losses.terms import check_reduction


class LossModule(torch.nn.Module):
    """A registry loss as a ``torch.nn.Module``, for hand-written loops and Lightning.

    ``LossModule(name, reduction="mean", **params)`` validates ``name`` and ``params`` at once (:func:`get_loss`).
    ``forward(logits, targets)`` takes ``(N, C)`` and ``(N,)``, or token logits ``(B, T, C)`` and ``(B, T)``
    (flattened here), and returns the loss with ``reduction``: ``"mean"`` over non-ignored targets (each loss's
    own "mean", see its docstring), ``"sum"``, or ``"none"`` (shaped like ``targets``). No parameters, no buffers.

    >>> crit = LossModule("focal", gamma=0.0)
    >>> logits = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]]])   # (B=1, T=3, C=3)
    >>> round(crit(logits, torch.tensor([[0, 2, -100]])).item(), 4)   # cross-entropy's 0.8606
    0.8606
    >>> crit
    LossModule(name='focal', params={'gamma': 0.0, 'alpha': None}, reduction='mean')
    """

    def __init__(self, name: str, reduction: str = "mean", **params: Any) -> None:
        super().__init__()
        check_reduction(reduction)
        check_token_loss(name)
        self.loss = get_loss(name, **params)
        self.reduction = reduction

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        if targets.shape != logits.shape[:-1]:
            raise ValueError(f"targets {tuple(targets.shape)} must have the shape of logits {tuple(logits.shape)} "
                             "without the class axis")
        out = self.loss(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction=self.reduction)
        return out.reshape(targets.shape) if self.reduction == "none" else out

    def extra_repr(self) -> str:
        return f"name={self.loss.name!r}, params={self.loss.params!r}, reduction={self.reduction!r}"
