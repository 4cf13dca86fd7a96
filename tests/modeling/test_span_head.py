"""Tests for seqtag.modeling.span_head: the Efficient GlobalPointer scores against a loop over every span in
float64, masks, rotary relative positions, float32 under autocast, batching, and the head file."""

from __future__ import annotations

import math

import pytest
import torch

from seqtag.modeling.span_head import (
    SPAN_HEAD_FILE,
    EfficientGlobalPointer,
    SpanTagger,
    load_span_tagger,
    new_span_tagger,
    read_span_head,
    rotary,
    save_span_head,
    span_of,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def make_head(seed: int = 0, hidden: int = 12, types: int = 3, length: int = 4, size: int = 8) -> EfficientGlobalPointer:
    torch.manual_seed(seed)
    return EfficientGlobalPointer(hidden, types, length, head_size=size).double()


def reference_scores(head: EfficientGlobalPointer, words: torch.Tensor, n_words: int) -> dict[tuple, float]:
    """Su's formula span by span, in float64: s_c(i, j) = q_i.k_j / sqrt(D) + (end_c(z_j) + start_c(z_i)) / 2,
    with q, k rotated by their word position. Keys (c, i, j) for i <= j < n_words, j - i < max_span_length."""
    d = head.head_size
    out = {}
    for i in range(n_words):
        for j in range(i, min(n_words, i + head.max_span_length)):
            zi, zj = head.proj(words[i]), head.proj(words[j])
            qi, kj = zi[::2].clone(), zj[1::2].clone()
            for pos, v in ((i, qi), (j, kj)):  # rotate pair t by pos * 10000^(-2t/d)
                for t in range(d // 2):
                    a = pos * 10000.0 ** (-2 * t / d)
                    x0, x1 = v[2 * t].item(), v[2 * t + 1].item()
                    v[2 * t], v[2 * t + 1] = x0 * math.cos(a) - x1 * math.sin(a), x1 * math.cos(a) + x0 * math.sin(a)
            bi, bj = head.type_bias(zi), head.type_bias(zj)
            for c in range(head.num_types):
                out[c, i, j] = (qi @ kj).item() / math.sqrt(d) + (bj[2 * c].item() + bi[2 * c + 1].item()) / 2
    return out


def test_scores_match_span_by_span_reference_and_masks():
    head = make_head()
    words = torch.randn(2, 6, 12, dtype=torch.float64)
    word_mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    with torch.no_grad():
        scores, mask = head(words, word_mask)
    assert scores.shape == (2, 3, 6, 4) and mask.shape == (2, 6, 4)
    for b, n in ((0, 6), (1, 3)):
        with torch.no_grad():
            ref = reference_scores(head, words[b], n)
        valid = {(i, j) for _, i, j in ref}
        for i in range(6):
            for length in range(4):
                j = i + length
                assert bool(mask[b, i, length]) == ((i, j) in valid)
                for c in range(3):
                    if (i, j) in valid:
                        assert scores[b, c, i, length].item() == pytest.approx(ref[c, i, j], rel=1e-9, abs=1e-9)
                    else:
                        assert scores[b, c, i, length].item() == -math.inf
    assert int(mask[0].sum()) == 6 + 5 + 4 + 3  # spans of 1-4 words in 6 words
    assert int(mask[1].sum()) == 3 + 2 + 1


def test_batching_and_padding_do_not_change_scores():
    head = make_head(1)
    words = torch.randn(1, 4, 12, dtype=torch.float64)
    alone, _ = head(words, torch.ones(1, 4, dtype=torch.bool))
    padded = torch.cat([words, torch.randn(1, 3, 12, dtype=torch.float64)], 1)
    batch = torch.cat([padded, torch.randn(1, 7, 12, dtype=torch.float64)])
    mask = torch.tensor([[True] * 4 + [False] * 3, [True] * 7])
    together, _ = head(batch, mask)
    torch.testing.assert_close(together[0, :, :4][torch.isfinite(alone[0])], alone[0][torch.isfinite(alone[0])])


def test_span_scores_depend_on_relative_positions_only():
    head = make_head(2)
    words = torch.randn(1, 3, 12, dtype=torch.float64)
    front = torch.randn(1, 5, 12, dtype=torch.float64)
    a, _ = head(words, torch.ones(1, 3, dtype=torch.bool))
    b, _ = head(torch.cat([front, words], 1), torch.ones(1, 8, dtype=torch.bool))
    torch.testing.assert_close(b[0, :, 5:8, :3][torch.isfinite(a[0, :, :, :3])], a[0, :, :, :3][torch.isfinite(a[0, :, :, :3])])
    x = torch.randn(1, 9, 8, dtype=torch.float64)
    y = torch.randn(1, 9, 8, dtype=torch.float64)
    rx, ry = rotary(x), rotary(y)
    assert (rx[0, 1] @ ry[0, 4]).item() != pytest.approx((x[0, 1] @ y[0, 4]).item())  # positions do count...
    moved_x = rotary(torch.cat([x[:, 1:2], torch.zeros(1, 3, 8, dtype=torch.float64)], 1))  # x_1 at position 0
    moved_y = rotary(torch.cat([torch.zeros(1, 3, 8, dtype=torch.float64), y[:, 4:5]], 1))  # y_4 at position 3
    torch.testing.assert_close(moved_x[0, 0] @ moved_y[0, 3], rx[0, 1] @ ry[0, 4])  # ...through j - i only


def test_scores_are_float32_under_bf16_autocast_with_grad():
    head = make_head(3).float()
    words = torch.randn(2, 5, 12, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores, _ = head(words.bfloat16(), torch.ones(2, 5, dtype=torch.bool))
    assert scores.dtype == torch.float32
    scores[torch.isfinite(scores)].sum().backward()
    assert words.grad is not None and torch.isfinite(words.grad).all()


def _tiny_encoder(tmp_path):
    from transformers import AutoModel

    from tests.tiny import make_tiny_model_dir

    return AutoModel.from_pretrained(make_tiny_model_dir(tmp_path / "model"))


def test_tagger_reads_first_subwords_and_round_trips_through_its_file(tmp_path):
    torch.manual_seed(0)
    model = new_span_tagger(_tiny_encoder(tmp_path), ["DNA", "protein"], max_span_length=3).eval()
    assert not any(p.requires_grad for p in model.encoder.pooler.parameters())  # unused: frozen for DDP
    ids = torch.tensor([[2, 7, 8, 9, 3, 0]])
    out = model(ids, torch.tensor([[1, 1, 1, 1, 1, 0]]), torch.tensor([[1, 3, -1]]))
    assert out["logits"].shape == (1, 2, 3, 3)
    hidden = model.encoder(input_ids=ids, attention_mask=torch.tensor([[1, 1, 1, 1, 1, 0]])).last_hidden_state
    direct, _ = model.head(hidden[:, [1, 3, 0]], torch.tensor([[True, True, False]]))
    torch.testing.assert_close(out["logits"], direct)  # the words' vectors are their positions' hidden states
    model.save_pretrained(tmp_path / "run")
    assert (tmp_path / "run" / SPAN_HEAD_FILE).is_file() and (tmp_path / "run" / "model.safetensors").is_file()
    from transformers import AutoModel

    loaded = load_span_tagger(AutoModel.from_pretrained(tmp_path / "run"), tmp_path / "run").eval()
    assert loaded.types == ["DNA", "protein"] and loaded.head.max_span_length == 3
    again = loaded(ids, torch.tensor([[1, 1, 1, 1, 1, 0]]), torch.tensor([[1, 3, -1]]))
    torch.testing.assert_close(again["logits"], out["logits"])
    other = new_span_tagger(_tiny_encoder(tmp_path / "x"), ["DNA", "protein"], 3)
    other.load_head(tmp_path / "run" / SPAN_HEAD_FILE)
    torch.testing.assert_close(other.head.proj.weight, model.head.proj.weight)


def test_head_file_checks_types_and_format(tmp_path):
    head = make_head().float()
    save_span_head(tmp_path / "h.safetensors", head, ["a", "b", "c"])
    assert read_span_head(tmp_path / "h.safetensors")[1] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="scores the types"):
        read_span_head(tmp_path / "h.safetensors", ["a", "c", "b"])
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a seqtag span head file"):
        read_span_head(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="scores 3 types but 2"):
        SpanTagger(torch.nn.Linear(1, 1), head, ["a", "b"])


def test_span_of_unwraps():
    head = make_head()
    tagger = SpanTagger(torch.nn.Linear(1, 1), head, ["a", "b", "c"])

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert span_of(Wrapper(tagger)) is tagger and span_of(torch.nn.Linear(1, 1)) is None
