"""Tests for seqtag.modeling.crf: exact likelihood against brute force, masks, bf16, constraints, learning, windows, the file."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from seqtag.data.align import merge_windows, plan_windows, window_owners
from seqtag.data.schemes import find_problems, labels_for
from seqtag.errors import DataError, SeqtagError
from seqtag.modeling.crf import (
    CRF,
    TRANSITIONS_FILE,
    chain_bounds,
    compact,
    load_transitions,
    save_transitions,
    viterbi_from_file,
)
from seqtag.modeling.decoding import pad_rows, transition_constraints, viterbi

IOBES_LABELS = labels_for(["A"], "IOBES")  # O B-A I-A E-A S-A


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread (tests/conftest.py)


def random_crf(c: int, seed: int, constraints=None, dtype=torch.float64) -> CRF:
    crf = CRF(c, constraints).to(dtype)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    return crf


def brute(x: torch.Tensor, gold: list[int], crf: CRF, use_start=True, use_end=True) -> tuple[float, float]:
    """(log Z, score of gold) of one chain ``x (n, C)`` by enumerating all C^n paths, in float64."""
    trans, start, end = (s.double() for s in crf.scores())
    start = start if use_start else torch.zeros_like(start)
    end = end if use_end else torch.zeros_like(end)

    def score(p):
        s = start[p[0]] + end[p[-1]] + sum(x[t, y] for t, y in enumerate(p))
        return s + sum(trans[a, b] for a, b in zip(p, p[1:]))

    all_scores = torch.stack([score(p) for p in itertools.product(range(x.shape[1]), repeat=x.shape[0])])
    return torch.logsumexp(all_scores, 0).item(), score(gold).item()


def batch_with_holes(c: int, seed: int):
    """A float64 batch whose chains are not left-aligned: rows of 4, 3, 1, 0 and 2 labelled positions of T=6."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 6, c, generator=gen, dtype=torch.float64) * 2
    mask = torch.tensor([[0, 1, 1, 0, 1, 1], [1, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1], [0] * 6, [1, 1, 0, 0, 0, 0]],
                        dtype=torch.bool)
    tags = torch.randint(0, c, (5, 6), generator=gen)
    return x, tags, mask


# -------------------------------------------------------------------------------------------- exact likelihood


def test_nll_equals_brute_force_with_holes_in_the_mask():
    c = 3
    crf = random_crf(c, seed=0)
    x, tags, mask = batch_with_holes(c, seed=1)
    nll = crf.nll(x, tags, mask, reduction="none")
    assert nll.dtype == torch.float64
    for row in range(5):
        chain, gold = x[row][mask[row]], tags[row][mask[row]].tolist()
        if not gold:
            assert nll[row].item() == 0.0
            continue
        log_z, gold_score = brute(chain, gold, crf)
        assert nll[row].item() == pytest.approx(log_z - gold_score, abs=1e-10)
        # the forward algorithm itself, on the compacted chain
        cx, _, cm = compact(x[row:row + 1], mask[row:row + 1])
        forward = CRF._log_partition(cx, cm, *(s.clamp_min(-1e30) for s in crf.scores()))
        assert forward.item() == pytest.approx(log_z, abs=1e-10)
    assert crf.nll(x, tags, mask, reduction="sum").item() == pytest.approx(nll.sum().item())
    assert crf.nll(x, tags, mask, reduction="mean").item() == pytest.approx(nll.sum().item() / 10)


def test_probabilities_of_all_paths_sum_to_one_and_labels_minus_100_are_the_mask():
    c = 2
    crf = random_crf(c, seed=5)
    x = torch.randn(1, 5, c, dtype=torch.float64)
    labels = torch.tensor([[-100, 0, 0, -100, 0]])
    total = 0.0
    for p in itertools.product(range(c), repeat=3):
        labels[0, [1, 2, 4]] = torch.tensor(p)
        total += math.exp(-crf.nll(x, labels).item())  # mask None: labels != -100
    assert total == pytest.approx(1.0, abs=1e-12)


