"""The span losses (``model.head: span``): one score per candidate (span, type), grouped per (sentence, type).

A span head scores every word span ``(i, j)`` of a sentence window for every entity type
(:mod:`seqtag.modeling.span_head`). Of all these candidates almost none are entities (0.13 % of the
``(span, type)`` pairs of GENIA), so each candidate is a binary decision. A span loss takes

- ``logits (G, K)``: one group per (sentence window, entity type), ``K`` candidate spans per group;
- ``targets (G, K)``: 1 for a gold entity of that type, 0 for any other candidate, ``-100`` for a candidate that
  is not one (padding, ``i > j``, a span longer than ``model.max_span_length``): no loss, zero gradient;

and returns the loss of each group (``reduction="none"``: ``(G,)``, 0 for a group without labelled candidates),
their sum (``"sum"``: the training loop divides it by the windows of the accumulation window), or their mean
over the groups that have a labelled candidate (``"mean"``). The binary losses sum their per-candidate terms
over the group; the multi-label cross-entropy is a function of the whole group. Maths runs in float32 at least
(float64 stays float64) and in log space, so logits of +-1e4 give finite losses and gradients.

Decision rule (:mod:`seqtag.inference.span_decoding`): a candidate is an entity when its score is above 0. For the
binary losses that is the logit 0, ``sigmoid(x) > 0.5``; for :func:`span_multilabel` it is the threshold its two
``1 +`` terms build in (the score of the "threshold class", fixed at 0, Su 2020).

The binary forms are those of :mod:`seqtag.losses.binary`, summed per group. References: Su Jianlin (2020),
"將「softmax+交叉熵」推廣到多標籤分類問題", https://kexue.fm/archives/7359 (the multi-label cross-entropy);
Su (2017), https://kexue.fm/archives/4733 (L*, L**); Lin et al. (2017) (focal loss).
"""

from __future__ import annotations

import torch
from torch import Tensor

from seqtag.constants import IGNORE_INDEX
from seqtag.losses.binary import binary_focal, binary_hard_truncation, binary_lstar
from seqtag.losses.params import check_nonnegative, check_open_unit, check_unit_or_none
from seqtag.losses.registry import LossSpec, register_loss
from seqtag.losses.terms import Terms, check_reduction, reduce_terms


