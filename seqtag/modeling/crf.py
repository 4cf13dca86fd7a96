"""A linear-chain CRF over the labelled positions of a token classifier, and its transitions file.

The encoder and its linear layer give emission scores ``x (B, T, C)``; the CRF adds learned ``transitions (C, C)``,
``start (C,)`` and ``end (C,)`` scores and models a whole tag path ``y`` of a chain of ``n`` positions:

    score(x, y) = start[y_0] + sum_{t<n} x[t, y_t] + sum_{0<t<n} transitions[y_{t-1}, y_t] + end[y_{n-1}]
    log Z(x)    = log sum_{y'} exp score(x, y')         (the forward algorithm, in log space)
    p(y | x)    = exp(score(x, y) - log Z(x)),    nll = log Z(x) - score(x, y)

**Which positions.** The chain runs over the *labelled* positions of a row, in order: the first subword of every
word the row's window owns (``labels != -100``, or ``word_index >= 0``). They need not be contiguous; :func:`compact`
gathers them to the left. Continuation subwords, special tokens and padding are not in the chain. (With
``label_all_tokens`` continuation subwords carry labels too, and IOBES/BILOU continuations are invalid moves, so
that option does not combine with the CRF.)

**Windows.** Training on a window uses the window's labelled positions as one chain. A window that starts (ends)
inside a sentence is a fragment: pass ``sentence_start`` (``sentence_end``) ``False`` for that row and the chain
gets no start (end) score and no start (end) constraint, so an ``I-PER`` that continues a span from the previous
window is a valid first tag (:func:`chain_bounds` computes both flags from ``word_index``). At prediction the
window scores are merged first: every word takes its emission row from the window that owns it
(:func:`seqtag.data.align.merge_windows`), :func:`seqtag.modeling.decoding.pad_rows` pads the sentences, and
:meth:`CRF.decode` (or :func:`seqtag.modeling.decoding.viterbi` with the saved transitions) runs Viterbi over the
whole sentence, with start and end scores at its true ends.

**Constraints.** Built with ``constraints=transition_constraints(labels, scheme)``, the CRF sets the forbidden first
tags, moves and last tags to ``-inf``: those paths have probability exactly 0 and the masked parameters get no
gradient (masked, not learned away). In the forward algorithm ``-inf`` is read as ``-1e30``; ``exp`` of it is 0
in float32 and float64 alike, so the numbers are unchanged and gradients stay free of NaN.

**Saving.** :func:`save_transitions` writes ``crf_transitions.safetensors`` next to the encoder's
``model.safetensors``: the effective ``transitions``, ``start`` and ``end`` (``-inf`` where forbidden) and the
labels they index, in the file's metadata. Decoding from that file needs no seqtag: :func:`viterbi_from_file` is
written in plain PyTorch and safetensors only, so that its body can be copied (the model card shows it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from seqtag.constants import IGNORE_INDEX
from seqtag.errors import DataError, SeqtagError
from seqtag.modeling.decoding import viterbi

TRANSITIONS_FILE = "crf_transitions.safetensors"
"""The file, in a run directory, that holds the CRF's transitions and the labels they index."""

FORMAT = "seqtag-crf-transitions/1"
"""The ``format`` entry of the transitions file's metadata."""

NEG = -1e30
"""Stands for ``-inf`` inside the forward algorithm (``exp(NEG - s) == 0`` for every finite score ``s``)."""

REDUCTIONS = ("mean", "sum", "none")


