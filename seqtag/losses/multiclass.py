"""The multiclass losses: ``loss(logits (N, C), targets (N,), reduction=...)``, ``-100`` ignored.

Each is a pair: ``_NAME_terms`` (the per-position pieces) and ``NAME`` (the documented function that
reduces them). Formulas, conventions and references: the package docstring and ``docs/losses.md``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from seqtag.constants import IGNORE_INDEX
from seqtag.losses.params import check_label_smoothing, check_nonnegative, check_open_unit
from seqtag.losses.terms import (
    ClassValues,
    Terms,
    check_reduction,
    class_vector,
    nll_per_row,
    prepare,
    reduce_terms,
    safe_targets,
    target_log_probs,
)


def _cross_entropy_terms(logits: Tensor, targets: Tensor, *, weight: ClassValues = None,
                         label_smoothing: float = 0.0) -> Terms:
    eps = check_label_smoothing("label_smoothing", label_smoothing)
    x, mask = prepare(logits, targets)
    w = class_vector("weight", weight, x)
    # F.cross_entropy is exactly this formula, fused; per row it is 0 at ignored targets.
    loss = F.cross_entropy(x, targets.long(), weight=w, ignore_index=IGNORE_INDEX, reduction="none",
                           label_smoothing=eps)
    coef = 1 - eps + eps / x.shape[1]
    if w is None:
        return Terms(loss, lambda: torch.full_like(loss, coef), mask)
    w_t = torch.where(mask, w[safe_targets(targets, mask)], 0)
    return Terms(loss, lambda: w_t * coef, mask, norm=w_t)


def cross_entropy(logits: Tensor, targets: Tensor, *, weight: ClassValues = None, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """Cross-entropy ``-w_t log p_t``, the same numbers as ``F.cross_entropy(..., ignore_index=-100)``.

    ``loss_i = (1 - eps) * w_t * (-log p_t) + (eps / C) * sum_j w_j * (-log p_j)``, where ``p = softmax(x_i)``,
    ``t`` is the target of row i, ``w`` the per-class ``weight`` (indexed by the *target* class; all 1 when None)
    and ``eps`` the ``label_smoothing`` in [0, 1).

    Args:
        logits: ``(N, C)`` pre-softmax scores, any float dtype (computed in >= float32).
        targets: ``(N,)`` integer class ids; ``-100`` is ignored (no loss, zero gradient).
        weight: per-class weights, length C, or None.
        label_smoothing: eps.
        reduction: ``"mean"`` (sum / sum of ``w_t`` over non-ignored rows; / count when no weight),
            ``"sum"`` or ``"none"`` (``(N,)``, 0 at ignored rows).

    :meth:`Loss.weights` reports ``w_t * (1 - eps + eps / C)``, the coefficient of ``-log p_t``.

    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]])
    >>> targets = torch.tensor([0, 2, -100])
    >>> round(cross_entropy(logits, targets).item(), 4)   # (0.1698 + 1.5514) / 2
    0.8606
    >>> cross_entropy(logits, targets, reduction="none")
    tensor([0.1698, 1.5514, 0.0000])
    """
    check_reduction(reduction)
    return reduce_terms(_cross_entropy_terms(logits, targets, weight=weight, label_smoothing=label_smoothing), reduction)


def _focal_terms(logits: Tensor, targets: Tensor, *, gamma: float = 2.0, alpha: ClassValues = None) -> Terms:
    gamma = check_nonnegative("gamma", gamma)
    x, mask = prepare(logits, targets)
    a = class_vector("alpha", alpha, x)
    t = safe_targets(targets, mask)
    logp_t, log1m_p_t = target_log_probs(x, t)
    w = torch.exp(gamma * log1m_p_t)  # (1 - p_t)^gamma
    if a is not None:
        w = a[t] * w
    return Terms(torch.where(mask, -w * logp_t, 0), lambda: w, mask)


def focal(logits: Tensor, targets: Tensor, *, gamma: float = 2.0, alpha: ClassValues = None,
          reduction: str = "mean") -> Tensor:
    """Multiclass focal loss (Lin et al. 2017): ``-alpha_t (1 - p_t)^gamma log p_t``.

    ``p_t = softmax(x_i)_t`` for the target ``t`` of row i. ``alpha`` is a per-class list indexed by the *target*
    class (no hidden "class 0 is background" convention); None means alpha_t = 1. ``gamma = 0`` without alpha is
    cross-entropy. ``(1 - p_t)^gamma`` is computed as ``exp(gamma * log(1 - p_t))`` with ``log(1 - p_t)`` from a
    logsumexp over the other classes, so confident tokens keep finite gradients for any gamma >= 0.

    Args:
        logits: ``(N, C)`` pre-softmax scores.
        targets: ``(N,)`` integer class ids; ``-100`` is ignored.
        gamma: focusing exponent, >= 0.
        alpha: per-class weights, length C, or None.
        reduction: ``"mean"`` (over non-ignored rows, alpha or not), ``"sum"`` or ``"none"`` (``(N,)``).

    :meth:`Loss.weights` reports ``alpha_t (1 - p_t)^gamma``.

    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    >>> focal(logits, torch.tensor([0, 2]), reduction="none")   # 0.1698 * 0.1562^2, 1.5514 * 0.7881^2
    tensor([0.0041, 0.9635])
    >>> round(focal(logits, torch.tensor([0, 2]), gamma=0.0).item(), 4) == round(
    ...     cross_entropy(logits, torch.tensor([0, 2])).item(), 4)
    True
    """
    check_reduction(reduction)
    return reduce_terms(_focal_terms(logits, targets, gamma=gamma, alpha=alpha), reduction)


def _hard_truncation_terms(logits: Tensor, targets: Tensor, *, threshold: float = 0.5) -> Terms:
    m = check_open_unit("threshold", threshold)
    x, mask = prepare(logits, targets)
    nll = nll_per_row(x, targets)
    keep = nll >= -math.log(m)  # theta(m - p_t): p_t <= m. A step function: no gradient through theta itself
    return Terms(torch.where(keep, nll, 0), lambda: keep.to(x.dtype), mask)


def hard_truncation(logits: Tensor, targets: Tensor, *, threshold: float = 0.5, reduction: str = "mean") -> Tensor:
    """Hard-truncated cross-entropy, Su Jianlin's L* (kexue.fm/archives/4733): ``-theta(m - p_t) log p_t``.

    ``theta(m - p_t)`` is 1 when ``p_t <= m`` and 0 when ``p_t > m``: a token whose target probability already
    exceeds the ``threshold`` m contributes nothing (and no gradient).

    Args:
        logits: ``(N, C)`` pre-softmax scores.
        targets: ``(N,)`` integer class ids; ``-100`` is ignored.
        threshold: m, strictly between 0 and 1.
        reduction: ``"mean"`` (over all non-ignored rows, truncated ones included), ``"sum"`` or ``"none"``.

    :meth:`Loss.weights` reports theta (0 or 1).

    >>> logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])   # p_t = 0.8438, 0.2119
    >>> hard_truncation(logits, torch.tensor([0, 2]), reduction="none")
    tensor([0.0000, 1.5514])
    """
    check_reduction(reduction)
    return reduce_terms(_hard_truncation_terms(logits, targets, threshold=threshold), reduction)


def _lstar_terms(logits: Tensor, targets: Tensor, *, k: float = 1.0) -> Terms:
    k = check_nonnegative("k", k)
    x, mask = prepare(logits, targets)
    idx = safe_targets(targets, mask)[:, None]
    # a class whose logit is -inf is absent (QA pointer: a masked position); -k * (-inf) would make it take
    # the whole softmax(-k x) weight, so it stays at -inf there
    neg = torch.where(torch.isneginf(x), x, -k * x)
    logp_t = x.gather(1, idx).squeeze(1) - torch.logsumexp(x, dim=1)
    w = torch.exp(neg.gather(1, idx).squeeze(1) - torch.logsumexp(neg, dim=1))  # softmax(-k x)_t
    return Terms(torch.where(mask, -w * logp_t, 0), lambda: w, mask)


def lstar(logits: Tensor, targets: Tensor, *, k: float = 1.0, reduction: str = "mean") -> Tensor:
    """Su Jianlin's multiclass L** (kexue.fm/archives/4733), as he wrote it: ``-softmax(-k x)_t log p_t``.

    The weight is component t of ``softmax(-k x)`` on the *pre-softmax logits* x of the row. With two classes it is
    exactly his binary L** on ``x_0 - x_1`` (see :func:`binary_lstar`), and at k=1 binary focal with gamma=1.
    With more classes the weight is dominated by the smallest competing logit: for logits [5, 6, -10] and target 0
    (misclassified, p_t = 0.27) it is ``e^-5 / (e^-5 + e^-6 + e^10) = 3.059e-7``, so the token barely trains;
    :func:`lstar_logodds` is the generalisation that keeps ``1 - p_t`` at k=1. At k=0 the weight is 1/C.
    Adding a constant to all logits changes nothing (softmax is shift invariant).

    Args:
        logits: ``(N, C)`` pre-softmax scores.
        targets: ``(N,)`` integer class ids; ``-100`` is ignored.
        k: sharpness, >= 0.
        reduction: ``"mean"`` (over non-ignored rows), ``"sum"`` or ``"none"``.

    :meth:`Loss.weights` reports ``softmax(-k x)_t``.

    >>> from seqtag.losses import get_loss
    >>> w = get_loss("lstar").weights(torch.tensor([[5.0, 6.0, -10.0]]), torch.tensor([0]))
    >>> f"{w.item():.4g}"
    '3.059e-07'
    >>> lstar(torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 2]), reduction="none")
    tensor([0.0060, 0.6552])
    """
    check_reduction(reduction)
    return reduce_terms(_lstar_terms(logits, targets, k=k), reduction)


def _lstar_logodds_terms(logits: Tensor, targets: Tensor, *, k: float = 1.0) -> Terms:
    k = check_nonnegative("k", k)
    x, mask = prepare(logits, targets)
    logp_t, log1m_p_t = target_log_probs(x, safe_targets(targets, mask))
    w = torch.sigmoid(-k * (logp_t - log1m_p_t))  # logp_t - log1m_p_t = x_t - logsumexp_{j != t} x_j
    return Terms(torch.where(mask, -w * logp_t, 0), lambda: w, mask)


def lstar_logodds(logits: Tensor, targets: Tensor, *, k: float = 1.0, reduction: str = "mean") -> Tensor:
    """Shift-invariant multiclass L**: ``-sigmoid(-k (x_t - logsumexp_{j != t} x_j)) log p_t``.

    ``x_t - logsumexp_{j != t} x_j = log(p_t / (1 - p_t))`` is the log-odds of the target class, so the weight is
    ``sigmoid(-k * logodds_t)``: ``1 - p_t`` at k=1 for any number of classes (focal with gamma=1), 1/2 at k=0,
    and a step ``theta(0.5 - p_t)`` (hard truncation at 0.5) as k grows. With two classes it equals :func:`lstar`.

    Args:
        logits: ``(N, C)`` pre-softmax scores.
        targets: ``(N,)`` integer class ids; ``-100`` is ignored.
        k: sharpness, >= 0.
        reduction: ``"mean"`` (over non-ignored rows), ``"sum"`` or ``"none"``.

    :meth:`Loss.weights` reports ``sigmoid(-k * logodds_t)``.

    >>> from seqtag.losses import get_loss
    >>> w = get_loss("lstar_logodds").weights(torch.tensor([[5.0, 6.0, -10.0]]), torch.tensor([0]))
    >>> round(w.item(), 4)   # 1 - p_t = 1 - 1 / (1 + e + e^-15)
    0.7311
    """
    check_reduction(reduction)
    return reduce_terms(_lstar_logodds_terms(logits, targets, k=k), reduction)


def _dice_terms(logits: Tensor, targets: Tensor, *, alpha: float = 1.0, smooth: float = 1.0) -> Terms:
    alpha = check_nonnegative("alpha", alpha)
    smooth = check_nonnegative("smooth", smooth)
    x, mask = prepare(logits, targets)
    logp_t, log1m_p_t = target_log_probs(x, safe_targets(targets, mask))
    q = torch.exp(alpha * log1m_p_t + logp_t)  # (1 - p_t)^alpha * p_t, in [0, 1]
    loss = torch.where(mask, (1 - q) / (1 + smooth + q), 0)  # = 1 - (2q + s) / (q + 1 + s)

    def weight() -> Tensor:  # effective weight loss_i / (-log p_t), finite where p_t rounds to 1
        finfo = torch.finfo(loss.dtype)
        return (loss / (-logp_t).clamp_min(finfo.tiny)).clamp_max(finfo.max)

    return Terms(loss, weight, mask)


def dice(logits: Tensor, targets: Tensor, *, alpha: float = 1.0, smooth: float = 1.0,
         reduction: str = "mean") -> Tensor:
    """Self-adjusting Dice loss (Li et al. 2020) on the target-class probability.

    ``loss_i = 1 - (2 q + s) / (q + 1 + s) = (1 - q) / (1 + s + q)`` with ``q = (1 - p_t)^alpha p_t``,
    ``p_t = softmax(x_i)_t``, ``s`` = ``smooth``. alpha = 0 is plain (smoothed) per-token Dice ``1 - DSC``; larger
    alpha pushes down the contribution of easy (confident) tokens. With alpha > 0 a confidently right token
    (``p_t -> 1``, so ``q -> 0``) has loss ``1 / (1 + s)``, not 0, but zero gradient: the floor is a constant.
    Not a multiple of ``-log p_t``: :meth:`Loss.weights` reports the effective weight ``loss_i / (-log p_t)``,
    clamped to be finite (huge where ``p_t`` rounds to 1).

    Args:
        logits: ``(N, C)`` pre-softmax scores.
        targets: ``(N,)`` integer class ids; ``-100`` is ignored.
        alpha: the self-adjusting exponent, >= 0.
        smooth: s, >= 0.
        reduction: ``"mean"`` (over non-ignored rows), ``"sum"`` or ``"none"``.

    >>> dice(torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 2]), reduction="none")
    tensor([0.4073, 0.3844])
    """
    check_reduction(reduction)
    return reduce_terms(_dice_terms(logits, targets, alpha=alpha, smooth=smooth), reduction)


# --------------------------------------------------------------------------------------------- binary forms
