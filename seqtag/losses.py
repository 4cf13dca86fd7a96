"""The loss registry: token-level losses for class imbalance, looked up by name.

Every multiclass loss takes pre-softmax ``logits`` of shape ``(N, C)`` and integer ``targets`` of shape ``(N,)``
(flatten ``(B, T, C)`` token logits to ``(B*T, C)`` first). Targets equal to ``IGNORE_INDEX`` (-100) add nothing to
the loss and get exactly zero gradient (for finite logits, as with ``F.cross_entropy``). Reductions:

- ``"none"``: per-position loss, shape ``(N,)``, 0 at ignored positions;
- ``"sum"``: the sum over positions (the training loop sums and divides by the labelled-token count of the whole
  accumulation window, across processes);
- ``"mean"`` (default): the sum divided by the number of non-ignored targets (for ``cross_entropy`` with a class
  ``weight``: by the sum of the weights of the non-ignored targets, as ``F.cross_entropy`` does). A batch whose
  targets are all ignored gives 0, and backpropagates zeros.

Maths runs in float32 at least (bf16/fp16 logits are upcast first; float64 stays float64) and in log space
(``logsumexp``, ``log_softmax``, ``logsigmoid``), so logits of +-1e4 give finite losses and gradients. Weight terms
are never detached: gradients flow through them (a step function such as the hard truncation's theta just has zero
gradient). With ``x`` the logits of one token, ``t`` its target and ``p_t = softmax(x)_t``, ``1 - p_t`` is computed
as ``exp(logsumexp_{j != t} x_j - logsumexp_j x_j)``, which stays exact (and has finite gradients) when ``p_t``
rounds to 1.

References: Su Jianlin (2017), "從loss的硬截斷、軟化到focal loss", https://kexue.fm/archives/4733 (hard truncation
L*, its softening L**); Lin et al. (2017), "Focal Loss for Dense Object Detection"; Li et al. (2020), "Dice Loss for
Data-imbalanced NLP Tasks".

Changed maths gets a new name, so old configs keep their meaning: :func:`register_loss` refuses a name twice.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from seqtag.constants import IGNORE_INDEX
from seqtag.errors import LossConfigError

REDUCTIONS = ("mean", "sum", "none")

ClassValues = Sequence[float] | Tensor | None
"""A per-class list (one non-negative number per class, in label-id order), a 1-D tensor, or None."""

Checker = Callable[[str, Any], Any]
"""``check(param_name, value) -> normalised value``; raises :class:`LossConfigError` naming the parameter."""


# --------------------------------------------------------------------------------------------- parameter checks


def _number(param: str, value: Any, *, low: float, high: float = math.inf, low_open: bool = False,
            high_open: bool = False, accepted: str) -> float:
    bad = isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    if not bad:
        bad = value < low or value > high or (low_open and value == low) or (high_open and value == high)
    if bad:
        raise LossConfigError(f"{param}={value!r} is invalid; accepted: {accepted}")
    return float(value)


def check_nonnegative(param: str, value: Any) -> float:
    """A finite number >= 0 (gamma, k, alpha exponent, smooth)."""
    return _number(param, value, low=0.0, accepted="a finite number >= 0")


def check_open_unit(param: str, value: Any) -> float:
    """A number strictly between 0 and 1 (threshold)."""
    return _number(param, value, low=0.0, high=1.0, low_open=True, high_open=True,
                   accepted="a number strictly between 0 and 1")


def check_label_smoothing(param: str, value: Any) -> float:
    """A number in [0, 1)."""
    return _number(param, value, low=0.0, high=1.0, high_open=True, accepted="a number in [0, 1)")


def check_unit_or_none(param: str, value: Any) -> float | None:
    """None (no weighting) or a number in [0, 1] (binary alpha)."""
    if value is None:
        return None
    return _number(param, value, low=0.0, high=1.0, accepted="null/None (no weighting) or a number in [0, 1]")


def check_class_values(param: str, value: Any) -> list[float] | None:
    """None, or a non-empty list of finite non-negative numbers (one per class) with a positive sum.

    The length is checked against C when the loss is called (C is not known at config time).
    """
    if value is None:
        return None
    accepted = ("null/None, or a list with one finite number >= 0 per class (in label-id order), "
                "not all zero")
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) == 0:
        raise LossConfigError(f"{param}={value!r} is invalid; accepted: {accepted}")
    out = [_number(f"{param}[{i}]", v, low=0.0, accepted=accepted) for i, v in enumerate(value)]
    if sum(out) <= 0:
        raise LossConfigError(f"{param}={value!r} is invalid (all zero); accepted: {accepted}")
    return out


# --------------------------------------------------------------------------------------------- shared plumbing


class _Terms(NamedTuple):
    """Per-position pieces of a loss, all shape ``(N,)``."""

    loss: Tensor  # per-position loss, 0 at ignored positions
    weight: Callable[[], Tensor]  # the factor multiplying -log p_t; lazy: only Loss.weights needs it
    mask: Tensor  # bool, True where the target is not ignored
    norm: Tensor | None = None  # each position's share of the "mean" denominator; None: 1 per non-ignored position


def _prepare(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
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


def _safe_targets(targets: Tensor, mask: Tensor) -> Tensor:
    """Targets with ignored positions replaced by class 0 (their values are masked out later)."""
    return torch.where(mask, targets, 0).long()


def _nll(x: Tensor, targets: Tensor) -> Tensor:
    """``-log softmax(x)_t`` per row, ``(N,)``, 0 (and zero gradient) at ignored rows; one fused op."""
    return F.cross_entropy(x, targets.long(), ignore_index=IGNORE_INDEX, reduction="none")


def _class_vector(param: str, values: ClassValues, x: Tensor) -> Tensor | None:
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


def _target_log_probs(x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``(log p_t, log(1 - p_t))``, each ``(N,)``, for logits ``x (N, C)`` and targets ``t (N,)`` in ``[0, C)``.

    ``log(1 - p_t) = logsumexp_{j != t} x_j - logsumexp_j x_j``: no cancellation, and finite values and gradients
    when ``p_t`` rounds to 1. (logsumexp rather than log_softmax also because, on CPU, log_softmax over a small C
    such as 9 tags is several times slower.)
    """
    idx = t[:, None]
    lse = torch.logsumexp(x, dim=1)
    lse_rest = torch.logsumexp(x.scatter(1, idx, -math.inf), dim=1)
    return x.gather(1, idx).squeeze(1) - lse, lse_rest - lse


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is invalid; accepted: {', '.join(REDUCTIONS)}")


