"""Tests for seqtag.losses.span: values against float64 references, Su's identities for the multi-label
cross-entropy, the binary forms' limits, ignore semantics, reductions, gradients, extremes, and the registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqtag.constants import IGNORE_INDEX
from seqtag.errors import LossConfigError
from seqtag.losses import LOSSES, LossModule, get_loss, span_hard_truncation, span_lstar, span_multilabel
from seqtag.losses.trainer import trainer_loss

SPAN = ("span_bce", "span_focal", "span_hard_truncation", "span_lstar", "span_multilabel")
VARIANTS = [("span_bce", {}), ("span_focal", {}), ("span_focal", {"gamma": 0.5, "alpha": 0.25}),
            ("span_hard_truncation", {}), ("span_hard_truncation", {"threshold": 0.8}), ("span_lstar", {}),
            ("span_lstar", {"k": 3.0}), ("span_multilabel", {})]


def make_groups(g: int = 4, k: int = 9, seed: int = 0, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(g, k)`` float64 and targets with a few positives, some ignored candidates, one group all ignored."""
    gen = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(g, k, generator=gen)).double()
    targets = (torch.rand(g, k, generator=gen) < 0.25).long()
    targets[:, -2:] = IGNORE_INDEX
    targets[-1] = IGNORE_INDEX
    return logits, targets


def _s(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def reference_group(name: str, xs: list[float], ys: list[int], params: dict) -> float:
    """The loss of one group in plain Python floats, from the docstring formulas."""
    kept = [(x, y) for x, y in zip(xs, ys) if y != IGNORE_INDEX]
    if name == "span_multilabel":
        neg = sum(math.exp(x) for x, y in kept if y == 0)
        pos = sum(math.exp(-x) for x, y in kept if y == 1)
        return math.log1p(neg) + math.log1p(pos) if kept else 0.0
    total = 0.0
    for x, y in kept:
        s = _s(x)
        if name == "span_bce":
            w_pos = w_neg = 1.0
        elif name == "span_focal":
            g, a = params.get("gamma", 2.0), params.get("alpha")
            w_pos, w_neg = (1 - s) ** g, s ** g
            if a is not None:
                w_pos, w_neg = a * w_pos, (1 - a) * w_neg
        elif name == "span_hard_truncation":
            m = params.get("threshold", 0.5)
            w_pos, w_neg = float(s <= m), float(1 - s <= m)
        else:
            k = params.get("k", 1.0)
            w_pos, w_neg = _s(-k * x), _s(k * x)
        total += -w_pos * math.log(s) if y == 1 else -w_neg * math.log(1 - s)
    return total


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=[f"{n}{p or ''}" for n, p in VARIANTS])
def test_values_match_float64_reference_for_every_reduction(name, params):
    logits, targets = make_groups(seed=1)
    loss = get_loss(name, **params)
    per_group = loss(logits, targets, reduction="none")
    expected = torch.tensor([reference_group(name, x, y, params) for x, y in zip(logits.tolist(), targets.tolist())],
                            dtype=torch.float64)
    torch.testing.assert_close(per_group, expected, rtol=1e-10, atol=1e-12)
    assert per_group[-1].item() == 0.0  # a group whose candidates are all ignored
    torch.testing.assert_close(loss(logits, targets, reduction="sum"), expected.sum(), rtol=1e-10, atol=1e-12)
    groups = (targets != IGNORE_INDEX).any(1).sum()
    torch.testing.assert_close(loss(logits, targets), expected.sum() / groups, rtol=1e-10, atol=1e-12)


def su_pairwise(xs: list[float], ys: list[int], threshold: bool = True) -> float:
    """Su's pairwise form: log(1 + sum_{i neg, j pos} e^(x_i - x_j) [+ sum_neg e^x_i + sum_pos e^-x_j])."""
    neg = [a for a, t in zip(xs, ys) if t == 0]
    pos = [a for a, t in zip(xs, ys) if t == 1]
    inner = sum(math.exp(i - j) for i in neg for j in pos)
    if threshold:
        inner += sum(math.exp(i) for i in neg) + sum(math.exp(-j) for j in pos)
    return math.log1p(inner)


def test_multilabel_two_sums_equal_su_pairwise_form():
    logits, targets = make_groups(g=6, k=11, seed=3)
    per_group = span_multilabel(logits, targets, reduction="none")
    for x, y, value in zip(logits.tolist(), targets.tolist(), per_group.tolist()):
        assert value == pytest.approx(su_pairwise(x, y), rel=1e-12, abs=1e-12)


def test_pairwise_form_with_one_positive_and_no_threshold_terms_is_softmax_cross_entropy():
    logits, _ = make_groups(g=5, k=7, seed=4)
    target = torch.tensor([3, 0, 6, 2, 5])
    ce = F.cross_entropy(logits, target, reduction="none")
    for x, t, want in zip(logits.tolist(), target.tolist(), ce.tolist()):
        ys = [int(j == t) for j in range(len(x))]
        assert su_pairwise(x, ys, threshold=False) == pytest.approx(want, rel=1e-12)
    # with the threshold terms it is more: the positive must also clear 0, the negatives stay below it
    x, ys = logits[0].tolist(), [int(j == 3) for j in range(7)]
    assert su_pairwise(x, ys) > su_pairwise(x, ys, threshold=False)


