"""Tests for seqtag.modeling.decoding: scheme constraints, Viterbi against brute force, constrained decoding."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.data.schemes import SCHEMES, find_problems, labels_for
from seqtag.errors import DataError
from seqtag.modeling.decoding import (
    constrained_decode,
    mask_lengths,
    pad_rows,
    transition_constraints,
    viterbi,
)

NEG_INF = -math.inf


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (tests/conftest.py)


def accepted(path: list[int], constraints) -> bool:
    start_ok, trans_ok, end_ok = constraints
    if not path:
        return True
    return (bool(start_ok[path[0]]) and bool(end_ok[path[-1]])
            and all(bool(trans_ok[a, b]) for a, b in zip(path, path[1:])))


def path_score(x, path, trans, start, end) -> float:
    if not path:
        return 0.0
    s = start[path[0]] + end[path[-1]] + sum(x[t, y] for t, y in enumerate(path))
    return float(s + sum(trans[a, b] for a, b in zip(path, path[1:])))


def brute_best(x, n, trans, start, end) -> tuple[list[int], float]:
    """Best path over all C^n paths, and its score."""
    c = x.shape[1]
    best = max(itertools.product(range(c), repeat=n), key=lambda p: path_score(x, list(p), trans, start, end))
    return list(best), path_score(x, list(best), trans, start, end)


# ------------------------------------------------------------------------------------------------ constraints


def test_constraints_iobes_and_bilou_start_end_and_moves():
    for scheme, last, single in (("IOBES", "E", "S"), ("BILOU", "L", "U")):
        labels = ["O", "B-A", "I-A", f"{last}-A", f"{single}-A"]
        start_ok, trans_ok, end_ok = transition_constraints(labels, scheme)
        assert start_ok.tolist() == [True, True, False, False, True]
        assert end_ok.tolist() == [True, False, False, True, True]
        assert trans_ok.int().tolist() == [  # rows: previous tag O, B, I, E/L, S/U
            [1, 1, 0, 0, 1],
            [0, 0, 1, 1, 0],
            [0, 0, 1, 1, 0],
            [1, 1, 0, 0, 1],
            [1, 1, 0, 0, 1],
        ]


def test_constraints_iob1_and_iob2_two_types():
    labels = ["O", "B-A", "I-A", "B-B", "I-B"]
    start_ok, trans_ok, end_ok = transition_constraints(labels, "IOB2")
    assert start_ok.tolist() == [True, True, False, True, False] and end_ok.all()
    assert trans_ok[:, 2].tolist() == [False, True, True, False, False]  # I-A only after B-A / I-A
    start_ok, trans_ok, end_ok = transition_constraints(labels, "IOB1")
    assert start_ok.tolist() == [True, False, True, False, True] and end_ok.all()
    assert trans_ok[:, 1].tolist() == [False, True, True, False, False]  # B-A only right after an A span
    assert int((~trans_ok).sum()) == 2 * 3  # each B-X is forbidden after O and the two tags of the other type


def test_constraints_refuse_labels_of_another_scheme():
    with pytest.raises(DataError, match=r"label 1 'S-A' uses prefix 'S', which IOB2 does not have"):
        transition_constraints(["O", "S-A"], "IOB2")
    with pytest.raises(DataError, match="label 1 of the label set"):
        transition_constraints(["O", "B_A"], "IOB2")


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_constraints_accept_exactly_what_find_problems_accepts(scheme, data):
    types = data.draw(st.lists(st.sampled_from(["A", "B-c", "D"]), min_size=1, max_size=3, unique=True))
    labels = labels_for(types, scheme)
    path = data.draw(st.lists(st.integers(0, len(labels) - 1), max_size=8))
    valid = find_problems([labels[i] for i in path], scheme) == []
    assert accepted(path, transition_constraints(labels, scheme)) == valid


# ---------------------------------------------------------------------------------------------------- viterbi


@pytest.mark.parametrize("forbid", [False, True])
def test_viterbi_equals_brute_force(forbid):
    gen = torch.Generator().manual_seed(3 + forbid)
    b, t, c = 6, 5, 3
    x = torch.randn(b, t, c, generator=gen, dtype=torch.float64) * 2
    trans, start, end = (torch.randn(*s, generator=gen, dtype=torch.float64) for s in ((c, c), (c,), (c,)))
    if forbid:
        trans[0, 1] = trans[2, 2] = trans[1, 0] = NEG_INF
        start[1] = end[2] = NEG_INF
    lengths = [5, 4, 1, 0, 3, 2]
    mask = torch.arange(t) < torch.tensor(lengths)[:, None]
    x[~mask] = 1e6  # padding must not matter
    paths = viterbi(x, mask, trans, start, end)
    for row, n in enumerate(lengths):
        expected, best = brute_best(x[row], n, trans, start, end)
        assert paths[row] == expected
        assert path_score(x[row], paths[row], trans, start, end) == pytest.approx(best)
        if forbid and n:
            assert math.isfinite(best)


def test_viterbi_without_transitions_is_argmax():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 11, 9, generator=gen)
    lengths = torch.tensor([11, 10, 7, 1, 0, 5, 11, 2])
    mask = torch.arange(11) < lengths[:, None]
    zeros = torch.zeros(9)
    paths = viterbi(x, mask, torch.zeros(9, 9), zeros, zeros)
    assert paths == [row[:n] for row, n in zip(x.argmax(-1).tolist(), lengths.tolist())]


def test_viterbi_handles_inf_and_huge_scores_without_nan():
    x = torch.tensor([[[1e4, -1e4, NEG_INF], [-1e4, NEG_INF, 1e4 + 2], [0.0, 1.0, 0.0]]])
    trans = torch.tensor([[0.0, 0.0, NEG_INF], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # 0 -> 2 forbidden
    path = viterbi(x, torch.ones(1, 3, dtype=torch.bool), trans, torch.zeros(3), torch.zeros(3))
    assert path == [[1, 2, 1]]  # 0 0 1 scores 1; 0 2 is forbidden; 1 2 1 scores -1e4 + 1e4 + 2 + 1
    assert path_score(x[0], path[0], trans, torch.zeros(3), torch.zeros(3)) == 3.0


def test_viterbi_refuses_bad_masks_and_impossible_rows():
    x = torch.zeros(1, 3, 2)
    zeros = torch.zeros(2)
    with pytest.raises(ValueError, match="left-aligned"):
        viterbi(x, torch.tensor([[True, False, True]]), torch.zeros(2, 2), zeros, zeros)
    with pytest.raises(ValueError, match=r"rows \[0\]: every tag path scores -inf"):
        viterbi(x, torch.ones(1, 3, dtype=torch.bool), torch.full((2, 2), NEG_INF), zeros, zeros)
    with pytest.raises(ValueError, match=r"transitions must have shape \(2, 2\)"):
        viterbi(x, torch.ones(1, 3, dtype=torch.bool), torch.zeros(3, 3), zeros, zeros)
    assert viterbi(torch.zeros(2, 0, 2), torch.zeros(2, 0, dtype=torch.bool), torch.zeros(2, 2), zeros, zeros) == [[], []]
    assert mask_lengths(torch.tensor([[True, True], [False, False]])).tolist() == [2, 0]


# ------------------------------------------------------------------------------------------ constrained decoding


@functools.cache
def valid_paths(labels: tuple[str, ...], scheme: str, n: int) -> torch.Tensor:
    """All paths of length n that find_problems accepts, ``(P, n)``."""
    paths = [p for p in itertools.product(range(len(labels)), repeat=n)
             if find_problems([labels[i] for i in p], scheme) == []]
    return torch.tensor(paths, dtype=torch.long).reshape(len(paths), n)


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_constrained_decode_is_valid_and_optimal(scheme, data):
    types = data.draw(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True))
    labels = labels_for(types, scheme)
    c = len(labels)
    lengths = data.draw(st.lists(st.integers(0, 7), min_size=1, max_size=4))
    seed = data.draw(st.integers(0, 2**31 - 1))
    scale = data.draw(st.sampled_from([0.5, 3.0, 30.0]))
    gen = torch.Generator().manual_seed(seed)
    t = max(lengths)
    log_probs = (scale * torch.randn(len(lengths), t, c, generator=gen, dtype=torch.float64)).log_softmax(-1)
    mask = torch.arange(t) < torch.tensor(lengths)[:, None]
    paths = constrained_decode(log_probs, mask, labels, scheme)
    argmax = log_probs.argmax(-1).tolist()
    for row, (path, n) in enumerate(zip(paths, lengths)):
        assert len(path) == n
        assert find_problems([labels[i] for i in path], scheme) == []
        if find_problems([labels[i] for i in argmax[row][:n]], scheme) == []:
            assert path == argmax[row][:n]  # a valid argmax is the answer
        if 0 < n and c ** n <= 729:  # the most probable valid sequence, by enumeration
            cands = valid_paths(tuple(labels), scheme, n)
            best = log_probs[row, torch.arange(n), cands].sum(1).max().item()
            got = log_probs[row, torch.arange(n), torch.tensor(path)].sum().item()
            assert got == pytest.approx(best, abs=1e-9)


def test_constrained_decode_fixes_what_argmax_gets_wrong():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    p = torch.tensor([[0.1, 0.3, 0.5, 0.05, 0.05],   # argmax I-PER at the start: invalid in IOBES
                      [0.6, 0.1, 0.1, 0.1, 0.1]]).log()[None]
    assert p.argmax(-1).tolist() == [[2, 0]]
    # valid candidates: B E (0.3*0.1), S O (0.05*0.6 = 0.03), O O (0.06): O O wins
    assert constrained_decode(p, torch.ones(1, 2, dtype=torch.bool), labels, "IOBES") == [[0, 0]]
    logits = p + torch.tensor([[[3.0], [-7.0]]])  # a constant per position: same answer
    assert constrained_decode(logits, torch.ones(1, 2, dtype=torch.bool), labels, "IOBES") == [[0, 0]]


def test_pad_rows_pads_left_aligned():
    scores, mask = pad_rows([torch.ones(3, 2), torch.empty(0, 2), [[1.0, 2.0]]], num_tags=2)
    assert scores.shape == (3, 3, 2) and mask.sum(1).tolist() == [3, 0, 1]
    assert scores[2].tolist() == [[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]
    assert pad_rows([], num_tags=4)[0].shape == (0, 0, 4)
    with pytest.raises(ValueError, match=r"row 0 has shape \(2, 3\); expected \(n, 2\)"):
        pad_rows([torch.ones(2, 3)], num_tags=2)