def _reduce(terms: _Terms, reduction: str) -> Tensor:
    if reduction == "none":
        return terms.loss
    total = terms.loss.sum()
    if reduction == "sum":
        return total
    denom = terms.mask.sum() if terms.norm is None else terms.norm.sum()
    return total / torch.where(denom > 0, denom, 1)  # all ignored: 0 / 1, zero gradient


def _weights(terms: _Terms) -> Tensor:
    return torch.where(terms.mask, terms.weight().detach(), math.nan)


# --------------------------------------------------------------------------------------------- multiclass losses


def _cross_entropy_terms(logits: Tensor, targets: Tensor, *, weight: ClassValues = None,
                         label_smoothing: float = 0.0) -> _Terms:
    eps = check_label_smoothing("label_smoothing", label_smoothing)
    x, mask = _prepare(logits, targets)
    w = _class_vector("weight", weight, x)
    # F.cross_entropy is exactly this formula, fused; per row it is 0 at ignored targets.
    loss = F.cross_entropy(x, targets.long(), weight=w, ignore_index=IGNORE_INDEX, reduction="none",
                           label_smoothing=eps)
    coef = 1 - eps + eps / x.shape[1]
    if w is None:
        return _Terms(loss, lambda: torch.full_like(loss, coef), mask)
    w_t = torch.where(mask, w[_safe_targets(targets, mask)], 0)
    return _Terms(loss, lambda: w_t * coef, mask, norm=w_t)


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
    _check_reduction(reduction)
    return _reduce(_cross_entropy_terms(logits, targets, weight=weight, label_smoothing=label_smoothing), reduction)


def _focal_terms(logits: Tensor, targets: Tensor, *, gamma: float = 2.0, alpha: ClassValues = None) -> _Terms:
    gamma = check_nonnegative("gamma", gamma)
    x, mask = _prepare(logits, targets)
    a = _class_vector("alpha", alpha, x)
    t = _safe_targets(targets, mask)
    logp_t, log1m_p_t = _target_log_probs(x, t)
    w = torch.exp(gamma * log1m_p_t)  # (1 - p_t)^gamma
    if a is not None:
        w = a[t] * w
    return _Terms(torch.where(mask, -w * logp_t, 0), lambda: w, mask)


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
    _check_reduction(reduction)
    return _reduce(_focal_terms(logits, targets, gamma=gamma, alpha=alpha), reduction)


def _hard_truncation_terms(logits: Tensor, targets: Tensor, *, threshold: float = 0.5) -> _Terms:
    m = check_open_unit("threshold", threshold)
    x, mask = _prepare(logits, targets)
    nll = _nll(x, targets)
    keep = nll >= -math.log(m)  # theta(m - p_t): p_t <= m. A step function: no gradient through theta itself
    return _Terms(torch.where(keep, nll, 0), lambda: keep.to(x.dtype), mask)


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
    _check_reduction(reduction)
    return _reduce(_hard_truncation_terms(logits, targets, threshold=threshold), reduction)


