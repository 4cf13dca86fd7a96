"""seqtag.inference.engine: batches bounded by a token budget; windows' logits gathered once each; decoding word scores."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.data.schemes import SCHEMES, find_problems, labels_for
from seqtag.inference.engine import argmax_decode, count_invalid, decode_words, softmax, token_budget_batches
from seqtag.modeling.crf import CRF
from seqtag.modeling.decoding import transition_constraints


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 300), max_size=60), batch_size=st.integers(1, 70),
       max_tokens=st.integers(1, 2000))
def test_batches_cover_every_window_once_within_both_budgets(lengths, batch_size, max_tokens):
    batches = token_budget_batches(lengths, batch_size, max_tokens)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)  # longest first: each batch pads to its first window
    for b in batches:
        assert len(b) <= batch_size
        assert len(b) == 1 or lengths[b[0]] * len(b) <= max_tokens  # one window longer than the budget goes alone
        # greedy: the next window would not have fitted (else the batch would have taken it)
    for b, nxt in zip(batches, batches[1:]):
        assert len(b) == batch_size or lengths[b[0]] * (len(b) + 1) > max_tokens or not nxt


# ------------------------------------------------------------------------------------------------ decoding



def random_sentences(c: int, lengths, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(3 * rng.standard_normal((n, c))).astype(np.float32) for n in lengths]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_viterbi_never_outputs_an_invalid_sequence_where_argmax_does(scheme):
    labels = labels_for(["LOC", "PER"], scheme)
    scores = random_sentences(len(labels), [0, 1, 2, 5, 9, 17, 30] * 6, seed=1)
    argmax, argmax_p = decode_words(scores, labels, scheme, "argmax")
    assert (argmax, argmax_p) == argmax_decode([softmax(x) for x in scores], labels)
    assert count_invalid(argmax, scheme) >= 20  # random scores: most argmax sequences of 5+ words are invalid
    tags, probs = decode_words(scores, labels, scheme, "viterbi")
    assert count_invalid(tags, scheme) == 0 and all(not find_problems(t, scheme) for t in tags)
    assert [len(t) for t in tags] == [len(x) for x in scores]
    for x, t, p in zip(scores, tags, probs):  # each score is the softmax probability of the chosen tag
        assert p == pytest.approx([float(softmax(x)[k, labels.index(tag)]) for k, tag in enumerate(t)])
    # the most probable valid sequence: no valid sequence scores higher, and a valid argmax is kept as it is
    for x, t, a in zip(scores, tags, argmax):
        lp = np.log(softmax(x).astype(np.float64))
        assert sum(lp[k, labels.index(tag)] for k, tag in enumerate(t)) >= -1e-9 + (
            sum(lp[k, labels.index(tag)] for k, tag in enumerate(a)) if not find_problems(a, scheme) else -np.inf)


def test_viterbi_with_crf_transitions_is_the_crfs_decode_and_batching_changes_nothing():
    labels = labels_for(["LOC", "PER"], "IOBES")
    crf = CRF(len(labels), transition_constraints(labels, "IOBES"))
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    scores = random_sentences(len(labels), [4, 0, 12, 1, 7, 25, 3], seed=2)
    transitions = tuple(t.detach() for t in crf.scores())
    tags, _ = decode_words(scores, labels, "IOBES", "viterbi", transitions)
    for x, t in zip(scores, tags):
        expected = crf.decode(torch.from_numpy(x)[None], torch.ones(1, len(x), dtype=torch.bool))[0]
        assert t == [labels[i] for i in expected]
    assert decode_words(scores, labels, "IOBES", "viterbi", transitions, max_words=8)[0] == tags  # many batches
    # the learned transitions decide: without them (constrained softmax decoding) some sentence differs
    assert decode_words(scores, labels, "IOBES", "viterbi")[0] != tags
    with pytest.raises(ValueError, match="decoding='beam' is invalid; accepted: argmax, viterbi"):
        decode_words(scores, labels, "IOBES", "beam")
