import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.constants import IGNORE_INDEX
from seqtag.data.align import encode_sentences, merge_windows, plan_windows, special_tokens, window_owners
from tests.families import FAMILIES, hard_text


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "un", "##believ",
             "##able", "##s", "new", "york", "."]
    path = tmp_path_factory.mktemp("tok") / "vocab.txt"
    path.write_text("\n".join(words) + "\n")
    return BertTokenizerFast(vocab=str(path), do_lower_case=True)


def test_special_tokens(tok):
    assert special_tokens(tok) == ([tok.cls_token_id], [tok.sep_token_id])


def test_first_subword_alignment(tok):
    enc = encode_sentences(tok, [["the", "unbelievables", "cat"]], [[0, 1, 2]], max_length=32, stride=4)
    ids = tok.convert_ids_to_tokens(enc["input_ids"][0])
    assert ids == ["[CLS]", "the", "un", "##believ", "##able", "##s", "cat", "[SEP]"]
    assert enc["labels"][0] == [IGNORE_INDEX, 0, 1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 2, IGNORE_INDEX]
    assert enc["word_index"][0] == [-1, 0, 1, -1, -1, -1, 2, -1]


def test_label_all_tokens_turns_b_into_i(tok):
    # labels: 0=O 1=B-X 2=I-X ; continuation of B-X is I-X
    enc = encode_sentences(tok, [["unbelievables"]], [[1]], max_length=32, stride=4, continuation_ids=[0, 2, 2])
    assert enc["labels"][0] == [IGNORE_INDEX, 1, 2, 2, 2, IGNORE_INDEX]
    assert enc["word_index"][0] == [-1, 0, -1, -1, -1, -1]  # evaluation still reads first subwords only


def test_unknown_and_empty_words_still_get_a_position(tok):
    enc = encode_sentences(tok, [["cat", "\u200b", "zzz"]], [[0, 1, 2]], max_length=32, stride=4)
    assert enc["word_index"][0] == [-1, 0, 1, 2, -1]
    assert enc["input_ids"][0][2] == tok.unk_token_id


def test_long_sentence_is_windowed_and_merged_back(tok):
    words = ["the", "cat", "sat", "on", "the", "mat", "."] * 30  # 210 words
    labels = [[i % 3 for i in range(len(words))]]
    enc = encode_sentences(tok, [words], labels, max_length=16, stride=4)
    assert len(enc["input_ids"]) > 1 and all(len(x) <= 16 for x in enc["input_ids"])
    assert set(enc["num_windows"]) == {len(enc["input_ids"])}
    # every word labelled exactly once, with its own label
    seen = {}
    for wi, lab in zip(enc["word_index"], enc["labels"]):
        for i, label in zip(wi, lab):
            if i >= 0:
                assert i not in seen
                seen[i] = label
    assert seen == {i: i % 3 for i in range(len(words))}
    merged = merge_windows(enc["word_index"], enc["sentence_index"], enc["labels"], [len(words)])
    assert merged == labels


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=60), st.integers(6, 20), st.integers(0, 5))
def test_window_plan_covers_everything(counts, max_pieces, stride):
    stride = min(stride, max_pieces // 2)
    windows = plan_windows(counts, max_pieces, stride)
    assert windows[0][0] == 0 and windows[-1][1] == len(counts)
    for (a, b), (c, _) in zip(windows, windows[1:]):
        assert a < c <= b, "windows advance and leave no gap"
        assert sum(counts[c:b]) <= stride
    for a, b in windows:
        assert sum(counts[a:b]) <= max_pieces or b - a == 1
    owners = window_owners(counts, windows)
    for i, w in enumerate(owners):
        assert windows[w][0] <= i < windows[w][1]


def test_merge_detects_double_prediction():
    with pytest.raises(AssertionError, match="two windows"):
        merge_windows([[0, 0]], [0], [[1, 2]], [1])
    with pytest.raises(AssertionError, match="no prediction"):
        merge_windows([[0, -1]], [0], [[1, 2]], [2])


# ------------------------------------------------------------------------- every tokenizer family (tests/families.py)

@pytest.fixture(scope="module")
def family_tok(family_tokenizer):
    return family_tokenizer


def _word_start(family: str, token: str) -> bool:
    """Whether ``token`` is one a word can start with in ``family``'s tokenizer."""
    if family in ("roberta", "modernbert"):
        return token.startswith("Ġ")  # byte-level BPE: the prefix space seqtag asks for
    if family in ("xlm-roberta", "deberta-v3"):
        return token.startswith("▁")  # Metaspace: prepended to every word
    return not token.startswith("##")


def _labelled(enc) -> dict[int, int]:
    """word index -> label at the one position that labels it; fails if a word is labelled twice."""
    seen: dict[int, int] = {}
    for wi, lab in zip(enc["word_index"], enc["labels"]):
        for i, label in zip(wi, lab):
            if i >= 0:
                assert i not in seen, f"word {i} labelled twice"
                seen[i] = label
    return seen


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_labels_each_word_once_at_a_word_start(family_tok, family):
    tok = family_tok(family)
    words = ["Barack", "Obama", "visited", "Paris", ".", "Héllo", "🙂", "北", "naïve", "x"]
    enc = encode_sentences(tok, [words], [list(range(len(words)))], max_length=64, stride=8)
    assert _labelled(enc) == {i: i for i in range(len(words))}
    prefix, suffix = special_tokens(tok)
    ids = enc["input_ids"][0]
    assert ids[: len(prefix)] == prefix == [tok.cls_token_id] and ids[len(ids) - len(suffix):] == suffix
    tokens = tok.convert_ids_to_tokens(ids)
    first = {}  # word -> its first token
    for t, w in enumerate(tok(words, is_split_into_words=True).word_ids()):
        if w is not None:
            first.setdefault(w, t)
    assert all(_word_start(family, tokens[first[w]]) for w in range(len(words)))  # the options seqtag sets
    labelled = {i: t for t, i in enumerate(enc["word_index"][0]) if i >= 0}
    for w in range(len(words)):
        bare = tokens[first[w]] in ("Ġ", "▁")  # a lone word-start marker: the label goes to the next token
        assert labelled[w] == first[w] + bare and tokens[labelled[w]] not in ("Ġ", "▁")
    if family in ("xlm-roberta", "deberta-v3"):
        assert tokens[first[7]] == "▁" and tokens[labelled[7]] == "北"


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=25, deadline=None)
@given(text=hard_text, max_length=st.integers(6, 24), stride=st.integers(0, 4))
def test_every_family_windows_merge_back_on_hard_text(family_tok, family, text, max_length, stride):
    from seqtag.data.words import split_words

    tok = family_tok(family)
    words = split_words(text * 3, tok)[0] or ["x"]
    labels = [[i % 7 for i in range(len(words))]]
    enc = encode_sentences(tok, [words], labels, max_length=max_length, stride=stride)
    assert all(len(x) <= max_length for x in enc["input_ids"])
    assert _labelled(enc) == dict(enumerate(labels[0]))
    assert merge_windows(enc["word_index"], enc["sentence_index"], enc["labels"], [len(words)]) == labels
