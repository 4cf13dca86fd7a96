"""seqtag.data.words: raw text to words with exact offsets, the same words whatever the tokenizer family."""

import pytest
from hypothesis import given, settings

from seqtag.data.words import ZWJ, is_cjk, is_punctuation, joins_previous, split_words, words_from_cuts
from tests.families import FAMILIES, hard_text


@pytest.fixture(scope="module")
def tokenizer(family_tokenizer):
    return family_tokenizer


def _joined(text: str, i: int) -> bool:
    """Whether position ``i`` may not be cut: inside a character sequence (combining mark, emoji modifier, ZWJ)."""
    return joins_previous(text[i]) or text[i - 1] == ZWJ


def check_words(text: str, words: list[str], offsets: list[tuple[int, int]]) -> None:
    """The contract of split_words: substrings at their offsets, in order, no white space, everything covered,
    punctuation and ideographs alone, character sequences whole."""
    assert len(words) == len(offsets)
    covered = set()
    for w, (a, b) in zip(words, offsets):
        assert text[a:b] == w and w, (w, a, b)
        assert not any(c.isspace() for c in w)
        covered.update(range(a, b))
        for i in range(a + 1, b):  # every position inside a word is one where no rule cuts
            assert _joined(text, i) or not any(is_punctuation(c) or is_cjk(c) for c in text[i - 1:i + 1]), (w, i)
    assert all(b <= c for (_, b), (c, _) in zip(offsets, offsets[1:]))
    assert covered == {i for i, c in enumerate(text) if not c.isspace()}
    for a, _ in offsets:
        assert a == 0 or text[a - 1].isspace() or not _joined(text, a)


def test_rules_without_a_tokenizer():
    text = "U.S. troops don't stay  in 北京。Café\u0301 👩\u200d💻!"
    words, offsets = split_words(text)
    assert words == ["U.S", ".", "troops", "don't", "stay", "in", "北京", "。", "Café\u0301", "👩\u200d💻", "!"]
    assert all(text[a:b] == w for w, (a, b) in zip(words, offsets))
    assert words_from_cuts("a\u200d\u200db", {1, 2}) == [(0, 4)]  # never after a joiner


FAMILY_WORDS = ["Héllo", "🙂", "Barack", "Obama", "visited", "Paris", ".", "北", "京", "大", "学", "x", "y",
                "👩\u200d💻", "naïve", "Cafe\u0301", "!"]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_gives_the_same_words(tokenizer, family):
    text = "Héllo 🙂 Barack Obama visited Paris. 北京大学\xa0x\ty 👩\u200d💻 naïve Cafe\u0301!"
    words, offsets = split_words(text, tokenizer(family))
    assert words == FAMILY_WORDS
    check_words(text, words, offsets)


@pytest.mark.parametrize("family", ["roberta", "modernbert"])
def test_byte_level_families_also_cut_letters_from_digits(tokenizer, family):
    # GPT-2's pre-tokenizer splits letters from digits; seqtag keeps the tokenizer's cuts, so these words differ
    # from BERT's (documented in docs/encoders.md)
    assert split_words("COVID19 it's", tokenizer(family))[0] == ["COVID", "19", "it", "'", "s"]
    assert split_words("COVID19 it's", tokenizer("bert-cased"))[0] == ["COVID19", "it", "'", "s"]


@pytest.mark.parametrize("family", ["bert-cased", "bert-uncased", "electra", "distilbert"])
def test_bert_words_are_the_tokenizers_words(tokenizer, family):
    """For WordPiece families seqtag's words are exactly the tokenizer's (what a pipeline groups subwords into)."""
    tok = tokenizer(family)
    text = "Ümit's e-mail: anna@x.org, 東京タワーへ 3.5 km…"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: dict[int, list[int]] = {}
    for w, (a, b) in zip(enc.word_ids(), enc["offset_mapping"]):
        spans.setdefault(w, [a, b])[1] = b
    assert split_words(text, tok)[1] == [tuple(s) for s in spans.values()]


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=40, deadline=None)
@given(text=hard_text)
def test_offsets_are_exact_on_hard_text(tokenizer, family, text):
    check_words(text, *split_words(text, tokenizer(family)))


def test_chinese_and_japanese_text_without_spaces(tokenizer):
    text = "玛丽访问了北京。東京タワーへ行った"
    for family in ("bert-cased", "xlm-roberta"):  # BERT's normalizer splits ideographs; seqtag does for all
        words, offsets = split_words(text, tokenizer(family))
        assert words[:8] == list("玛丽访问了北京。") and words[8:10] == ["東", "京"]
        check_words(text, words, offsets)
    assert split_words(text, tokenizer("bert-cased"))[0][10:] == ["タワーへ", "行", "った"]  # kana runs stay words
