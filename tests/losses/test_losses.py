"""Tests for seqtag.losses: values against torch and hand-computed references, identities between entries,
gradients, numerics (ignore, extremes, low precision), errors, and properties over random inputs."""

from __future__ import annotations

import dataclasses
import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.constants import IGNORE_INDEX
from seqtag.errors import LossConfigError
from seqtag.losses import (
    LOSSES,
    Loss,
    LossModule,
    LossSpec,
    binary_focal,
    binary_hard_truncation,
    binary_lstar,
    cross_entropy,
    focal,
    get_loss,
    lstar,
    lstar_logodds,
    register_loss,
    validate_loss_params,
)

NAMES = ("cross_entropy", "focal", "hard_truncation", "lstar", "lstar_logodds", "dice")

# Non-default parameter sets, so every parameter is exercised (class lists sized for C=4).
VARIANTS = [
    ("cross_entropy", {}),
    ("cross_entropy", {"weight": [0.5, 2.0, 1.0, 3.0]}),
    ("cross_entropy", {"label_smoothing": 0.2}),
    ("cross_entropy", {"weight": [0.5, 2.0, 1.0, 3.0], "label_smoothing": 0.1}),
    ("focal", {}),
    ("focal", {"gamma": 0.5, "alpha": [0.25, 1.0, 2.0, 0.5]}),
    ("hard_truncation", {}),
    ("hard_truncation", {"threshold": 0.8}),
    ("lstar", {}),
    ("lstar", {"k": 2.5}),
    ("lstar_logodds", {}),
    ("lstar_logodds", {"k": 3.0}),
    ("dice", {}),
    ("dice", {"alpha": 0.5, "smooth": 0.1}),
]
VARIANT_IDS = [f"{n}-{'-'.join(map(str, p.values())) or 'default'}" for n, p in VARIANTS]


