"""The span head (``model.head: span``): a score for every word span and entity type, so entities may nest.

Token tags (BIO, a CRF) give each word one label, so they cannot say that "IL-2 gene" is a DNA holding the
protein "IL-2". A span head scores every candidate ``(i, j, type)`` instead, ``i <= j`` words of one window, and
predicts each candidate whose score is above 0 (:mod:`seqtag.inference.span_decoding`).

**Efficient GlobalPointer** (Su Jianlin, https://kexue.fm/archives/8877; GlobalPointer: /archives/8373). From
the vector ``h_i`` of each word's first subword, one shared projection gives a start vector ``q_i`` and an end
vector ``k_i`` (``D = 64`` each), rotated by their word position (rotary position embedding, RoPE, so
``q_i . k_j`` depends on the two words and on ``j - i`` only), and a per-type linear map of the same projection
gives each word a start and an end bias per type::

    s_c(i, j) = q_i . k_j / sqrt(D) + (b_c^end . z_j + b_c^start . z_i) / 2,   z = W h + w

Plain GlobalPointer has a separate ``(q, k)`` projection per type: ``C x 2D x H`` weights and ``C`` dot-product
grids. The efficient form shares the span-extent part (where an entity starts and ends) across types and leaves
only the type decision per type, with ``2D x H + 2D x 2C`` weights (50,570 for MiniLM with 5 types instead of
246,400) and one dot-product grid; Su reports equal or better F1 on his Chinese NER sets. That is the design here.

Scores are computed for spans of at most ``max_span_length`` words only, as a band ``(B, C, W, L)``:
``scores[b, c, i, l]`` is the span from word ``i`` to word ``i + l`` (inclusive), type ``c``; ``mask[b, i, l]`` is
False where the span runs past the window's words (padding): those scores are ``-inf``. The head runs in
float32 whatever the autocast (bf16/fp16 encoders included), vectorised over the batch and the band.

:class:`SpanTagger` holds the encoder (a plain ``AutoModel``; its pooler, which a span head does not use, is frozen so
that every trainable parameter gets a gradient under DDP) and the head as one ``nn.Module``, inside what accelerate prepares and checkpoints.
On disk the run directory is the encoder's plain ``from_pretrained`` directory, and
:meth:`SpanTagger.save_pretrained` writes :data:`SPAN_HEAD_FILE` beside it (the head's weights, its entity types and
sizes in the safetensors metadata); :func:`load_span_tagger` reads both back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SPAN_HEAD_FILE = "span_head.safetensors"
HEAD_SIZE = 64
"""``D``: the size of the start and end vectors (Su's setting)."""
FORMAT = "seqtag-efficient-global-pointer-1"


def rotary(x: Tensor) -> Tensor:
    """Rotary position embedding over axis 1 (positions ``0..W-1``): pairs ``(x_2t, x_2t+1)`` of position ``p`` are
    rotated by the angle ``p * 10000^(-2t/D)``, so ``rotary(q)_i . rotary(k)_j`` depends on ``j - i``, not on ``i``.

    ``x``: ``(B, W, D)``, ``D`` even.

    >>> q, k = torch.randn(1, 1, 4), torch.randn(1, 1, 4)
    >>> a = (rotary(torch.cat([q, torch.zeros(1, 2, 4)], 1))[0, 0] @ rotary(torch.cat([torch.zeros(1, 2, 4), k], 1))[0, 2])
    >>> b = (rotary(torch.cat([torch.zeros(1, 5, 4), q], 1))[0, 5] @ rotary(torch.cat([torch.zeros(1, 7, 4), k], 1))[0, 7])
    >>> bool(torch.isclose(a, b, atol=1e-5))   # the same pair two words apart, at positions 0 and 5
    True
    """
    _, w, d = x.shape
    pos = torch.arange(w, dtype=x.dtype, device=x.device)
    freq = 10000.0 ** (-torch.arange(0, d, 2, dtype=x.dtype, device=x.device) / d)
    angle = pos[:, None] * freq[None, :]  # (W, D/2)
    cos, sin = angle.cos().repeat_interleave(2, -1), angle.sin().repeat_interleave(2, -1)
    turned = torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)  # (x0, x1) -> (-x1, x0)
    return x * cos + turned * sin


def band(x: Tensor, length: int, fill: float = 0.0) -> Tensor:
    """``out[b, i, ..., l] = x[b, i + l, ...]`` for ``l < length`` (``fill`` past the end): ``(B, W, ...)`` ->
    ``(B, W, ..., L)``.

    >>> band(torch.tensor([[1, 2, 3]]), 2, fill=0).tolist()
    [[[1, 2], [2, 3], [3, 0]]]
    """
    pad = [0, 0] * (x.ndim - 2) + [0, length - 1]
    return F.pad(x, pad, value=fill).unfold(1, length, 1)


