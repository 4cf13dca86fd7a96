"""The registry: :data:`LOSSES` maps a name to its :class:`LossSpec`; :func:`get_loss` binds parameters.

Changed maths gets a new name, so old configs keep their meaning: :func:`register_loss` refuses a name twice."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from seqtag.errors import LossConfigError
from seqtag.losses.multiclass import (
    _cross_entropy_terms,
    _dice_terms,
    _focal_terms,
    _hard_truncation_terms,
    _lstar_logodds_terms,
    _lstar_terms,
    cross_entropy,
    dice,
    focal,
    hard_truncation,
    lstar,
    lstar_logodds,
)
from seqtag.losses.params import (
    Checker,
    check_class_values,
    check_label_smoothing,
    check_nonnegative,
    check_open_unit,
)
from seqtag.losses.terms import Terms, term_weights


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: its function, the per-position terms it reduces, and its documentation.

    ``defaults`` come from the keyword-only parameters of ``fn``; ``checks`` holds one checker per parameter.
    ``kind``: ``"token"`` for a loss over ``(N, C)`` class logits (the linear and CRF heads, QA), ``"span"`` for a
    loss over ``(G, K)`` candidate-span scores (``model.head: span``, :mod:`seqtag.losses.span`); a config that
    pairs a loss with the other kind of head is refused at load (:func:`seqtag.config.check_head`).
    """

    name: str
    fn: Callable[..., Tensor]
    terms: Callable[..., Terms] = field(repr=False)
    checks: Mapping[str, Checker] = field(repr=False)
    description: str
    formula: str
    kind: str = "token"

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
    terms: Callable[..., Terms] = field(repr=False, compare=False)

    def __call__(self, logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
        return self.fn(logits, targets, reduction=reduction, **self.params)

    def weights(self, logits: Tensor, targets: Tensor) -> Tensor:
        """``(N,)`` detached weight multiplying ``-log p_t`` per position; NaN at ignored positions."""
        with torch.no_grad():
            return term_weights(self.terms(logits, targets, **self.params))


LOSSES: dict[str, LossSpec] = {}


def check_token_loss(name: str) -> None:
    """Raise :class:`LossConfigError` when ``name`` is a span loss, which takes candidate-span scores ``(G, K)``
    rather than class logits ``(N, C)``: for callers that hand a loss token logits (the Trainer, ``LossModule``)."""
    if name in LOSSES and LOSSES[name].kind != "token":
        raise LossConfigError(f"loss {name!r} scores candidate spans (model.head: span, seqtag.losses.span), not token "
                              f"logits (N, C); call it directly as {LOSSES[name].fn.__name__}(logits (G, K), targets "
                              f"(G, K)) or pick a token loss")


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
