"""Parameter checks of the registry's losses: each takes ``(param_name, value)`` and returns the normalised
value or raises :class:`~seqtag.errors.LossConfigError` naming the parameter and what it accepts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from seqtag.errors import LossConfigError

Checker = Callable[[str, Any], Any]
"""``check(param_name, value) -> normalised value``; raises :class:`LossConfigError` naming the parameter."""


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