def _lstar_terms(logits: Tensor, targets: Tensor, *, k: float = 1.0) -> _Terms:
    k = check_nonnegative("k", k)
    x, mask = _prepare(logits, targets)
    idx = _safe_targets(targets, mask)[:, None]
    # a class whose logit is -inf is absent (QA pointer: a masked position); -k * (-inf) would make it take
    # the whole softmax(-k x) weight, so it stays at -inf there
    neg = torch.where(torch.isneginf(x), x, -k * x)
    logp_t = x.gather(1, idx).squeeze(1) - torch.logsumexp(x, dim=1)
    w = torch.exp(neg.gather(1, idx).squeeze(1) - torch.logsumexp(neg, dim=1))  # softmax(-k x)_t
    return _Terms(torch.where(mask, -w * logp_t, 0), lambda: w, mask)


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

    >>> w = get_loss("lstar").weights(torch.tensor([[5.0, 6.0, -10.0]]), torch.tensor([0]))
    >>> f"{w.item():.4g}"
    '3.059e-07'
    >>> lstar(torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), torch.tensor([0, 2]), reduction="none")
    tensor([0.0060, 0.6552])
    """
    _check_reduction(reduction)
    return _reduce(_lstar_terms(logits, targets, k=k), reduction)


def _lstar_logodds_terms(logits: Tensor, targets: Tensor, *, k: float = 1.0) -> _Terms:
    k = check_nonnegative("k", k)
    x, mask = _prepare(logits, targets)
    logp_t, log1m_p_t = _target_log_probs(x, _safe_targets(targets, mask))
    w = torch.sigmoid(-k * (logp_t - log1m_p_t))  # logp_t - log1m_p_t = x_t - logsumexp_{j != t} x_j
    return _Terms(torch.where(mask, -w * logp_t, 0), lambda: w, mask)


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

    >>> w = get_loss("lstar_logodds").weights(torch.tensor([[5.0, 6.0, -10.0]]), torch.tensor([0]))
    >>> round(w.item(), 4)   # 1 - p_t = 1 - 1 / (1 + e + e^-15)
    0.7311
    """
    _check_reduction(reduction)
    return _reduce(_lstar_logodds_terms(logits, targets, k=k), reduction)


def _dice_terms(logits: Tensor, targets: Tensor, *, alpha: float = 1.0, smooth: float = 1.0) -> _Terms:
    alpha = check_nonnegative("alpha", alpha)
    smooth = check_nonnegative("smooth", smooth)
    x, mask = _prepare(logits, targets)
    logp_t, log1m_p_t = _target_log_probs(x, _safe_targets(targets, mask))
    q = torch.exp(alpha * log1m_p_t + logp_t)  # (1 - p_t)^alpha * p_t, in [0, 1]
    loss = torch.where(mask, (1 - q) / (1 + smooth + q), 0)  # = 1 - (2q + s) / (q + 1 + s)

    def weight() -> Tensor:  # effective weight loss_i / (-log p_t), finite where p_t rounds to 1
        finfo = torch.finfo(loss.dtype)
        return (loss / (-logp_t).clamp_min(finfo.tiny)).clamp_max(finfo.max)

    return _Terms(loss, weight, mask)


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
    _check_reduction(reduction)
    return _reduce(_dice_terms(logits, targets, alpha=alpha, smooth=smooth), reduction)


# --------------------------------------------------------------------------------------------- binary forms


def _binary(logits: Tensor, targets: Tensor, reduction: str,
            weights: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]) -> Tensor:
    """``-y w_pos log sigmoid(x) - (1 - y) w_neg log sigmoid(-x)``, reduced like the multiclass losses.

    ``weights(x, log sigmoid(x), log sigmoid(-x)) -> (w_pos, w_neg)``.
    """
    _check_reduction(reduction)
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
    return _reduce(_Terms(torch.where(mask, loss, 0), lambda: y * w_pos + (1 - y) * w_neg, mask), reduction)


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