def compact(emissions: Tensor, labels_or_mask: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
    """Gather every row's labelled positions to the left, keeping their order.

    Args:
        emissions: ``(B, T, C)``.
        labels_or_mask: ``(B, T)`` integer labels (``-100`` marks an unlabelled position) or a bool mask.

    Returns:
        ``emissions (B, L, C)``, ``tags (B, L)`` (the labels; 0 at padding; ``None`` when a mask was given) and a
        left-aligned ``mask (B, L)``, with ``L`` the largest number of labelled positions in a row. Padding
        emissions are 0. Vectorised (one stable sort); reads ``L`` back from the device.

    >>> e = torch.arange(8.0).reshape(1, 4, 2)
    >>> x, tags, mask = compact(e, torch.tensor([[-100, 1, -100, 0]]))
    >>> x.tolist(), tags.tolist(), mask.tolist()
    ([[[2.0, 3.0], [6.0, 7.0]]], [[1, 0]], [[True, True]])
    """
    if emissions.ndim != 3 or labels_or_mask.shape != emissions.shape[:2]:
        raise ValueError(f"emissions must be (B, T, C) and labels/mask (B, T); got {tuple(emissions.shape)} and "
                         f"{tuple(labels_or_mask.shape)}")
    is_mask = labels_or_mask.dtype == torch.bool
    x, tags, new_mask = _compact(emissions, None if is_mask else labels_or_mask,
                                 labels_or_mask if is_mask else labels_or_mask != IGNORE_INDEX)
    return x, tags, new_mask


def _compact(emissions: Tensor, tags: Tensor | None, mask: Tensor,
             length: int | None = None) -> tuple[Tensor, Tensor | None, Tensor]:
    """:func:`compact` by an explicit mask: the True positions of every row first, in order. ``length``: the most
    True positions in a row, when the caller has read it already (else it is read back here)."""
    counts = mask.sum(1)
    if length is None:
        length = int(counts.max()) if mask.shape[0] else 0
    order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, :length]
    new_mask = torch.arange(length, device=mask.device) < counts[:, None]
    x = emissions.gather(1, order[:, :, None].expand(-1, -1, emissions.shape[2]))
    x = torch.where(new_mask[:, :, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
    tags = None if tags is None else torch.where(new_mask, tags.gather(1, order), 0)
    return x, tags, new_mask


def chain_bounds(word_index: Tensor, num_words: Tensor) -> tuple[Tensor, Tensor]:
    """Whether each window's chain starts at its sentence's first word and ends at its last word.

    Args:
        word_index: ``(B, T)``, the sentence-level word index at the first subword of each word the window owns,
            -1 elsewhere (the ``word_index`` column of :func:`seqtag.data.align.encode_sentences`).
        num_words: ``(B,)``, the number of words of each row's sentence.

    Returns:
        ``sentence_start (B,)`` and ``sentence_end (B,)`` bool, for :meth:`CRF.nll`.

    >>> chain_bounds(torch.tensor([[-1, 0, 1, -1], [-1, 2, 3, -1]]), torch.tensor([4, 4]))
    (tensor([ True, False]), tensor([False,  True]))
    """
    owned = word_index >= 0
    first = torch.where(owned, word_index, torch.iinfo(word_index.dtype).max).amin(1)
    last = torch.where(owned, word_index, -1).amax(1)
    return first == 0, last == num_words.to(last.device) - 1


class CRF(nn.Module):
    """Linear-chain CRF: learned ``transitions (C, C)``, ``start (C,)``, ``end (C,)`` (zeros at first).

    Formulas in the module docstring. ``constraints``, if given, is ``(start_ok (C,), trans_ok (C, C),
    end_ok (C,))`` bool (:func:`seqtag.modeling.decoding.transition_constraints`): the entries that are False score
    ``-inf`` in every use (:meth:`scores`), so forbidden paths have probability 0, and their parameters get zero
    gradient. The constraints are buffers, saved in ``state_dict``.

    >>> crf = CRF(2)
    >>> with torch.no_grad():
    ...     _ = crf.transitions.copy_(torch.tensor([[0.5, -1.0], [0.0, 0.2]]))
    >>> x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])            # one chain of 2 positions
    >>> # paths 00, 01, 10, 11 score 1.5, 1.0, 0.0, 1.2: log Z = log(e^1.5 + e^1 + e^0 + e^1.2) = 2.4441
    >>> round(crf.nll(x, torch.tensor([[0, 1]])).item(), 4)    # log Z - score(01)
    1.4441
    >>> crf.decode(x, torch.ones(1, 2, dtype=torch.bool))
    [[0, 0]]
    """

    def __init__(self, num_tags: int, constraints: tuple[Tensor, Tensor, Tensor] | None = None) -> None:
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be >= 1; got {num_tags}")
        c = num_tags
        self.num_tags = c
        self.transitions = nn.Parameter(torch.zeros(c, c))
        self.start = nn.Parameter(torch.zeros(c))
        self.end = nn.Parameter(torch.zeros(c))
        if constraints is None:
            constraints = (torch.ones(c, dtype=torch.bool), torch.ones(c, c, dtype=torch.bool),
                           torch.ones(c, dtype=torch.bool))
        start_ok, trans_ok, end_ok = constraints
        for name, t, shape in (("start_ok", start_ok, (c,)), ("trans_ok", trans_ok, (c, c)), ("end_ok", end_ok, (c,))):
            if tuple(t.shape) != shape or t.dtype != torch.bool:
                raise ValueError(f"constraint {name} must be a bool tensor of shape {shape}; got "
                                 f"{tuple(t.shape)} {t.dtype}")
        self.register_buffer("start_ok", start_ok.clone())
        self.register_buffer("trans_ok", trans_ok.clone())
        self.register_buffer("end_ok", end_ok.clone())

    @classmethod
    def from_transitions(cls, transitions: Tensor, start: Tensor, end: Tensor) -> CRF:
        """A CRF holding saved effective scores (:func:`load_transitions`): ``-inf`` entries become constraints."""
        c = start.shape[0]
        crf = cls(c, (torch.isfinite(start), torch.isfinite(transitions), torch.isfinite(end)))
        with torch.no_grad():
            for p, v in ((crf.transitions, transitions), (crf.start, start), (crf.end, end)):
                p.copy_(torch.where(torch.isfinite(v), v, 0.0))
        return crf

    def scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """The effective ``(transitions, start, end)``: the parameters, ``-inf`` where a constraint forbids."""
        return (torch.where(self.trans_ok, self.transitions, -torch.inf),
                torch.where(self.start_ok, self.start, -torch.inf),
                torch.where(self.end_ok, self.end, -torch.inf))

    def nll(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: str = "sum",
            sentence_start: Tensor | None = None, sentence_end: Tensor | None = None) -> Tensor:
        """Exact negative log-likelihood ``log Z(x) - score(x, y)`` of the gold paths.

        Args:
            emissions: ``(B, T, C)`` scores, any float dtype. Computed in float32 (float64 stays float64) with
                autocast off, so bf16 autocast outside changes nothing.
            tags: ``(B, T)`` gold tag ids; any value (such as -100) where ``mask`` is False.
            mask: ``(B, T)`` bool, True at the positions of the chain, not necessarily left-aligned (padding,
                special tokens and continuation subwords are False); None means ``tags != -100``. Masked
                positions are dropped exactly, whatever their emissions hold (NaN included).
            reduction: ``"sum"`` over rows; ``"mean"``: that sum divided by the number of chain positions (the
                labelled-token count the losses of :mod:`seqtag.losses` divide by; 0 when there are none);
                ``"none"``: ``(B,)`` per row, 0 for an empty row.
            sentence_start, sentence_end: ``(B,)`` bool, False where the row's chain does not start (end) at its
                sentence's first (last) word, as in a window cut from a longer sentence: the chain then has no
                start (end) score and no start (end) constraint. None means all True.

        A gold path through a forbidden move scores about ``-1e30`` (probability 0), so its loss is about 1e30:
        fix such data first (:func:`seqtag.data.schemes.repair`). Vectorised over the batch (a loop over the
        chain positions only). Reads back from the device once: the longest chain length (for :func:`compact`)
        and the number of tags out of range, as one pair.
        """
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction={reduction!r} is invalid; accepted: {', '.join(REDUCTIONS)}")
        self._check_emissions(emissions)
        if tags.shape != emissions.shape[:2] or tags.dtype.is_floating_point or tags.dtype == torch.bool:
            raise ValueError(f"tags must be integer ids of shape {tuple(emissions.shape[:2])}; got "
                             f"{tuple(tags.shape)} {tags.dtype}")
        for name, flag in (("mask", mask), ("sentence_start", sentence_start), ("sentence_end", sentence_end)):
            want = emissions.shape[:2] if name == "mask" else emissions.shape[:1]
            if flag is not None and (flag.shape != want or flag.dtype != torch.bool):
                raise ValueError(f"{name} must be a bool tensor of shape {tuple(want)}; got {tuple(flag.shape)} "
                                 f"{flag.dtype}")
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            mask = tags != IGNORE_INDEX if mask is None else mask
            bad = mask & ((tags < 0) | (tags >= self.num_tags))
            length, n_bad = torch.stack([mask.sum(1).max(), bad.sum()]).tolist() if mask.shape[0] else (0, 0)
            if n_bad:
                raise ValueError(f"tags must be in [0, {self.num_tags}) where mask is True; got "
                                 f"{tags[bad][:5].tolist()}")
            x, y, m = _compact(emissions, tags, mask, length)
            dtype = torch.promote_types(x.dtype, torch.float32)
            x = x.to(dtype).clamp_min(NEG)
            trans, start, end = (s.to(dtype).clamp_min(NEG) for s in self.scores())
            b, n = m.shape
            ones = torch.ones(b, dtype=torch.bool, device=x.device)
            start = start * (ones if sentence_start is None else sentence_start.to(x.device))[:, None].to(dtype)
            end = end * (ones if sentence_end is None else sentence_end.to(x.device))[:, None].to(dtype)
            if n == 0:  # no chain in the batch; keep the parameters in the graph (DDP wants every one used)
                per_row = 0.0 * (trans.sum() + start.sum() + end.sum()) + x.new_zeros(b)
            else:
                per_row = self._log_partition(x, m, trans, start, end) - self._path_score(x, y, m, trans, start, end)
                per_row = torch.where(m[:, 0], per_row, 0.0)
        if reduction == "none":
            return per_row
        total = per_row.sum()
        return total if reduction == "sum" else total / m.sum().clamp_min(1)

    @staticmethod
    def _log_partition(x: Tensor, m: Tensor, trans: Tensor, start: Tensor, end: Tensor) -> Tensor:
        """``log Z (B,)`` by the forward algorithm: ``alpha_0 = start + x_0``,
        ``alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + trans[i, j]) + x_t[j]``, ``log Z = logsumexp(alpha_{n-1} + end)``."""
        into = trans.t()[None]  # into[0, j, i] = trans[i, j], so the reduction runs over the last dimension
        alpha = start + x[:, 0]
        alphas = [alpha]
        for t in range(1, x.shape[1]):
            alpha = torch.logsumexp(alpha[:, None, :] + into, dim=2) + x[:, t]
            alphas.append(alpha)
        last = (m.sum(1) - 1).clamp_min(0)
        final = torch.stack(alphas, 1)[torch.arange(x.shape[0], device=x.device), last]
        return torch.logsumexp(final + end, dim=1)

    @staticmethod
    def _path_score(x: Tensor, y: Tensor, m: Tensor, trans: Tensor, start: Tensor, end: Tensor) -> Tensor:
        """``score(x, y) (B,)`` of left-aligned chains ``y (B, L)`` with mask ``m``."""
        rows = torch.arange(x.shape[0], device=x.device)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        emit = torch.where(m, x.gather(2, y[:, :, None]).squeeze(2), zero).sum(1)
        moves = torch.where(m[:, 1:], trans[y[:, :-1], y[:, 1:]], zero).sum(1)
        last = (m.sum(1) - 1).clamp_min(0)
        return start[rows, y[:, 0]] + emit + moves + end[rows, y[rows, last]]

    def _check_emissions(self, emissions: Tensor) -> None:
        if emissions.ndim != 3 or emissions.shape[2] != self.num_tags:
            raise ValueError(f"emissions must have shape (B, T, C={self.num_tags}); got {tuple(emissions.shape)}")

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> list[list[int]]:
        """Best tag path of every row's chain (the positions where ``mask`` is True, in order), by
        :func:`seqtag.modeling.decoding.viterbi` with :meth:`scores`; computed in float32.

        For a whole sentence, ``emissions`` are its word-level scores (see the module docstring on windows).
        """
        self._check_emissions(emissions)
        with torch.autocast(device_type=emissions.device.type, enabled=False):
            x, _, m = compact(emissions, mask)
            return viterbi(x, m, *self.scores())


# ------------------------------------------------------------------------------------------------ the file


def save_transitions(path: str | Path, crf: CRF, labels: Sequence[str]) -> Path:
    """Write ``crf``'s effective ``transitions``, ``start`` and ``end`` (``-inf`` where forbidden, float32) and the
    ``labels`` they index (JSON, in the metadata) to the safetensors file ``path``; return ``path``.

    The file is written next to its final name and renamed into place, so a reader never sees half a file.
    """
    labels = [str(lab) for lab in labels]
    if len(labels) != crf.num_tags:
        raise ValueError(f"the CRF has {crf.num_tags} tags but {len(labels)} labels were given: {labels}")
    path = Path(path)
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in zip(("transitions", "start", "end"), crf.scores())}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "labels": json.dumps(labels)})
    os.replace(tmp, path)
    return path