def test_nll_with_constraints_and_window_fragments_equals_brute_force():
    start_ok, trans_ok, end_ok = transition_constraints(IOBES_LABELS, "IOBES")
    crf = random_crf(5, seed=2, constraints=(start_ok, trans_ok, end_ok))
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    # row 0: a whole sentence; row 1: a window that starts inside a span (I-A E-A O); row 2: one that ends in one
    tags = torch.tensor([[1, 2, 3, 0], [2, 3, 0, 0], [0, 4, 1, 2]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    starts, ends = torch.tensor([True, False, True]), torch.tensor([True, True, False])
    nll = crf.nll(x, tags, mask, reduction="none", sentence_start=starts, sentence_end=ends)
    for row in range(3):
        n = int(mask[row].sum())
        log_z, gold = brute(x[row, :n], tags[row, :n].tolist(), crf, bool(starts[row]), bool(ends[row]))
        assert nll[row].item() == pytest.approx(log_z - gold, abs=1e-10)
    # read as whole sentences, the fragments are invalid (I-A first, B-A I-A last): probability 0
    whole = crf.nll(x, tags, mask, reduction="none")
    assert whole[0] == nll[0] and (whole[1:] > 1e29).all()


def test_forbidden_paths_have_probability_zero_and_masked_parameters_no_gradient():
    constraints = transition_constraints(IOBES_LABELS, "IOBES")
    crf = random_crf(5, seed=3, constraints=constraints, dtype=torch.float32)
    x = torch.randn(1, 3, 5)
    valid = [p for p in itertools.product(range(5), repeat=3)
             if find_problems([IOBES_LABELS[i] for i in p], "IOBES") == []]
    probs = [math.exp(-crf.nll(x, torch.tensor([p])).item()) for p in valid]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    crf.nll(torch.randn(4, 6, 5, requires_grad=True), torch.tensor([[1, 2, 3, 0, 4, 0]] * 4)).backward()
    start_ok, trans_ok, end_ok = constraints
    for p, ok in ((crf.transitions, trans_ok), (crf.start, start_ok), (crf.end, end_ok)):
        assert torch.isfinite(p.grad).all()
        assert (p.grad[~ok] == 0).all() and (p.grad[ok] != 0).any()


def test_gradcheck_float64():
    constraints = transition_constraints(labels_for(["A"], "IOB2"), "IOB2")
    crf = random_crf(3, seed=4, constraints=constraints)
    x, tags, mask = batch_with_holes(3, seed=6)
    tags = torch.full_like(tags, -100)
    for row in range(5):  # B-A I-A O B-A: a path IOB2 allows, cut to every chain's length
        tags[row][mask[row]] = torch.tensor([1, 2, 0, 1])[: int(mask[row].sum())]

    class Loss(nn.Module):
        def __init__(self):
            super().__init__()
            self.crf = crf

        def forward(self, x):
            return self.crf.nll(x, tags, mask, reduction="none")

    loss = Loss()

    def f(x, trans, start, end):
        params = {"crf.transitions": trans, "crf.start": start, "crf.end": end}
        return torch.func.functional_call(loss, params, (x,))

    inputs = tuple(t.detach().clone().requires_grad_(True) for t in (x, crf.transitions, crf.start, crf.end))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6)


# -------------------------------------------------------------------------------------- precision and padding


def test_bf16_autocast_computes_in_float32():
    crf = random_crf(9, seed=7, dtype=torch.float32)
    x, tags, mask = batch_with_holes(9, seed=8)
    x = x.float()
    reference = crf.nll(x, tags, mask, reduction="none")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = crf.nll(x, tags, mask, reduction="none")
        from_bf16 = crf.nll(x.bfloat16(), tags, mask, reduction="none")
    assert under_autocast.dtype == torch.float32 and torch.equal(under_autocast, reference)
    assert from_bf16.dtype == torch.float32
    assert torch.equal(from_bf16, crf.nll(x.bfloat16().float(), tags, mask, reduction="none"))


def test_masked_positions_change_nothing():
    crf = random_crf(4, seed=9, dtype=torch.float32)
    x, tags, mask = batch_with_holes(4, seed=10)
    x = x.float().requires_grad_(True)
    base = crf.nll(x, tags, mask, reduction="none")
    (grad,) = torch.autograd.grad(base.sum(), x)
    garbage = torch.tensor([math.nan, math.inf, -math.inf, 1e30])[torch.randint(0, 4, (5, 9, 4))]
    x2 = torch.cat([x.detach(), torch.zeros(5, 3, 4)], 1)
    x2[torch.cat([~mask, torch.ones(5, 3, dtype=torch.bool)], 1)] = garbage[torch.cat(
        [~mask, torch.ones(5, 3, dtype=torch.bool)], 1)]
    x2.requires_grad_(True)
    tags2 = torch.cat([tags, torch.full((5, 3), -100)], 1)
    tags2[~torch.cat([mask, torch.zeros(5, 3, dtype=torch.bool)], 1)] = -100
    mask2 = torch.cat([mask, torch.zeros(5, 3, dtype=torch.bool)], 1)
    padded = crf.nll(x2, tags2, mask2, reduction="none")
    assert torch.equal(padded, base)
    (grad2,) = torch.autograd.grad(padded.sum(), x2)
    assert torch.equal(grad2[:, :6][mask], grad[mask]) and (grad2[~mask2] == 0).all()
    assert torch.equal(crf.nll(x2, tags2, reduction="none"), base)  # the mask read from -100 labels


def test_huge_emissions_give_finite_loss_and_gradients():
    crf = CRF(5, transition_constraints(IOBES_LABELS, "IOBES"))
    x = (torch.randint(0, 2, (4, 7, 5)) * 2e4 - 1e4).float().requires_grad_(True)
    tags = torch.tensor([[1, 2, 2, 3, 0, 4, 0]] * 4)
    loss = crf.nll(x, tags, reduction="mean")
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in crf.parameters())


