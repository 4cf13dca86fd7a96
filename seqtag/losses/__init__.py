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

- :mod:`~seqtag.losses.multiclass`: cross-entropy, focal, hard truncation (L*), L** and its log-odds form, Dice.
- :mod:`~seqtag.losses.binary`: the binary forms (focal, L*, L**), one logit per position.
- :mod:`~seqtag.losses.span`: the span head's losses (``kind="span"``): scores ``(G, K)`` of candidate spans grouped
  per (sentence, type), targets in {0, 1}; the binary forms summed per group, and Su's multi-label cross-entropy.
- :mod:`~seqtag.losses.terms`: what every loss shares (input checks, the upcast, reductions).
- :mod:`~seqtag.losses.params`: the parameter checks; :mod:`~seqtag.losses.registry`: ``LOSSES``, ``get_loss``.
- :mod:`~seqtag.losses.module`: ``LossModule``, a registry loss as an ``nn.Module``.
- :mod:`~seqtag.losses.trainer`: a registry loss inside the Hugging Face ``Trainer`` (public as ``seqtag.hf``).

Imports: the core modules only (constants, errors).
"""

from __future__ import annotations

from seqtag.losses.binary import binary_focal, binary_hard_truncation, binary_lstar
from seqtag.losses.module import LossModule
from seqtag.losses.multiclass import cross_entropy, dice, focal, hard_truncation, lstar, lstar_logodds
from seqtag.losses.params import check_class_values
from seqtag.losses.registry import LOSSES, Loss, LossSpec, get_loss, register_loss, validate_loss_params
from seqtag.losses.span import span_bce, span_focal, span_hard_truncation, span_lstar, span_multilabel
from seqtag.losses.terms import REDUCTIONS

__all__ = ["LOSSES", "REDUCTIONS", "Loss", "LossModule", "LossSpec", "binary_focal", "binary_hard_truncation",
           "binary_lstar", "check_class_values", "cross_entropy", "dice", "focal", "get_loss", "hard_truncation",
           "lstar", "lstar_logodds", "register_loss", "span_bce", "span_focal", "span_hard_truncation", "span_lstar",
           "span_multilabel", "validate_loss_params"]