def test_lstar_with_large_k_approaches_hard_truncation_at_half_away_from_zero():
    x = torch.tensor([[-6.0, -2.0, -0.5, -0.2, 0.2, 0.5, 2.0, 6.0]], dtype=torch.float64).repeat(2, 1)
    y = torch.tensor([[1] * 8, [0] * 8])
    hard = span_hard_truncation(x, y, threshold=0.5, reduction="none")
    gaps = [abs(span_lstar(x, y, k=k, reduction="none") - hard).max().item() for k in (10.0, 100.0, 1000.0)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-40
    # at x = 0 the limit is half the cross-entropy, not L*'s 1: hence "away from 0"
    zero = torch.zeros(1, 1, dtype=torch.float64)
    assert span_lstar(zero, torch.tensor([[1]]), k=1000.0).item() == pytest.approx(0.5 * math.log(2), rel=1e-12)


def test_focal_gamma_zero_is_bce_and_bce_is_torch():
    logits, targets = make_groups(seed=6)
    bce = get_loss("span_bce")(logits, targets, reduction="none")
    torch.testing.assert_close(get_loss("span_focal", gamma=0.0)(logits, targets, reduction="none"), bce)
    kept = targets != IGNORE_INDEX
    ref = F.binary_cross_entropy_with_logits(logits, targets.clamp_min(0).double(), reduction="none")
    torch.testing.assert_close(bce, (ref * kept).sum(1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(get_loss("span_lstar", k=1.0)(logits, targets),
                               get_loss("span_focal", gamma=1.0)(logits, targets), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", SPAN)
def test_ignored_candidates_get_no_loss_and_zero_gradient(name):
    logits, targets = make_groups(seed=7)
    logits = logits.masked_fill(targets == IGNORE_INDEX, -math.inf).requires_grad_()  # as the head masks them
    value = get_loss(name)(logits, targets)
    value.backward()
    assert torch.isfinite(value)
    assert (logits.grad[targets == IGNORE_INDEX] == 0).all() and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("name", SPAN)
def test_gradcheck_and_extreme_logits(name):
    logits, targets = make_groups(g=3, k=5, seed=8, scale=1.5)
    if name != "span_hard_truncation":  # theta is a step: its gradient is zero almost everywhere, not checked
        assert torch.autograd.gradcheck(lambda x: get_loss(name)(x, targets), (logits.requires_grad_(),))
    big = torch.tensor([[1e4, -1e4, 1e4, -1e4]], requires_grad=True)
    value = get_loss(name)(big, torch.tensor([[1, 1, 0, 0]]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(big.grad).all()


@pytest.mark.parametrize("name", SPAN)
def test_bf16_scores_are_computed_in_float32(name):
    logits, targets = make_groups(seed=9)
    value = get_loss(name)(logits.to(torch.bfloat16), targets)
    assert value.dtype == torch.float32
    assert value.item() == get_loss(name)(logits.to(torch.bfloat16).float(), targets).item()


def test_weights_are_per_candidate_and_nan_where_ignored():
    logits, targets = make_groups(seed=10)
    w = get_loss("span_multilabel").weights(logits, targets)
    assert w.shape == logits.shape and torch.isnan(w[targets == IGNORE_INDEX]).all()
    x = logits.clone().requires_grad_()
    span_multilabel(x, targets, reduction="sum").backward()
    kept = targets != IGNORE_INDEX
    torch.testing.assert_close(w[kept], x.grad.abs()[kept], rtol=1e-12, atol=1e-12)  # |dL/dx|
    focal = get_loss("span_focal", gamma=2.0).weights(logits, targets)
    s = torch.sigmoid(logits)
    torch.testing.assert_close(focal[kept], torch.where(targets == 1, (1 - s) ** 2, s ** 2)[kept], rtol=1e-9, atol=1e-12)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"logits \(G, K\) and targets \(G, K\)"):
        span_multilabel(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="0, 1 or -100"):
        span_multilabel(torch.zeros(1, 2), torch.tensor([[0, 2]]))
    with pytest.raises(LossConfigError, match="threshold"):
        get_loss("span_hard_truncation", threshold=1.5)


def test_registry_entries_are_span_kind_documented_and_refused_outside_the_span_head():
    assert {n for n, spec in LOSSES.items() if spec.kind == "span"} == set(SPAN)
    for name in SPAN:
        spec = LOSSES[name]
        assert spec.description and spec.formula and ">>>" in spec.fn.__doc__ and "-100" in spec.fn.__doc__
        with pytest.raises(LossConfigError, match="model.head: span"):
            trainer_loss(name)
        with pytest.raises(LossConfigError, match="model.head: span"):
            LossModule(name)


def test_docs_describe_every_span_loss():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "losses.md").read_text(encoding="utf-8")
    for name in SPAN:
        assert f"`{name}`" in text