def _prepare(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Check ``(G, K)`` shapes and {0, 1, -100} targets; return the upcast logits (0 where ignored), the 0/1
    targets as floats, and the mask of labelled candidates."""
    if logits.ndim != 2 or targets.shape != logits.shape:
        raise ValueError(f"span losses take logits (G, K) and targets (G, K) (one row per sentence window and entity "
                         f"type, one column per candidate span); got {tuple(logits.shape)} and {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"span targets must be integers 0, 1 or {IGNORE_INDEX}; got {targets.dtype}")
    mask = targets != IGNORE_INDEX
    y = targets.masked_fill(~mask, 0)
    if bool(((y != 0) & (y != 1)).any()):
        raise ValueError(f"span targets must be 0, 1 or {IGNORE_INDEX}")
    x = logits.to(torch.promote_types(logits.dtype, torch.float32)).masked_fill(~mask, 0.0)
    return x, y.to(x.dtype), mask


def _group_terms(per_candidate: Tensor, weight, mask: Tensor) -> Terms:
    """Per-group sums of per-candidate losses ``(G, K)``; "mean" divides by the groups with a labelled candidate."""
    return Terms(per_candidate.sum(1), weight, mask, norm=mask.any(1).to(per_candidate.dtype))


def _binary_terms(fn, logits: Tensor, targets: Tensor, **params) -> Terms:
    x, y, mask = _prepare(logits, targets)
    flat = targets.reshape(-1)
    per = fn(x.reshape(-1), flat, reduction="none", **params).reshape(x.shape)
    # the factor multiplying -log sigmoid(+-x): the per-candidate loss over its cross-entropy
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, y, reduction="none")
    return _group_terms(per, lambda: per / bce.clamp_min(torch.finfo(x.dtype).tiny), mask)


def _bce_terms(logits: Tensor, targets: Tensor) -> Terms:
    return _binary_terms(binary_focal, logits, targets, gamma=0.0, alpha=None)


def span_bce(logits: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy per candidate, summed per group: ``sum_k -y log s - (1 - y) log(1 - s)``, ``s = sigmoid(x)``.

    Args:
        logits: ``(G, K)`` scores, one row per (sentence window, entity type). targets: ``(G, K)`` in {0, 1};
            ``-100`` is ignored (no loss, zero gradient).
        reduction: ``"mean"`` (over groups with a labelled candidate), ``"sum"`` or ``"none"`` (``(G,)``).

    >>> x, y = torch.tensor([[2.0, -1.0, 0.0]]), torch.tensor([[1, 0, -100]])
    >>> span_bce(x, y, reduction="none")   # -log sigmoid(2) - log sigmoid(1)
    tensor([0.4402])
    """
    check_reduction(reduction)
    return reduce_terms(_bce_terms(logits, targets), reduction)


def _focal_terms(logits: Tensor, targets: Tensor, *, gamma: float = 2.0, alpha: float | None = None) -> Terms:
    return _binary_terms(binary_focal, logits, targets, gamma=check_nonnegative("gamma", gamma),
                         alpha=check_unit_or_none("alpha", alpha))


def span_focal(logits: Tensor, targets: Tensor, *, gamma: float = 2.0, alpha: float | None = None,
               reduction: str = "mean") -> Tensor:
    """Binary focal loss per candidate, summed per group: ``-a y (1 - s)^gamma log s - (1 - a)(1 - y) s^gamma log(1 - s)``.

    ``s = sigmoid(x)``; ``alpha=None`` weights both classes 1 (``a`` and ``1 - a`` replaced by 1), a number ``a``
    in [0, 1] weights the positives (entities) by ``a`` and the other candidates by ``1 - a``. ``gamma=0`` and
    ``alpha=None`` is :func:`span_bce`. Targets ``-100`` are ignored; reductions as :func:`span_bce`.

    >>> x, y = torch.tensor([[2.0, -1.0]]), torch.tensor([[1, 0]])
    >>> span_focal(x, y, gamma=1.0, reduction="none")   # (1 - s(2)) (-log s(2)) + s(-1) (-log(1 - s(-1))): 0.0151 + 0.0842
    tensor([0.0994])
    """
    check_reduction(reduction)
    return reduce_terms(_focal_terms(logits, targets, gamma=gamma, alpha=alpha), reduction)


def _hard_truncation_terms(logits: Tensor, targets: Tensor, *, threshold: float = 0.5) -> Terms:
    return _binary_terms(binary_hard_truncation, logits, targets, threshold=check_open_unit("threshold", threshold))


def span_hard_truncation(logits: Tensor, targets: Tensor, *, threshold: float = 0.5,
                         reduction: str = "mean") -> Tensor:
    """Binary L* (Su 2017) per candidate, summed per group: ``-y theta(m - s) log s - (1 - y) theta(m - (1 - s)) log(1 - s)``.

    ``s = sigmoid(x)``, ``theta(z) = 1`` for ``z >= 0``: a candidate already on the right side with probability
    above ``m`` (``threshold``) adds nothing. Targets ``-100`` are ignored; reductions as :func:`span_bce`.

    >>> x, y = torch.tensor([[1.0, -2.0, -2.0]]), torch.tensor([[1, 1, 0]])
    >>> span_hard_truncation(x, y, reduction="none")   # only the missed entity counts: -log sigmoid(-2)
    tensor([2.1269])
    """
    check_reduction(reduction)
    return reduce_terms(_hard_truncation_terms(logits, targets, threshold=threshold), reduction)


def _lstar_terms(logits: Tensor, targets: Tensor, *, k: float = 1.0) -> Terms:
    return _binary_terms(binary_lstar, logits, targets, k=check_nonnegative("k", k))


def span_lstar(logits: Tensor, targets: Tensor, *, k: float = 1.0, reduction: str = "mean") -> Tensor:
    """Binary L** (Su 2017) per candidate, summed per group: ``-y sigmoid(-k x) log s - (1 - y) sigmoid(k x) log(1 - s)``.

    ``s = sigmoid(x)``. At ``k = 1`` it is :func:`span_focal` with ``gamma=1``; as ``k`` grows it tends to
    :func:`span_hard_truncation` with ``threshold=0.5`` (for every ``x != 0``). Targets ``-100`` are ignored;
    reductions as :func:`span_bce`.

    >>> x, y = torch.tensor([[2.0, -1.0]]), torch.tensor([[1, 0]])
    >>> span_lstar(x, y, reduction="none")   # = span_focal(gamma=1)
    tensor([0.0994])
    """
    check_reduction(reduction)
    return reduce_terms(_lstar_terms(logits, targets, k=k), reduction)


def _multilabel_terms(logits: Tensor, targets: Tensor) -> Terms:
    x, y, mask = _prepare(logits, targets)
    neg_inf = torch.tensor(-torch.inf, dtype=x.dtype, device=x.device)
    zero = torch.zeros_like(x[:, :1])
    neg = torch.cat([zero, torch.where(mask & (y == 0), x, neg_inf)], 1)  # 0 is log(1): the threshold's term
    pos = torch.cat([zero, torch.where(mask & (y == 1), -x, neg_inf)], 1)
    lse_neg, lse_pos = torch.logsumexp(neg, 1), torch.logsumexp(pos, 1)

    def weight() -> Tensor:  # |dL/dx|: each candidate's share of its sum
        return torch.where(y == 1, (pos[:, 1:] - lse_pos[:, None]).exp(), (neg[:, 1:] - lse_neg[:, None]).exp())

    return Terms(torch.where(mask.any(1), lse_neg + lse_pos, 0.0), weight, mask,
                 norm=mask.any(1).to(x.dtype))


def span_multilabel(logits: Tensor, targets: Tensor, *, reduction: str = "mean") -> Tensor:
    """Su's multi-label categorical cross-entropy per group: ``log(1 + sum_neg e^x) + log(1 + sum_pos e^-x)``.

    ``neg`` are the group's candidates with target 0, ``pos`` those with target 1. It is softmax cross-entropy
    generalised to any number of targets with a threshold class of score 0: multiplied out, it is
    ``log(1 + sum_{i in neg, j in pos} e^(x_i - x_j) + sum_neg e^(x_i) + sum_pos e^(-x_j))``, every entity scored
    above every non-entity and above 0, every non-entity below 0 (Su 2020, kexue.fm/archives/7359). Without the
    two threshold sums and with one positive this is softmax cross-entropy over the group. It has no
    parameter: the imbalance is handled by the log-sum-exp, which weights each candidate by its share of its
    sum rather than counting every easy negative. Targets ``-100`` are ignored; reductions as :func:`span_bce`.

    :meth:`Loss.weights` reports ``|dL/dx|`` per candidate (its share of its sum), NaN where ignored.

    >>> x, y = torch.tensor([[2.0, -1.0, 0.5, 0.0]]), torch.tensor([[1, 0, 0, -100]])
    >>> span_multilabel(x, y, reduction="none")   # log(1 + e^-1 + e^0.5) + log(1 + e^-2)
    tensor([1.2311])
    """
    check_reduction(reduction)
    return reduce_terms(_multilabel_terms(logits, targets), reduction)


SPAN_LOSSES = (
    LossSpec("span_bce", span_bce, _bce_terms, {},
             "binary cross-entropy on every candidate (span, type), summed per sentence and type",
             "sum_k -y log s - (1 - y) log(1 - s), s = sigmoid(x)", kind="span"),
    LossSpec("span_focal", span_focal, _focal_terms, {"gamma": check_nonnegative, "alpha": check_unit_or_none},
             "binary focal loss on every candidate (span, type): down-weights candidates already classified well",
             "sum_k -a y (1 - s)^gamma log s - (1 - a)(1 - y) s^gamma log(1 - s)", kind="span"),
    LossSpec("span_hard_truncation", span_hard_truncation, _hard_truncation_terms, {"threshold": check_open_unit},
             "Su's binary L* on every candidate: drops candidates already right with probability above m",
             "sum_k -y theta(m - s) log s - (1 - y) theta(m - 1 + s) log(1 - s)", kind="span"),
    LossSpec("span_lstar", span_lstar, _lstar_terms, {"k": check_nonnegative},
             "Su's binary L** on every candidate: L* softened, weight sigmoid(-k x) on entities, sigmoid(k x) on others",
             "sum_k -y sigmoid(-k x) log s - (1 - y) sigmoid(k x) log(1 - s)", kind="span"),
    LossSpec("span_multilabel", span_multilabel, _multilabel_terms, {},
             "Su's multi-label categorical cross-entropy per sentence and type, threshold at score 0",
             "log(1 + sum_neg e^x) + log(1 + sum_pos e^-x)", kind="span"),
)
for _spec in SPAN_LOSSES:
    register_loss(_spec)
del _spec
