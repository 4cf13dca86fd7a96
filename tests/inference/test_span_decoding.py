"""Tests for seqtag.inference.span_decoding: windows merged per sentence (a sentence longer than one window),
the decision threshold, nested and flat decoding, and predicted entities with exact character offsets.

The model here is a stand-in whose score of a span is a known function of its words and of where it sits in its
window, so every expected value is computed, not learned."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqtag.data.span_windows import encode_span_sentences
from seqtag.data.words import split_words
from seqtag.inference.span_decoding import (
    SpanPredictor,
    decode_spans,
    predict_span_stream,
    sentence_span_scores,
    window_span_scores,
)
from seqtag.modeling.span_head import band
from tests.tiny import make_tiny_model_dir

pytestmark = pytest.mark.usefixtures("one_thread")
TYPES = ["DNA", "protein"]


class KnownScores(torch.nn.Module):
    """Scores ``(B, 2, W, L)``: for the span of window words ``i..i+l``, ``id(first word) + id(last word) / 100``
    plus ``1000 * min(i, W - 1 - (i + l))`` (its distance to the window's edges), minus ``type`` 0.5; ``-inf``
    past the words. Entities are set by :attr:`positive`: ``(first id, last id, type)`` scored +5 instead."""

    def __init__(self, length: int, positive=()):
        super().__init__()
        self.length, self.positive = length, set(positive)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask, word_positions, token_type_ids=None):
        mask_w = word_positions >= 0
        ids = input_ids.gather(1, word_positions.clamp_min(0)).double()  # (B, W)
        first, last = ids[:, :, None], band(ids, self.length, fill=0.0)
        w = mask_w.sum(1)[:, None, None]
        i = torch.arange(ids.shape[1])[None, :, None]
        ctx = torch.minimum(i, w - 1 - (i + torch.arange(self.length)[None, None, :]))
        base = first + last / 100 + 1000 * ctx
        scores = torch.stack([base, base - 0.5], 1)
        for a, b, t in self.positive:
            scores[:, t][(first == a).expand_as(last) & (last == b)] = 5.0
        mask = band(mask_w, self.length, fill=False) & mask_w[:, :, None]
        return {"logits": scores.float().masked_fill(~mask[:, None], -math.inf), "mask": mask}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from seqtag.config import ModelConfig
    from seqtag.modeling.loading import load_tokenizer

    words = ["il", "-", "2", "gene", "in", "t", "cells", "binds", "the", "protein", "dna", "a", "b", "c", "d"]
    return load_tokenizer(ModelConfig(str(make_tiny_model_dir(tmp_path_factory.mktemp("m"), words=words))))


def test_a_sentence_longer_than_a_window_takes_each_span_from_its_most_central_window(tokenizer):
    words = "a b c d the protein binds dna in t cells a b c d the gene".split()
    length = 3
    enc, _ = encode_span_sentences(tokenizer, [words, words[:4]], None, TYPES, max_length=8, stride=1,
                                   max_span_length=length)
    windows = [(o, o + len(p)) for o, p, s in zip(enc["word_offset"], enc["word_positions"], enc["sentence_index"])
               if s == 0]
    assert len(windows) > 3  # the long sentence needed several windows
    scores = window_span_scores(KnownScores(length), enc, tokenizer.pad_token_id, batch_size=2)
    merged = sentence_span_scores(scores, enc["sentence_index"], enc["word_offset"], [len(words), 4])
    ids = tokenizer.convert_tokens_to_ids(words)
    for i in range(len(words)):
        for n in range(length):
            j = i + n
            if j >= len(words):
                assert merged[0][:, i, n].tolist() == [-math.inf, -math.inf]
                continue
            holding = [(a, b) for a, b in windows if a <= i and j < b]
            assert holding, "every span of up to max_span_length words is inside a window"
            best = max(min(i - a, b - 1 - j) for a, b in holding)  # its distance to the nearer edge, at best
            expected = ids[i] + ids[j] / 100 + 1000 * best
            assert merged[0][0, i, n] == pytest.approx(expected) and merged[0][1, i, n] == pytest.approx(expected - 0.5)
    assert merged[1].shape == (2, 4, length)


def test_threshold_nested_and_flat():
    scores = np.full((2, 4, 3), -1.0, dtype=np.float32)
    scores[0, 0, 2] = 3.0  # DNA words 0-2
    scores[1, 0, 0] = 2.0  # protein word 0, inside it
    scores[1, 1, 1] = 4.0  # protein words 1-2, inside it, the best
    scores[0, 3, 0] = 0.0  # exactly at the threshold: not predicted
    scores[1, 3, 0] = 1e-3
    nested = decode_spans(scores, TYPES)
    assert [f[:3] for f in nested] == [(0, 1, "protein"), (0, 3, "DNA"), (1, 3, "protein"), (3, 4, "protein")]
    assert nested[1][3] == pytest.approx(1 / (1 + math.exp(-3.0)))  # sigmoid(score)
    flat = decode_spans(scores, TYPES, "flat")
    assert [f[:3] for f in flat] == [(0, 1, "protein"), (1, 3, "protein"), (3, 4, "protein")]
    with pytest.raises(ValueError, match="nested, flat"):
        decode_spans(scores, TYPES, "viterbi")


def test_predicted_entities_nest_and_keep_exact_character_offsets(tokenizer):
    text = "  IL-2 gene binds   the protein"
    words, offsets = split_words(text, tokenizer)
    assert words == ["IL", "-", "2", "gene", "binds", "the", "protein"]
    il, two, gene = tokenizer.convert_tokens_to_ids(["il", "2", "gene"])
    model = KnownScores(4, positive=[(il, gene, 0), (il, two, 1)])
    # the stand-in's scores are large and positive elsewhere: take only the entities it was told
    predictor = SpanPredictor(model, tokenizer, TYPES, max_length=32, stride=4, max_span_length=4)
    found = predictor.predict([words])[0]
    assert {f[:3] for f in found} >= {(0, 4, "DNA"), (0, 3, "protein")}
    record = {"text": text, "words": words, "offsets": offsets}
    (out,) = predict_span_stream(predictor, [record])
    by_span = {(e["start_token"], e["end_token"], e["type"]): e for e in out["entities"]}
    dna, protein = by_span[0, 4, "DNA"], by_span[0, 3, "protein"]
    assert (dna["start"], dna["end"], dna["text"]) == (2, 11, "IL-2 gene") == (2, 11, text[2:11])
    assert (protein["start"], protein["end"], protein["text"]) == (2, 6, "IL-2")
    assert dna["score"] == round(1 / (1 + math.exp(-5.0)), 4)
    assert out["words"] == words and "tags" not in out


def test_a_token_run_refuses_the_span_decodings(tmp_path):
    from seqtag.errors import SeqtagError
    from seqtag.inference.engine import decode_words
    from seqtag.inference.predict import load_tagger
    from tests.fake_run import make_run

    x = [np.log(np.array([[0.1, 0.9]], dtype=np.float32))]
    with pytest.raises(ValueError, match="accepted: argmax, viterbi"):
        decode_words(x, ["O", "B-PER"], "IOB2", "nested")
    with pytest.raises(SeqtagError, match="--decoding nested is for span-head runs"):
        load_tagger(make_run(tmp_path, junk=False), decoding="nested")