def make_batch(n: int = 12, c: int = 4, seed: int = 0, dtype: torch.dtype = torch.float64,
               scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(n, c)`` and targets ``(n,)`` with every third position ignored."""
    gen = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(n, c, generator=gen)).to(dtype)
    targets = torch.randint(0, c, (n,), generator=gen)
    targets[::3] = IGNORE_INDEX
    return logits, targets


# ------------------------------------------------------------------------------ independent scalar references


def _softmax(xs: list[float]) -> list[float]:
    top = max(xs)
    exps = [math.exp(v - top) for v in xs]
    return [v / sum(exps) for v in exps]


def reference_row(name: str, xs: list[float], t: int, params: dict) -> tuple[float, float]:
    """(loss, weight on -log p_t) for one row, in plain Python floats, from the formulas in the issue."""
    p = _softmax(xs)
    pt, nll, c = p[t], -math.log(p[t]), len(xs)
    if name == "cross_entropy":
        w = params.get("weight") or [1.0] * c
        eps = params.get("label_smoothing", 0.0)
        loss = (1 - eps) * w[t] * nll + eps / c * sum(w[j] * -math.log(p[j]) for j in range(c))
        return loss, w[t] * (1 - eps + eps / c)
    if name == "focal":
        alpha = params.get("alpha") or [1.0] * c
        weight = alpha[t] * (1 - pt) ** params.get("gamma", 2.0)
    elif name == "hard_truncation":
        weight = 1.0 if pt <= params.get("threshold", 0.5) else 0.0
    elif name == "lstar":
        weight = _softmax([-params.get("k", 1.0) * v for v in xs])[t]
    elif name == "lstar_logodds":
        log_odds = math.log(pt) - math.log(1 - pt)
        weight = 1 / (1 + math.exp(params.get("k", 1.0) * log_odds))
    elif name == "dice":
        s = params.get("smooth", 1.0)
        q = (1 - pt) ** params.get("alpha", 1.0) * pt
        loss = 1 - (2 * q + s) / (q + 1 + s)
        return loss, loss / nll
    else:
        raise AssertionError(name)
    return weight * nll, weight


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=VARIANT_IDS)
def test_values_and_weights_match_scalar_reference(name, params):
    logits, targets = make_batch(n=9, c=4, seed=1)
    loss = get_loss(name, **params)
    per_row = loss(logits, targets, reduction="none")
    weights = loss.weights(logits, targets)
    ref = [reference_row(name, row, t, params) if t != IGNORE_INDEX else (0.0, math.nan)
           for row, t in zip(logits.tolist(), targets.tolist(), strict=True)]
    expected_loss = torch.tensor([r[0] for r in ref], dtype=torch.float64)
    expected_weight = torch.tensor([r[1] for r in ref], dtype=torch.float64)
    torch.testing.assert_close(per_row, expected_loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(weights, expected_weight, rtol=1e-10, atol=1e-12, equal_nan=True)
    assert not weights.requires_grad
    # mean: sum / (count, or sum of w_t for weighted cross-entropy)
    kept = targets != IGNORE_INDEX
    if params.get("weight"):
        denom = torch.tensor(params["weight"], dtype=torch.float64)[targets[kept]].sum()
    else:
        denom = kept.sum()
    torch.testing.assert_close(loss(logits, targets), expected_loss.sum() / denom, rtol=1e-10, atol=0)


def test_hand_computed_values():
    # logits [2, 0, -1], target 0: p_t = e^2 / (e^2 + 1 + e^-1) = 0.843795
    logits, targets = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64), torch.tensor([0])
    pt = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    assert pt == pytest.approx(0.8437947344813395, rel=1e-12)
    nll = -math.log(pt)
    assert get_loss("cross_entropy")(logits, targets).item() == pytest.approx(0.16984602, rel=1e-7)
    assert get_loss("focal")(logits, targets).item() == pytest.approx((1 - pt) ** 2 * nll, rel=1e-12)
    assert get_loss("focal")(logits, targets).item() == pytest.approx(0.0041440, rel=1e-4)
    assert get_loss("hard_truncation")(logits, targets).item() == 0.0  # p_t = 0.84 > 0.5: dropped
    assert get_loss("hard_truncation", threshold=0.9)(logits, targets).item() == pytest.approx(nll, rel=1e-12)
    soft_neg = math.exp(-2) / (math.exp(-2) + 1 + math.exp(1))  # softmax(-x)_0
    assert get_loss("lstar")(logits, targets).item() == pytest.approx(soft_neg * nll, rel=1e-12)
    assert get_loss("lstar_logodds")(logits, targets).item() == pytest.approx((1 - pt) * nll, rel=1e-12)
    q = (1 - pt) * pt
    assert get_loss("dice")(logits, targets).item() == pytest.approx(1 - (2 * q + 1) / (q + 2), rel=1e-12)
    assert get_loss("dice")(logits, targets).item() == pytest.approx(0.4072580, rel=1e-6)


def test_lstar_weight_on_su_example_is_tiny():
    # logits [5, 6, -10], target 0: misclassified (p_t = 1 / (1 + e + e^-15) = 0.2689) yet L** weight ~3e-7
    logits, targets = torch.tensor([[5.0, 6.0, -10.0]], dtype=torch.float64), torch.tensor([0])
    exact = math.exp(-5) / (math.exp(-5) + math.exp(-6) + math.exp(10))
    assert exact == pytest.approx(3.0590219250087855e-07, rel=1e-12)
    assert get_loss("lstar").weights(logits, targets).item() == pytest.approx(exact, rel=1e-12)
    assert get_loss("lstar").weights(logits.float(), targets).item() == pytest.approx(exact, rel=1e-5)
    pt = 1 / (1 + math.e + math.exp(-15))
    assert get_loss("lstar")(logits, targets).item() == pytest.approx(-exact * math.log(pt), rel=1e-12)
    # the log-odds form keeps the focal-like weight 1 - p_t = 0.7311
    assert get_loss("lstar_logodds").weights(logits, targets).item() == pytest.approx(1 - pt, rel=1e-12)
    assert get_loss("focal").weights(logits, targets).item() == pytest.approx((1 - pt) ** 2, rel=1e-12)


# ------------------------------------------------------------------------------ against torch / transformers


@pytest.mark.parametrize("weight", [None, [0.5, 2.0, 1.0, 3.0, 0.0]])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_equals_torch(weight, label_smoothing, reduction):
    logits, targets = make_batch(n=20, c=5, seed=2)
    ours_in, ref_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
    ours = cross_entropy(ours_in, targets, weight=weight, label_smoothing=label_smoothing, reduction=reduction)
    ref = F.cross_entropy(ref_in, targets, weight=w, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing,
                          reduction=reduction)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    ours.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-12, atol=1e-12)


def test_cross_entropy_equals_bert_token_classification_loss():
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=32, num_labels=7)
    model = BertForTokenClassification(config).eval()
    input_ids = torch.randint(1, 60, (3, 10))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 7:] = 0
    labels = torch.randint(0, 7, (3, 10))
    labels[:, 0] = IGNORE_INDEX  # [CLS]
    labels[1, 7:] = IGNORE_INDEX  # padding
    labels[2, 4] = IGNORE_INDEX  # a continuation sub-word
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    ours = get_loss("cross_entropy")(out.logits.reshape(-1, 7), labels.reshape(-1))
    assert out.loss.item() > 1.0  # random model: about log(7)
    torch.testing.assert_close(ours, out.loss, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------ identities between entries


def test_focal_gamma0_is_cross_entropy():
    logits, targets = make_batch(n=15, c=6, seed=3)
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(focal(logits, targets, gamma=0.0, reduction=reduction),
                                   cross_entropy(logits, targets, reduction=reduction), rtol=1e-12, atol=1e-12)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    focal(a, targets, gamma=0.0).backward()
    cross_entropy(b, targets).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", [2, 4, 9])
def test_lstar_k0_is_cross_entropy_over_c(c):
    logits, targets = make_batch(n=15, c=c, seed=4)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    got, want = lstar(a, targets, k=0.0, reduction="none"), cross_entropy(b, targets, reduction="none") / c
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [0.3, 1.0, 2.0, 7.5])
def test_two_class_lstar_is_binary_lstar_on_logit_difference(k):
    logits, targets = make_batch(n=16, c=2, seed=5, scale=3.0)
    targets[1::3] = 0
    targets[2::3] = 1  # both targets present
    multi = lstar(logits, targets, k=k, reduction="none")
    # class 0 is the "positive" class: x = a - b, y = 1 for target 0
    y = torch.where(targets == IGNORE_INDEX, IGNORE_INDEX, 1 - targets)
    binary = binary_lstar(logits[:, 0] - logits[:, 1], y, k=k, reduction="none")
    torch.testing.assert_close(multi, binary, rtol=1e-12, atol=1e-12)
    # and the log-odds form agrees with Su's form when C = 2
    torch.testing.assert_close(lstar_logodds(logits, targets, k=k, reduction="none"), multi, rtol=1e-12, atol=1e-12)


def test_binary_lstar_k1_is_unweighted_binary_focal_gamma1():
    x = torch.linspace(-6, 6, 25, dtype=torch.float64)
    for y in (torch.ones(25, dtype=torch.long), torch.zeros(25, dtype=torch.long)):
        torch.testing.assert_close(binary_lstar(x, y, k=1.0, reduction="none"),
                                   binary_focal(x, y, gamma=1.0, alpha=None, reduction="none"),
                                   rtol=1e-12, atol=1e-12)


def test_binary_focal_alpha_half_is_half_the_unweighted_form():
    x = torch.linspace(-4, 4, 9, dtype=torch.float64)
    y = torch.tensor([1, 0, 1, 1, 0, IGNORE_INDEX, 0, 1, 0])
    torch.testing.assert_close(binary_focal(x, y), 0.5 * binary_focal(x, y, alpha=None), rtol=1e-12, atol=0)
    # alpha weights the positive class, 1 - alpha the negative one
    s = torch.sigmoid(x)
    pos = -0.25 * (1 - s) ** 2 * torch.log(s)
    neg = -0.75 * s**2 * torch.log(1 - s)
    want = torch.where(y == 1, pos, torch.where(y == 0, neg, 0))
    torch.testing.assert_close(binary_focal(x, y, alpha=0.25, reduction="none"), want, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("c", [2, 5, 9])
def test_lstar_logodds_k1_is_focal_gamma1(c):
    logits, targets = make_batch(n=18, c=c, seed=6, scale=3.0)
    torch.testing.assert_close(lstar_logodds(logits, targets, k=1.0, reduction="none"),
                               focal(logits, targets, gamma=1.0, reduction="none"), rtol=1e-10, atol=1e-14)


def test_binary_lstar_tends_to_binary_hard_truncation_as_k_grows():
    x = torch.tensor([-5.0, -2.0, -0.5, 0.5, 1.0, 3.0], dtype=torch.float64)  # away from the boundary x = 0
    for y in (torch.ones(6, dtype=torch.long), torch.zeros(6, dtype=torch.long)):
        target = binary_hard_truncation(x, y, threshold=0.5, reduction="none")
        errors = [(binary_lstar(x, y, k=k, reduction="none") - target).abs().max().item() for k in (2, 10, 50)]
        assert errors[0] > errors[1] > errors[2]
        assert errors[2] < 1e-10  # sigmoid(-50 * 0.5) * log(1 + e^0.5) = 1.4e-11 * 0.97
    # and the step itself: L* keeps only positions at or below the threshold
    got = binary_hard_truncation(x, torch.ones(6, dtype=torch.long), reduction="none")
    torch.testing.assert_close(got, torch.where(x <= 0, -F.logsigmoid(x), 0), rtol=1e-12, atol=0)


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=VARIANT_IDS)
def test_shift_invariance(name, params):
    logits, targets = make_batch(n=12, c=4, seed=7)
    loss = get_loss(name, **params)
    base = loss(logits, targets, reduction="none")
    for shift in (-7.25, 0.5, 13.0):
        torch.testing.assert_close(loss(logits + shift, targets, reduction="none"), base, rtol=1e-9, atol=1e-12)
        # per-row shifts too: every entry depends on the logits only through softmax-like quantities
        row_shift = shift * torch.arange(12, dtype=torch.float64)[:, None]
        torch.testing.assert_close(loss(logits + row_shift, targets, reduction="none"), base, rtol=1e-9,
                                   atol=1e-12)


# ------------------------------------------------------------------------------ gradients


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=VARIANT_IDS)
def test_gradcheck(name, params):
    logits, targets = make_batch(n=6, c=4, seed=8)
    if name == "hard_truncation":  # keep p_t away from the step so finite differences do not cross it
        p_t = logits.softmax(1).gather(1, targets.clamp_min(0)[:, None]).squeeze(1)
        assert (p_t - params.get("threshold", 0.5)).abs().min() > 1e-3
    logits.requires_grad_(True)
    loss = get_loss(name, **params)
    for reduction in ("mean", "none"):
        assert torch.autograd.gradcheck(lambda x, r=reduction: loss(x, targets, reduction=r), (logits,))


@pytest.mark.parametrize("fn", [binary_focal, binary_hard_truncation, binary_lstar])
def test_gradcheck_binary(fn):
    x = torch.tensor([-3.0, -0.7, 0.4, 1.3, 2.2, -1.9], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 0, IGNORE_INDEX, 1, 0, 1])
    assert torch.autograd.gradcheck(lambda v: fn(v, y, reduction="none"), (x,))


def test_gradient_flows_through_focal_weight():
    logits, targets = make_batch(n=10, c=4, seed=9)
    x = logits.clone().requires_grad_()
    focal(x, targets, gamma=2.0).backward()
    # explicit formula, weight NOT detached: must match
    x_ref = logits.clone().requires_grad_()
    kept = targets != IGNORE_INDEX
    p_t = x_ref.softmax(1)[kept].gather(1, targets[kept][:, None]).squeeze(1)
    (-((1 - p_t) ** 2) * p_t.log()).mean().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-14)
    # ... and a detached weight gives a measurably different gradient (so the check above can fail)
    x_det = logits.clone().requires_grad_()
    p_t = x_det.softmax(1)[kept].gather(1, targets[kept][:, None]).squeeze(1)
    (-((1 - p_t.detach()) ** 2) * p_t.log()).mean().backward()
    assert (x_det.grad - x.grad).abs().max() > 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_ignored_positions_get_zero_gradient_and_do_not_matter(name):
    logits, targets = make_batch(n=12, c=4, seed=10)
    ignored = targets == IGNORE_INDEX
    loss = get_loss(name)
    a = logits.clone().requires_grad_()
    value = loss(a, targets)
    value.backward()
    assert torch.equal(a.grad[ignored], torch.zeros_like(a.grad[ignored]))
    assert a.grad[~ignored].abs().sum() > 0
    changed = logits.clone()
    changed[ignored] = torch.tensor([50.0, -30.0, 7.0, -1e4], dtype=torch.float64)
    b = changed.requires_grad_()
    other = loss(b, targets)
    other.backward()
    assert other.item() == value.item()
    assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_ignored_batch_is_zero_with_zero_grads(name, reduction):
    x = torch.randn(5, 3, requires_grad=True)
    targets = torch.full((5,), IGNORE_INDEX)
    value = get_loss(name)(x, targets, reduction=reduction)
    assert value.item() == 0.0
    value.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    assert torch.isnan(get_loss(name).weights(x, targets)).all()


def test_all_ignored_weighted_cross_entropy_is_zero():
    x = torch.randn(4, 3, requires_grad=True)
    value = get_loss("cross_entropy", weight=[1.0, 2.0, 3.0])(x, torch.full((4,), IGNORE_INDEX))
    value.backward()
    assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize(("name", "params"), VARIANTS, ids=VARIANT_IDS)
def test_extreme_logits_give_finite_loss_and_grads(name, params):
    # +-1e4: confidently right (target at +1e4), confidently wrong (target at -1e4), ties at 1e4
    x = torch.tensor([[1e4, -1e4, -1e4, 0.0], [1e4, -1e4, 0.0, 1e4], [-1e4, 1e4, -1e4, -1e4],
                      [1e4, 1e4, 1e4, 1e4]], requires_grad=True)
    targets = torch.tensor([0, 1, 2, 3])
    loss = get_loss(name, **params)
    for reduction in ("mean", "sum", "none"):
        value = loss(x, targets, reduction=reduction)
        assert torch.isfinite(value).all()
        value.sum().backward()
        assert torch.isfinite(x.grad).all()
        x.grad = None
    assert torch.isfinite(loss.weights(x, targets)).all()
    # the confidently right row: ~0 loss and gradient; dice's floor there is 1 / (1 + smooth), with zero slope
    row = x.detach()[:1].clone().requires_grad_()
    easy = loss(row, targets[:1])
    easy.backward()
    floor = 1 / (1 + params.get("smooth", 1.0)) if name == "dice" else 0.0
    if name != "cross_entropy" or not params.get("label_smoothing"):
        assert easy.item() == pytest.approx(floor, abs=1e-6)
        assert row.grad.abs().max().item() < 1e-6


@pytest.mark.parametrize("fn", [binary_focal, binary_hard_truncation, binary_lstar])
def test_binary_extreme_logits_are_finite(fn):
    x = torch.tensor([1e4, -1e4, 1e4, -1e4], requires_grad=True)
    value = fn(x, torch.tensor([1, 1, 0, 0]))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("low", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_logits_computed_in_float32(name, low):
    logits, targets = make_batch(n=10, c=5, seed=11, dtype=torch.float32)
    x = logits.to(low).requires_grad_()
    value = get_loss(name)(x, targets)
    assert value.dtype == torch.float32
    want = get_loss(name)(x.detach().float(), targets)
    assert value.item() == want.item()  # same float32 maths on the upcast logits
    value.backward()
    assert x.grad.dtype == low and torch.isfinite(x.grad.float()).all()


# ------------------------------------------------------------------------------ registry and errors


def test_registry_lists_every_entry_with_docs():
    assert {n for n, spec in LOSSES.items() if spec.kind == "token"} == set(NAMES)  # span losses: test_span_losses
    for name, spec in LOSSES.items():
        assert spec.name == name and spec.description and spec.formula
        assert spec.fn.__doc__ and "-100" in spec.fn.__doc__ and ">>>" in spec.fn.__doc__
        signature = inspect.signature(spec.fn)
        assert list(signature.parameters)[:2] == ["logits", "targets"]
        assert set(spec.defaults) == set(signature.parameters) - {"logits", "targets", "reduction"}


def test_defaults_are_filled_in():
    assert validate_loss_params("focal", {}) == {"gamma": 2.0, "alpha": None}
    assert validate_loss_params("focal", {"gamma": 1}) == {"gamma": 1.0, "alpha": None}
    assert validate_loss_params("cross_entropy", {"weight": (1, 2)}) == {"weight": [1.0, 2.0],
                                                                        "label_smoothing": 0.0}
    assert validate_loss_params("hard_truncation") == {"threshold": 0.5}
    assert validate_loss_params("lstar") == {"k": 1.0}
    assert validate_loss_params("dice") == {"alpha": 1.0, "smooth": 1.0}
    loss = get_loss("lstar", k=2)
    assert loss.name == "lstar" and loss.params == {"k": 2.0} and loss.fn is lstar


def test_loss_is_frozen():
    loss = get_loss("focal")
    assert isinstance(loss, Loss)
    with pytest.raises(dataclasses.FrozenInstanceError):
        loss.name = "cross_entropy"


def test_unknown_name_lists_valid_names():
    with pytest.raises(LossConfigError) as err:
        get_loss("focall")
    message = str(err.value)
    assert "'focall'" in message
    for name in NAMES:
        assert name in message
    with pytest.raises(LossConfigError):
        validate_loss_params("Focal", {})


@pytest.mark.parametrize(("name", "params", "needle"), [
    ("focal", {"gamma": -0.5}, "gamma"),
    ("focal", {"gamma": float("nan")}, "gamma"),
    ("focal", {"gamma": "2"}, "gamma"),
    ("focal", {"gamma": True}, "gamma"),
    ("focal", {"alpha": [0.5, -1.0]}, "alpha[1]"),
    ("focal", {"alpha": 0.25}, "alpha"),
    ("lstar", {"k": -1.0}, "k"),
    ("lstar_logodds", {"k": -0.1}, "k"),
    ("hard_truncation", {"threshold": 0.0}, "threshold"),
    ("hard_truncation", {"threshold": 1.0}, "threshold"),
    ("hard_truncation", {"threshold": 1.5}, "threshold"),
    ("cross_entropy", {"label_smoothing": 1.0}, "label_smoothing"),
    ("cross_entropy", {"label_smoothing": -0.1}, "label_smoothing"),
    ("cross_entropy", {"weight": [1.0, -2.0, 1.0]}, "weight[1]"),
    ("cross_entropy", {"weight": [0.0, 0.0]}, "weight"),
    ("cross_entropy", {"weight": []}, "weight"),
    ("dice", {"alpha": -1}, "alpha"),
    ("dice", {"smooth": -1}, "smooth"),
])
def test_bad_parameter_value_names_the_parameter(name, params, needle):
    with pytest.raises(LossConfigError) as err:
        get_loss(name, **params)
    message = str(err.value)
    assert f"{needle}=" in message and "accepted" in message and repr(name) in message


def test_unknown_parameter_names_it_and_the_accepted_ones():
    with pytest.raises(LossConfigError) as err:
        validate_loss_params("focal", {"gama": 2.0})
    message = str(err.value)
    assert "'gama'" in message and "gamma" in message and "alpha" in message


def test_class_list_length_checked_against_c_at_call_time():
    loss = get_loss("cross_entropy", weight=[1.0, 2.0, 3.0])  # fine at config time: C unknown
    logits, targets = make_batch(n=6, c=5, seed=12)
    with pytest.raises(LossConfigError, match=r"weight has 3 entries but the logits have C=5 classes"):
        loss(logits, targets)
    with pytest.raises(LossConfigError, match=r"alpha has 2 entries but the logits have C=5"):
        get_loss("focal", alpha=[1.0, 2.0])(logits, targets)


def test_bad_inputs_raise_clear_errors():
    logits, targets = make_batch(n=6, c=4, seed=13)
    with pytest.raises(ValueError, match="reduction"):
        get_loss("focal")(logits, targets, reduction="avg")
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        get_loss("focal")(logits[None], targets[None])
    with pytest.raises(ValueError, match="targets must have shape"):
        get_loss("focal")(logits, targets[:3])
    with pytest.raises(ValueError, match="integer class ids"):
        get_loss("focal")(logits, targets.double())
    with pytest.raises(ValueError, match="0, 1 or -100"):
        binary_lstar(torch.zeros(3), torch.tensor([0, 2, 1]))


def test_registering_a_name_twice_raises():
    spec = LOSSES["focal"]
    with pytest.raises(LossConfigError, match="already registered"):
        register_loss(spec)
    with pytest.raises(LossConfigError, match="already registered"):
        register_loss(LossSpec("focal", focal, spec.terms, spec.checks, "changed", "changed"))
    assert LOSSES["focal"] is spec


# ------------------------------------------------------------------------------ properties over random inputs


@st.composite
def batches(draw):
    n = draw(st.integers(1, 12))
    c = draw(st.integers(2, 10))
    values = draw(st.lists(st.floats(-30, 30, allow_nan=False), min_size=n * c, max_size=n * c))
    kept = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    classes = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    logits = torch.tensor(values, dtype=torch.float64).reshape(n, c)
    targets = torch.tensor([t if k else IGNORE_INDEX for t, k in zip(classes, kept, strict=True)])
    return logits, targets


PARAMS_BY_NAME = {
    "cross_entropy": st.fixed_dictionaries({"label_smoothing": st.sampled_from([0.0, 0.1])}),
    "focal": st.fixed_dictionaries({"gamma": st.floats(0, 5)}),
    "hard_truncation": st.fixed_dictionaries({"threshold": st.floats(0.05, 0.95)}),
    "lstar": st.fixed_dictionaries({"k": st.floats(0, 5)}),
    "lstar_logodds": st.fixed_dictionaries({"k": st.floats(0, 5)}),
    "dice": st.fixed_dictionaries({"alpha": st.floats(0, 3), "smooth": st.floats(0, 2)}),
}


@st.composite
def losses(draw):
    name = draw(st.sampled_from(NAMES))
    return get_loss(name, **draw(PARAMS_BY_NAME[name]))


@settings(max_examples=60, deadline=None)
@given(batch=batches(), loss=losses())
def test_property_reductions_finite_nonnegative(batch, loss):
    logits, targets = batch
    kept = targets != IGNORE_INDEX
    per_row = loss(logits, targets, reduction="none")
    total, mean = loss(logits, targets, reduction="sum"), loss(logits, targets, reduction="mean")
    assert per_row.shape == targets.shape
    assert torch.isfinite(per_row).all() and (per_row >= 0).all()
    assert torch.equal(per_row[~kept], torch.zeros_like(per_row[~kept]))
    torch.testing.assert_close(per_row.sum(), total, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mean * max(int(kept.sum()), 1), total, rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(batch=batches(), loss=losses(), noise=st.floats(-100, 100))
def test_property_ignored_logits_do_not_matter(batch, loss, noise):
    logits, targets = batch
    ignored = targets == IGNORE_INDEX
    changed = logits.clone()
    changed[ignored] = changed[ignored] * 3 + noise
    a, b = logits.clone().requires_grad_(), changed.requires_grad_()
    va, vb = loss(a, targets, reduction="sum"), loss(b, targets, reduction="sum")
    assert va.item() == vb.item()
    va.backward()
    vb.backward()
    assert torch.isfinite(a.grad).all()
    assert torch.equal(a.grad, b.grad)
    assert torch.equal(a.grad[ignored], torch.zeros_like(a.grad[ignored]))


def test_minus_infinity_logits_are_absent_classes_for_lstar():
    """A -inf logit (a masked QA position) is no class: lstar equals lstar on the remaining classes."""
    from seqtag.losses import get_loss

    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 7, generator=g, dtype=torch.float64)
    keep = [0, 2, 3, 5]
    masked = x.clone()
    masked[:, [1, 4, 6]] = float("-inf")
    t_sub = torch.randint(0, 4, (6,), generator=g)
    t_full = torch.tensor(keep)[t_sub]
    for k in (0.0, 0.5, 2.0):
        loss = get_loss("lstar", k=k)
        torch.testing.assert_close(loss(masked, t_full, reduction="none"), loss(x[:, keep], t_sub, reduction="none"))


# --------------------------------------------------------------------------------------------- LossModule


MODULE_CASES = [0, 3, 5, 9, 12]  # CE, weighted smoothed CE, focal with alpha, lstar, dice


@pytest.mark.parametrize(("name", "params"), [VARIANTS[i] for i in MODULE_CASES],
                         ids=[VARIANT_IDS[i] for i in MODULE_CASES])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_module_equals_get_loss_and_passes_gradients(name, params, reduction):
    logits, targets = make_batch(n=12, c=4, seed=5)
    tokens = logits.reshape(3, 4, 4).clone().requires_grad_()  # (B, T, C)
    crit = LossModule(name, reduction=reduction, **params)
    got = crit(tokens, targets.reshape(3, 4))
    flat = logits.clone().requires_grad_()
    want = get_loss(name, **params)(flat, targets, reduction=reduction)
    assert got.shape == ((3, 4) if reduction == "none" else ())
    torch.testing.assert_close(got.reshape(want.shape), want, rtol=0, atol=0)
    got.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(tokens.grad.reshape(12, 4), flat.grad, rtol=0, atol=0)
    assert tokens.grad.abs().sum() > 0 and torch.equal(tokens.grad.reshape(12, 4)[targets == IGNORE_INDEX],
                                                       torch.zeros(4, 4, dtype=flat.dtype))
    assert list(crit.parameters()) == [] and list(crit.buffers()) == []


def test_loss_module_errors():
    with pytest.raises(LossConfigError, match="unknown loss 'focul'; valid names: cross_entropy, dice, focal"):
        LossModule("focul")
    with pytest.raises(LossConfigError, match="loss 'focal': gamma=-1 is invalid"):
        LossModule("focal", gamma=-1)
    with pytest.raises(ValueError, match="reduction='avg' is invalid; accepted: mean, sum, none"):
        LossModule("focal", reduction="avg")
    with pytest.raises(ValueError, match=r"targets \(2, 4\) must have the shape of logits \(2, 3, 4\)"):
        LossModule("focal")(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
