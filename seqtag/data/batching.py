"""Batches: length grouping (less padding), dynamic padding, and the loader settings a device wants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from seqtag.constants import IGNORE_INDEX

# Padding value per list column (others: 0); scalar columns are stacked. The span head's word_positions and
# gold_spans (seqtag.data.span_windows) are shorter than input_ids: each list column is padded to its own longest.
PAD_VALUES = {"input_ids": None, "labels": IGNORE_INDEX, "word_index": -1, "context_mask": 0, "token_type_ids": 0,
              "word_positions": -1, "gold_spans": -1}


class LengthGroupedBatches:
    """A batch sampler: lists of indices whose examples have similar lengths.

    Training (``shuffle=True``): a seeded permutation is cut into mega-batches of ``50 * batch_size``, each
    sorted by length and cut into batches, and the batches are shuffled, so the order is random but the
    padding small. Either way the batch holding the longest example then trades places with the first one: the
    epoch's largest activations are allocated on a fresh heap, where they are reused by every later batch,
    instead of on one fragmented by hundreds of steps (one bf16 epoch of CoNLL-2003: peak 2,752 -> 2,528 MiB,
    docs/benchmarks.md finding 9), and a batch that does not fit in memory fails at step 1, not hours in.
    Evaluation (``shuffle=False``): indices sorted by length, longest first. Call
    :meth:`use_epoch` before each epoch for a new, reproducible order. (Not named ``set_epoch`` on purpose:
    accelerate calls ``set_epoch`` with its own iteration counter, which restarts at 0 in a resumed run.)

    >>> s = LengthGroupedBatches([5, 1, 4, 2, 3], batch_size=2, shuffle=False)
    >>> list(s)
    [[0, 2], [4, 3], [1]]
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, shuffle: bool, seed: int = 0,
                 group: bool = True, mega: int = 50):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.group = group
        self.mega = mega
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def _batches(self) -> list[list[int]]:
        n, bs = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = sorted(range(n), key=lambda i: -self.lengths[i]) if self.group else list(range(n))
            return [order[i:i + bs] for i in range(0, n, bs)]
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        perm = torch.randperm(n, generator=g).tolist()
        if not self.group:
            return self._longest_first([perm[i:i + bs] for i in range(0, n, bs)])
        batches = []
        step = bs * self.mega
        for m in range(0, n, step):
            chunk = sorted(perm[m:m + step], key=lambda i: -self.lengths[i])
            batches.extend(chunk[i:i + bs] for i in range(0, len(chunk), bs))
        # keep the last (short) batch last, so distributed sharding sees full batches first
        full = [b for b in batches if len(b) == bs]
        short = [b for b in batches if len(b) != bs]
        order = torch.randperm(len(full), generator=g).tolist()
        return self._longest_first([full[i] for i in order] + short)

    def _longest_first(self, batches: list[list[int]]) -> list[list[int]]:
        """Swap the full batch with the longest example into first place (a short last batch stays last)."""
        full = [b for b in range(len(batches)) if len(batches[b]) == len(batches[0])]
        big = max(full, key=lambda b: max(self.lengths[i] for i in batches[b]), default=0)
        batches[0], batches[big] = batches[big], batches[0]
        return batches

    def __iter__(self):
        return iter(self._batches())


@dataclass(frozen=True)
class LoaderSettings:
    """How the training data loader feeds one kind of device (:func:`loader_settings`)."""

    pad_to_multiple_of: int | None  # the batch width is rounded up to a multiple of this (None: the longest example)
    pin_memory: bool  # collated batches go to page-locked host memory, so the copy to the GPU can run asynchronously


def loader_settings(device_type: str) -> LoaderSettings:
    """The loader settings for a model on ``device_type`` (``torch.device.type``: ``"cuda"``, ``"cpu"``).

    A GPU gets batch widths that are multiples of 8, the shapes its Tensor Cores take in fp16/bf16 matrix
    products (NVIDIA's guidance for matrix dimensions), and pinned host memory. A CPU gets neither: a wider
    batch is only more work there, and pinning needs a GPU.

    >>> loader_settings("cuda"), loader_settings("cpu")
    (LoaderSettings(pad_to_multiple_of=8, pin_memory=True), LoaderSettings(pad_to_multiple_of=None, pin_memory=False))
    """
    on_gpu = device_type == "cuda"
    return LoaderSettings(pad_to_multiple_of=8 if on_gpu else None, pin_memory=on_gpu)


def padded_width(longest: int, pad_to_multiple_of: int | None = None, max_length: int | None = None) -> int:
    """The width of a batch whose longest example has ``longest`` tokens: ``longest`` rounded up to a multiple of
    ``pad_to_multiple_of``, but never past ``max_length`` (the model's positions end there) unless ``longest``
    itself is longer.

    >>> padded_width(13), padded_width(13, 8), padded_width(13, 8, max_length=14), padded_width(16, 8)
    (13, 16, 14, 16)
    """
    if not pad_to_multiple_of:
        return longest
    width = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    return max(longest, min(width, max_length)) if max_length is not None else width


def collate(features: Sequence[Mapping], pad_token_id: int, pad_to_multiple_of: int | None = None,
            max_length: int | None = None) -> dict[str, torch.Tensor]:
    """Pad list columns to the longest example of the batch (rounded up as :func:`padded_width` says); add
    ``attention_mask``.

    Returns ``input_ids`` (B, T), ``attention_mask`` (B, T), the per-subword list columns (one value per input id)
    padded with their :data:`PAD_VALUES` to T, other list columns (the span head's word-level ones) to the longest
    row of the column, and scalar columns (B,).
    """
    longest = padded_width(max(len(f["input_ids"]) for f in features), pad_to_multiple_of, max_length)
    out: dict[str, torch.Tensor] = {}
    for key in features[0]:
        first = features[0][key]
        if isinstance(first, (list, tuple)) or (isinstance(first, torch.Tensor) and first.ndim == 1):
            pad = pad_token_id if key == "input_ids" else PAD_VALUES.get(key, 0)
            per_subword = all(len(f[key]) == len(f["input_ids"]) for f in features)
            width = longest if per_subword else max(len(f[key]) for f in features)  # per-subword columns: as input_ids
            rows = [list(f[key]) + [pad] * (width - len(f[key])) for f in features]
            out[key] = torch.tensor(rows, dtype=torch.long)
        else:
            out[key] = torch.tensor([f[key] for f in features])
    out["attention_mask"] = torch.tensor(
        [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in features], dtype=torch.long
    )
    return out