def load_transitions(path: str | Path, labels: Sequence[str] | None = None) -> tuple[list[str], Tensor, Tensor, Tensor]:
    """Read a file written by :func:`save_transitions`: ``(labels, transitions (C, C), start (C,), end (C,))``.

    With ``labels`` given, the file must index exactly those labels in that order (the model's ``id2label``).
    Raises :class:`SeqtagError` for a missing file and :class:`DataError`, naming the file and what is wrong,
    for one that is not such a file.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqtagError(f"{path} does not exist; a run trained with the CRF head keeps its transitions in "
                          f"{TRANSITIONS_FILE} next to model.safetensors")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable safetensors file ({e}); rewrite it with save_transitions") from None
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: metadata format is {meta.get('format')!r}, expected {FORMAT!r}; this is not a "
                        f"seqtag CRF transitions file")
    try:
        saved = json.loads(meta.get("labels", ""))
    except json.JSONDecodeError:
        saved = None
    if not isinstance(saved, list) or not saved or not all(isinstance(s, str) for s in saved):
        raise DataError(f"{path}: metadata 'labels' must be a JSON list of label strings; got {meta.get('labels')!r}")
    missing = [k for k in ("transitions", "start", "end") if k not in tensors]
    if missing:
        raise DataError(f"{path}: missing tensors {missing}; found {sorted(tensors)}")
    c = len(saved)
    shapes = {"transitions": (c, c), "start": (c,), "end": (c,)}
    for k, shape in shapes.items():
        t = tensors[k]
        if tuple(t.shape) != shape or not t.dtype.is_floating_point:
            raise DataError(f"{path}: tensor {k!r} is {tuple(t.shape)} {t.dtype}, expected float {shape} for the "
                            f"{c} labels in its metadata")
        if torch.isnan(t).any() or torch.isposinf(t).any():
            raise DataError(f"{path}: tensor {k!r} holds NaN or +inf; only finite values and -inf (forbidden) are valid")
    if labels is not None and list(labels) != saved:
        raise DataError(f"{path} indexes the labels {saved}, but the model has {list(labels)}; the transitions "
                        f"belong to another model or label order")
    return saved, tensors["transitions"], tensors["start"], tensors["end"]


def viterbi_from_file(path: str | Path, emissions: Tensor) -> list[str]:
    """The best tag sequence of one sentence: Viterbi over its word-level emission scores ``(n_words, C)`` (the
    logits at each word's first subword) with the transitions file ``path``. Plain PyTorch and safetensors, no
    seqtag: the code a model card shows (it equals :meth:`CRF.decode` on the loaded scores).

    >>> import tempfile
    >>> crf = CRF(2, (torch.tensor([True, True]), torch.tensor([[True, False], [True, True]]), torch.tensor([True, True])))
    >>> path = save_transitions(Path(tempfile.mkdtemp()) / TRANSITIONS_FILE, crf, ["O", "I-X"])
    >>> viterbi_from_file(path, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))  # O -> I-X is forbidden: I-X throughout
    ['I-X', 'I-X']
    """
    with safe_open(str(path), framework="pt") as f:
        labels = json.loads(f.metadata()["labels"])
        trans, start, end = (f.get_tensor(k) for k in ("transitions", "start", "end"))
    x = emissions.float()
    if len(x) == 0:
        return []
    score, back = start + x[0], []
    for row in x[1:]:
        score, prev = (score[:, None] + trans).max(0)  # best previous tag for every tag
        score, back = score + row, back + [prev]
    path = [int((score + end).argmax())]
    for prev in reversed(back):
        path.append(int(prev[path[-1]]))
    return [labels[i] for i in reversed(path)]