def test_empty_batches_and_bad_input():
    crf = CRF(3)
    x = torch.zeros(2, 4, 3, requires_grad=True)
    loss = crf.nll(x, torch.full((2, 4), -100), reduction="mean")
    loss.backward()
    assert loss.item() == 0.0 and crf.transitions.grad is not None  # every parameter stays in the graph
    with pytest.raises(ValueError, match=r"tags must be in \[0, 3\) where mask is True; got \[7\]"):
        crf.nll(x, torch.tensor([[0, 7, -100, -100], [1, -100, -100, -100]]))
    with pytest.raises(ValueError, match=r"emissions must have shape \(B, T, C=3\)"):
        crf.nll(torch.zeros(2, 4, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction='avg' is invalid"):
        crf.nll(x, torch.zeros(2, 4, dtype=torch.long), reduction="avg")


# ---------------------------------------------------------------------------------------------------- decoding


def test_decode_is_viterbi_over_the_chain_and_respects_constraints():
    constraints = transition_constraints(IOBES_LABELS, "IOBES")
    crf = random_crf(5, seed=11, constraints=constraints, dtype=torch.float32)
    x, _, mask = batch_with_holes(5, seed=12)
    x = x.float() * 3
    paths = crf.decode(x, mask)
    assert [len(p) for p in paths] == mask.sum(1).tolist()
    for row, path in enumerate(paths):
        chain = x[row][mask[row]]
        if len(path):  # the most probable path, by enumeration (one nll per path, in one batch)
            every = torch.tensor(list(itertools.product(range(5), repeat=len(path))))
            nll = crf.nll(chain.expand(len(every), -1, -1), every, reduction="none")
            assert path == every[nll.argmin()].tolist()
        assert find_problems([IOBES_LABELS[i] for i in path], "IOBES") == []


# ------------------------------------------------------------------------------------------------------ learning


def make_task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens a (0), x (1), o (2); tags O (0), B-A (1), I-A (2): a is B-A, o is O, and x continues a span (I-A)
    right after a tag of the span, else it is O. The tag of x depends on the previous tag only."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.multinomial(torch.tensor([0.2, 0.6, 0.2]), n * 10, replacement=True, generator=gen).reshape(n, 10)
    tags = torch.zeros_like(tokens)
    for i in range(n):
        prev = 0
        for t, tok in enumerate(tokens[i].tolist()):
            prev = tags[i, t] = 1 if tok == 0 else 0 if tok == 2 else (2 if prev in (1, 2) else 0)
    return tokens, tags


def test_a_crf_learns_what_per_token_scores_cannot():
    train_tokens, train_tags = make_task(200, seed=0)
    test_tokens, test_tags = make_task(200, seed=1)
    # best accuracy any per-token rule can reach on the test set: every token's majority tag
    counts = torch.zeros(3, 3)
    counts.index_put_((test_tokens.flatten(), test_tags.flatten()), torch.ones(test_tags.numel()), accumulate=True)
    per_token_bound = counts.max(1).values.sum().item() / test_tags.numel()
    assert per_token_bound < 0.8

    def train(with_crf: bool):
        torch.manual_seed(0)
        emit = nn.Embedding(3, 3)
        crf = CRF(3)
        params = list(emit.parameters()) + (list(crf.parameters()) if with_crf else [])
        for _ in range(80):  # plain gradient descent; the CRF reaches 1.0 from about 40 steps on
            scores = emit(train_tokens)
            if with_crf:
                loss = crf.nll(scores, train_tags, reduction="mean")
            else:
                loss = nn.functional.cross_entropy(scores.flatten(0, 1), train_tags.flatten())
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p -= 2.0 * g
        with torch.no_grad():
            scores = emit(test_tokens)
            pred = (torch.tensor(crf.decode(scores, torch.ones_like(test_tags, dtype=torch.bool))) if with_crf
                    else scores.argmax(-1))
        return (pred == test_tags).float().mean().item()

    linear = train(with_crf=False)
    assert linear <= per_token_bound + 1e-9 and linear > per_token_bound - 0.05
    assert train(with_crf=True) == 1.0


# ------------------------------------------------------------------------------------------------------- windows


def test_windows_train_as_fragments_and_predict_as_one_sentence():
    """A 10-word sentence in windows of 4 words: the chains of training and the merged word scores of prediction."""
    labels = labels_for(["A"], "IOB2")
    crf = random_crf(3, seed=13, constraints=transition_constraints(labels, "IOB2"), dtype=torch.float32)
    n = 10
    words = torch.randn(n, 3)  # the sentence's word-level emission scores
    gold = [0, 1, 2, 2, 2, 0, 1, 2, 0, 0]
    windows = plan_windows([1] * n, max_pieces=4, stride=2)
    owners = window_owners([1] * n, windows)
    assert len(windows) == 4
    # every window row: [CLS] its words [SEP]; a word another window owns gets word_index -1 and label -100,
    # and its emission row differs from the owner's (other context), so it must not be used
    rows, word_index, label_rows = [], [], []
    for w, (a, b) in enumerate(windows):
        own = [owners[i] == w for i in range(a, b)]
        rows.append(torch.cat([torch.zeros(1, 3), torch.where(torch.tensor(own)[:, None], words[a:b], 99.0),
                               torch.zeros(1, 3)]))
        word_index.append([-1] + [i if o else -1 for i, o in zip(range(a, b), own)] + [-1])
        label_rows.append([-100] + [gold[i] if o else -100 for i, o in zip(range(a, b), own)] + [-100])
    x, mask = pad_rows(rows, num_tags=3)
    wi = torch.full(mask.shape, -1)
    labels_t = torch.full(mask.shape, -100)
    for r, (w, lab) in enumerate(zip(word_index, label_rows)):
        wi[r, : len(w)], labels_t[r, : len(lab)] = torch.tensor(w), torch.tensor(lab)

    # training: the second window's chain starts with I-A (word 3), valid only as a fragment
    starts, ends = chain_bounds(wi, torch.full((4,), n))
    assert starts.tolist() == [True, False, False, False] and ends.tolist() == [False, False, False, True]
    fragments = crf.nll(x, labels_t, reduction="none", sentence_start=starts, sentence_end=ends)
    assert torch.isfinite(fragments).all() and fragments.max() < 100
    assert crf.nll(x, labels_t, reduction="none")[1] > 1e29  # the same chain read as a whole sentence

    # prediction: merge each word's emission row from its owner, then Viterbi over the whole sentence
    merged = merge_windows(wi.tolist(), [0] * 4, [r for r in x], [n])
    sentence, sentence_mask = pad_rows([torch.stack(merged[0])], num_tags=3)
    assert torch.equal(sentence[0], words)
    path = crf.decode(sentence, sentence_mask)
    assert path == viterbi(words[None], torch.ones(1, n, dtype=torch.bool), *crf.scores())
    assert find_problems([labels[i] for i in path[0]], "IOB2") == []


# ---------------------------------------------------------------------------------------------------------- file


def test_save_and_load_transitions_round_trip(tmp_path):
    labels = labels_for(["A", "B"], "BILOU")
    crf = random_crf(len(labels), seed=14, constraints=transition_constraints(labels, "BILOU"), dtype=torch.float32)
    path = save_transitions(tmp_path / TRANSITIONS_FILE, crf, labels)
    assert path.name == "crf_transitions.safetensors" and not list(tmp_path.glob("*.tmp"))
    got_labels, trans, start, end = load_transitions(path, labels)
    assert got_labels == labels
    for saved, expected in zip((trans, start, end), crf.scores()):
        assert torch.equal(saved, expected.detach())
    assert torch.isneginf(trans).sum() == (~crf.trans_ok).sum() > 0
    again = CRF.from_transitions(trans, start, end)
    x = torch.randn(2, 5, len(labels))
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert again.decode(x, mask) == crf.decode(x, mask)
    tags = torch.tensor([[0, 1, 2, 3, 0], [4, 0, 5, 7, 0]])  # valid BILOU paths
    assert torch.equal(again.nll(x, tags), crf.nll(x, tags))


def test_viterbi_from_file_in_plain_pytorch_equals_the_crfs_decode(tmp_path):
    """The code a model card shows decodes exactly as seqtag does, forbidden moves included."""
    labels = labels_for(["A", "B"], "IOBES")
    crf = random_crf(len(labels), seed=15, constraints=transition_constraints(labels, "IOBES"), dtype=torch.float32)
    path = save_transitions(tmp_path / TRANSITIONS_FILE, crf, labels)
    gen = torch.Generator().manual_seed(16)
    differs = 0
    for n in (1, 2, 3, 8, 20) * 4:
        x = 4 * torch.randn(n, len(labels), generator=gen)
        expected = [labels[i] for i in crf.decode(x[None], torch.ones(1, n, dtype=torch.bool))[0]]
        assert viterbi_from_file(path, x) == expected
        assert not find_problems(expected, "IOBES")
        differs += expected != [labels[i] for i in x.argmax(-1).tolist()]
    assert differs >= 10  # the transitions matter in these cases: argmax would give another sequence
    assert viterbi_from_file(path, torch.zeros(0, len(labels))) == []


def test_load_transitions_errors_name_the_file_and_the_problem(tmp_path):
    labels = ["O", "B-A", "I-A"]
    path = save_transitions(tmp_path / TRANSITIONS_FILE, CRF(3), labels)
    with pytest.raises(DataError, match=r"indexes the labels \['O', 'B-A', 'I-A'\], but the model has \['O', 'B-A'\]"):
        load_transitions(path, ["O", "B-A"])
    with pytest.raises(SeqtagError, match="missing.safetensors does not exist"):
        load_transitions(tmp_path / "missing.safetensors")
    meta = {"format": "seqtag-crf-transitions/1", "labels": json.dumps(labels)}
    bad = tmp_path / "bad.safetensors"
    save_file({"transitions": torch.zeros(2, 2), "start": torch.zeros(3), "end": torch.zeros(3)}, str(bad), meta)
    with pytest.raises(DataError, match=r"bad.safetensors: tensor 'transitions' is \(2, 2\).*expected float \(3, 3\)"):
        load_transitions(bad)
    save_file({"transitions": torch.zeros(3, 3), "start": torch.zeros(3)}, str(bad), meta)
    with pytest.raises(DataError, match=r"missing tensors \['end'\]"):
        load_transitions(bad)
    save_file({"transitions": torch.zeros(3, 3), "start": torch.zeros(3), "end": torch.zeros(3)}, str(bad),
              {"format": "seqtag-crf-transitions/1"})
    with pytest.raises(DataError, match="metadata 'labels' must be a JSON list"):
        load_transitions(bad)
    save_file({"transitions": torch.full((3, 3), math.nan), "start": torch.zeros(3), "end": torch.zeros(3)},
              str(bad), meta)
    with pytest.raises(DataError, match="'transitions' holds NaN"):
        load_transitions(bad)
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(DataError, match="bad.safetensors is not a readable safetensors file"):
        load_transitions(bad)
    with pytest.raises(ValueError, match="the CRF has 3 tags but 2 labels"):
        save_transitions(path, CRF(3), ["O", "B-A"])