class EfficientGlobalPointer(nn.Module):
    """Scores ``(B, C, W, L)`` of every span of at most ``max_span_length`` words from word vectors ``(B, W, H)``."""

    def __init__(self, hidden_size: int, num_types: int, max_span_length: int, head_size: int = HEAD_SIZE) -> None:
        super().__init__()
        if head_size % 2:
            raise ValueError(f"head_size must be even (rotary pairs), got {head_size}")
        self.num_types, self.max_span_length, self.head_size = num_types, max_span_length, head_size
        self.proj = nn.Linear(hidden_size, 2 * head_size)  # shared start (q) and end (k) vectors, interleaved
        self.type_bias = nn.Linear(2 * head_size, 2 * num_types)  # per type: end bias, start bias, interleaved

    def forward(self, words: Tensor, word_mask: Tensor) -> tuple[Tensor, Tensor]:
        """``words (B, W, H)``, ``word_mask (B, W)`` (True for the window's words, a prefix of each row) ->
        ``(scores (B, C, W, L) float32, -inf where masked; mask (B, W, L))``."""
        with torch.autocast(words.device.type, enabled=False):
            z = self.proj(words.to(torch.promote_types(self.proj.weight.dtype, torch.float32)))  # (B, W, 2D)
            q, k = rotary(z[..., ::2]), rotary(z[..., 1::2])
            extent = torch.einsum("bwd,bwdl->bwl", q, band(k, self.max_span_length)) / math.sqrt(self.head_size)
            bias = self.type_bias(z) / 2  # (B, W, 2C)
            end = band(bias[..., 0::2], self.max_span_length)  # (B, W, C, L): the end word's bias
            scores = extent[:, None] + bias[..., 1::2].transpose(1, 2)[..., None] + end.permute(0, 2, 1, 3)
            mask = band(word_mask, self.max_span_length, fill=False) & word_mask[:, :, None]
            return scores.masked_fill(~mask[:, None], -torch.inf), mask


class SpanTagger(nn.Module):
    """An encoder (``AutoModel``: hidden states ``(B, T, H)``) and an :class:`EfficientGlobalPointer` over the vectors
    of each word's first subword. ``types`` are the entity types, in the head's type order."""

    def __init__(self, encoder: nn.Module, head: EfficientGlobalPointer, types: Sequence[str]) -> None:
        super().__init__()
        if head.num_types != len(types):
            raise ValueError(f"the span head scores {head.num_types} types but {len(types)} were given")
        if getattr(encoder, "pooler", None) is not None:  # unused: frozen, since under DDP a trainable parameter
            encoder.pooler.requires_grad_(False)         # without a gradient stops the step; saved as loaded
        self.encoder = encoder
        self.head = head
        self.types = list(types)

    @property
    def config(self):
        """The encoder's transformers config."""
        return self.encoder.config

    def forward(self, input_ids: Tensor, attention_mask: Tensor, word_positions: Tensor,
                token_type_ids: Tensor | None = None) -> dict[str, Tensor]:
        """``word_positions (B, W)``: the subword position of each word of the window (its first subword), -1 after
        the last word. Returns ``{"logits": (B, C, W, L) float32, "mask": (B, W, L)}`` (see
        :class:`EfficientGlobalPointer`)."""
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        word_mask = word_positions >= 0
        index = word_positions.clamp_min(0)[..., None].expand(-1, -1, hidden.shape[-1])
        scores, mask = self.head(hidden.gather(1, index), word_mask)
        return {"logits": scores, "mask": mask}

    def save_pretrained(self, directory: str | Path, **kwargs) -> None:
        """The encoder's plain ``save_pretrained`` directory, and :data:`SPAN_HEAD_FILE` beside its weights."""
        self.encoder.save_pretrained(directory, **kwargs)
        save_span_head(Path(directory) / SPAN_HEAD_FILE, self.head, self.types)

    def load_head(self, path: str | Path) -> None:
        """Copy the weights of a span head file into this head in place (types and sizes checked)."""
        head, _ = read_span_head(path, self.types)
        if (head.max_span_length, head.head_size) != (self.head.max_span_length, self.head.head_size):
            raise ValueError(f"{path}: its sizes differ from this head's")
        self.head.load_state_dict(head.state_dict())


def save_span_head(path: str | Path, head: EfficientGlobalPointer, types: Sequence[str]) -> None:
    """Write the head's weights (float32) with its types and sizes as safetensors metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().float().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": FORMAT, "types": json.dumps(list(types)),
                                            "max_span_length": str(head.max_span_length),
                                            "head_size": str(head.head_size)})


def read_span_head(path: str | Path, types: Sequence[str] | None = None) -> tuple[EfficientGlobalPointer, list[str]]:
    """The head saved in ``path`` and its entity types; ``types``, when given, must be exactly the saved ones."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a seqtag span head file (format {meta.get('format')!r})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    saved = json.loads(meta["types"])
    if types is not None and list(types) != saved:
        raise ValueError(f"{path} scores the types {saved}, not {list(types)}")
    hidden = tensors["proj.weight"].shape[1]
    head = EfficientGlobalPointer(hidden, len(saved), int(meta["max_span_length"]), int(meta["head_size"]))
    head.load_state_dict(tensors)
    return head, saved


def new_span_tagger(encoder: nn.Module, types: Sequence[str], max_span_length: int) -> SpanTagger:
    """A span head for training, its layers initialised as ``nn.Linear`` does (from the global RNG, which the
    training loop seeds)."""
    head = EfficientGlobalPointer(encoder.config.hidden_size, len(types), max_span_length)
    return SpanTagger(encoder, head.to(next(encoder.parameters()).device), types)


def load_span_tagger(encoder: nn.Module, run_dir: str | Path) -> SpanTagger:
    """The span head of a finished run: ``encoder`` (loaded from ``run_dir``) and ``run_dir/`` :data:`SPAN_HEAD_FILE`."""
    head, types = read_span_head(Path(run_dir) / SPAN_HEAD_FILE)
    return SpanTagger(encoder, head.to(next(encoder.parameters()).device), types)


def span_of(model: nn.Module) -> SpanTagger | None:
    """The :class:`SpanTagger` inside DDP or ``torch.compile`` wrappers; None for any other model."""
    while not isinstance(model, SpanTagger):
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return None
        model = inner
    return model