# --------------------------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: its function, the per-position terms it reduces, and its documentation.

    ``defaults`` come from the keyword-only parameters of ``fn``; ``checks`` holds one checker per parameter.
    """

    name: str
    fn: Callable[..., Tensor]
    terms: Callable[..., _Terms] = field(repr=False)
    checks: Mapping[str, Checker] = field(repr=False)
    description: str
    formula: str

    @property
    def defaults(self) -> dict[str, Any]:
        sig = inspect.signature(self.fn)
        return {p.name: p.default for p in sig.parameters.values()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "reduction"}

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Return every parameter, defaults filled in and values normalised; raise :class:`LossConfigError`."""
        defaults = self.defaults
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            accepted = ", ".join(f"{k} (default {v!r})" for k, v in defaults.items())
            raise LossConfigError(f"loss {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                                  f"accepted: {accepted}")
        out = {}
        for key, default in defaults.items():
            try:
                out[key] = self.checks[key](key, params.get(key, default))
            except LossConfigError as e:
                raise LossConfigError(f"loss {self.name!r}: {e}") from None
        return out


@dataclass(frozen=True)
class Loss:
    """A loss bound to its parameters; build it with :func:`get_loss`.

    ``loss(logits (N, C), targets (N,), reduction="mean"|"sum"|"none") -> Tensor`` (float32 or float64).
    """

    name: str
    params: dict[str, Any]
    fn: Callable[..., Tensor]
    terms: Callable[..., _Terms] = field(repr=False, compare=False)

    def __call__(self, logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
        return self.fn(logits, targets, reduction=reduction, **self.params)

    def weights(self, logits: Tensor, targets: Tensor) -> Tensor:
        """``(N,)`` detached weight multiplying ``-log p_t`` per position; NaN at ignored positions."""
        with torch.no_grad():
            return _weights(self.terms(logits, targets, **self.params))


LOSSES: dict[str, LossSpec] = {}


def register_loss(spec: LossSpec) -> LossSpec:
    """Add ``spec`` to :data:`LOSSES`. A name is registered once: changed maths needs a new name."""
    if spec.name in LOSSES:
        raise LossConfigError(f"loss {spec.name!r} is already registered; changed maths needs a new name")
    if set(spec.checks) != set(spec.defaults):
        raise ValueError(f"loss {spec.name!r}: checks {sorted(spec.checks)} must cover the keyword parameters "
                         f"{sorted(spec.defaults)} of {spec.fn.__name__}")
    LOSSES[spec.name] = spec
    return spec


def validate_loss_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check a loss name and its parameters (for config validation); return the parameters with defaults filled.

    >>> validate_loss_params("focal", {"gamma": 1})
    {'gamma': 1.0, 'alpha': None}
    """
    if name not in LOSSES:
        raise LossConfigError(f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}")
    return LOSSES[name].validate(params or {})


def get_loss(name: str, **params: Any) -> Loss:
    """The loss registered as ``name`` with ``params`` (validated, defaults filled).

    >>> loss = get_loss("focal", gamma=0.0)
    >>> round(loss(torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])).item(), 4)
    0.1698
    """
    validated = validate_loss_params(name, params)
    spec = LOSSES[name]
    return Loss(name=name, params=validated, fn=spec.fn, terms=spec.terms)


for _spec in (
    LossSpec("cross_entropy", cross_entropy, _cross_entropy_terms,
             {"weight": check_class_values, "label_smoothing": check_label_smoothing},
             "cross-entropy, optionally class-weighted and label-smoothed (the baseline)",
             "-w_t log p_t"),
    LossSpec("focal", focal, _focal_terms, {"gamma": check_nonnegative, "alpha": check_class_values},
             "focal loss (Lin et al. 2017): down-weights confident tokens by (1 - p_t)^gamma",
             "-alpha_t (1 - p_t)^gamma log p_t"),
    LossSpec("hard_truncation", hard_truncation, _hard_truncation_terms, {"threshold": check_open_unit},
             "Su's L*: drops tokens whose target probability already exceeds the threshold m",
             "-theta(m - p_t) log p_t"),
    LossSpec("lstar", lstar, _lstar_terms, {"k": check_nonnegative},
             "Su's multiclass L** as written: weight softmax(-k x)_t on the logits x",
             "-softmax(-k x)_t log p_t"),
    LossSpec("lstar_logodds", lstar_logodds, _lstar_logodds_terms, {"k": check_nonnegative},
             "shift-invariant L**: weight sigmoid(-k log-odds_t), 1 - p_t at k=1 for any C",
             "-sigmoid(-k (x_t - logsumexp_{j != t} x_j)) log p_t"),
    LossSpec("dice", dice, _dice_terms, {"alpha": check_nonnegative, "smooth": check_nonnegative},
             "self-adjusting Dice (Li et al. 2020) on the target-class probability",
             "1 - (2 (1 - p_t)^alpha p_t + s) / ((1 - p_t)^alpha p_t + 1 + s)"),
):
    register_loss(_spec)
del _spec


# --------------------------------------------------------------------------------------------- as an nn.Module


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
        _check_reduction(reduction)
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
