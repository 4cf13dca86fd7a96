"""Raw text to words with exact character offsets, the same way for every tokenizer family.

A word is a substring of the original text: ``text[start:end] == word`` for every word, words never contain
white space (Python's ``str.isspace``, the characters CoNLL columns are split on), and every other character
of the text belongs to exactly one word. Where the words are cut is decided in three steps:

1. **The tokenizer's own words.** The text is encoded once by the fast tokenizer (normalizer and
   pre-tokenizer included) and each of its words gives a cut at its first and last character, mapped back to
   the original text by the tokenizer's offsets. This is what a ``transformers`` pipeline sees: BERT's
   normalizer puts every CJK ideograph in a word of its own, byte-level BPE cuts letters from digits.
2. **The same rules for every family.** White space always separates words, and every punctuation character
   (BERT's rule: ASCII punctuation and Unicode ``P*``) and every CJK ideograph is a word of its own. BERT-style
   tokenizers already cut there; byte-level BPE (RoBERTa, ModernBERT) and SentencePiece's Metaspace (XLM-R,
   DeBERTa-v3) would glue punctuation to a word (``▁Paris.``), which a model trained on CoNLL tokens never saw.
3. **Characters are never split.** No cut falls before a combining mark, a variation selector, an emoji
   modifier or a zero-width joiner, nor after a zero-width joiner, so ``e`` + U+0301 and 👩‍💻 stay whole.

The tokenizer's strings (``Ġ``-prefixed bytes, ``▁`` pieces, lower-cased or accent-stripped text) are never
returned: only offsets are read from it, and words are sliced from the text they came from.

**Which characters are text** (:func:`check_text`, applied by every reader of training, evaluation and prediction
input). TAB, LF, VT, FF and CR, and Unicode's space, line and paragraph separators (no-break space, U+2028...),
are white space: they separate words. Every other control character, C0 (U+0000-U+001F, NUL included, and the
separators U+001C-U+001F that ``str.split`` would split on), DEL and C1 (U+007F-U+009F, NEL included), and a lone
surrogate (a JSON ``\\ud800`` escape) is an error naming ``file:line`` and the character: it is no
part of any word, and a model would otherwise be trained on it and return it in predictions. Format characters
(Unicode ``Cf``: zero-width space U+200B, the joiners U+200C/U+200D, left-to-right mark U+200E, a byte-order mark
U+FEFF inside a file, soft hyphen U+00AD) are kept: they belong to words in several scripts and in emoji, and a
word made of them alone is tagged at the unknown token (:func:`seqtag.data.align.word_pieces`).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from seqtag.errors import DataError

ZWJ = "\u200d"
_NOT_TEXT = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_WORD = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]", re.UNICODE)  # without a tokenizer: keeps U.S and don't whole


def is_punctuation(ch: str) -> bool:
    """BERT's punctuation: any non-alphanumeric ASCII symbol, or a Unicode ``P*`` character.

    >>> [is_punctuation(c) for c in ".$¿a·"]
    [True, True, True, False, True]
    """
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(ch: str) -> bool:
    """A CJK ideograph, as BERT's normalizer defines them (kana and hangul are not: they form words).

    >>> [is_cjk(c) for c in "北京とソ서a"]
    [True, True, False, False, False, False]
    """
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


def joins_previous(ch: str) -> bool:
    """A character that belongs to the one before it: combining marks (accents, variation selectors, enclosing
    keycaps), emoji skin-tone modifiers and the zero-width joiner."""
    return ch == ZWJ or unicodedata.category(ch) in ("Mn", "Mc", "Me") or 0x1F3FB <= ord(ch) <= 0x1F3FF


def tokenizer_cuts(text: str, tokenizer) -> set[int]:
    """Character positions where the fast ``tokenizer`` starts or ends a word of ``text``.

    A word's extent is that of its tokens' offsets (mapped back through the normalizer to ``text``), so
    characters the normalizer drops or rewrites are still inside it.
    """
    # through transformers, not the backend: a tokenizer.json may carry padding and truncation settings; not
    # verbose: a line longer than the model's window is fine (it is tagged in windows)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    spans: dict[int, list[int]] = {}
    for w, (start, end) in zip(enc.word_ids(), enc["offset_mapping"]):
        if w is None or end <= start:
            continue
        span = spans.setdefault(w, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    return {i for span in spans.values() for i in span}


def _regex_cuts(text: str) -> set[int]:
    return {i for m in _WORD.finditer(text) for i in m.span()}


def words_from_cuts(text: str, cuts: set[int], split_punctuation: bool = True) -> list[tuple[int, int]]:
    """``(start, end)`` of every word of ``text`` given candidate cut positions (steps 2 and 3 above).

    >>> words_from_cuts("Paris.  北京", set())
    [(0, 5), (5, 6), (8, 9), (9, 10)]
    >>> words_from_cuts("Cafe\\u0301!", {4})
    [(0, 5), (5, 6)]
    """
    spans: list[tuple[int, int]] = []
    start = None
    for i, ch in enumerate(text):
        if ch.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
            continue
        if start is None:
            start = i
            continue
        cut = (i in cuts or split_punctuation and (is_punctuation(ch) or is_cjk(ch) or is_punctuation(text[i - 1])
                                                   or is_cjk(text[i - 1])))
        if cut and not joins_previous(ch) and text[i - 1] != ZWJ:
            spans.append((start, i))
            start = i
    if start is not None:
        spans.append((start, len(text)))
    return spans


def split_words(text: str, tokenizer=None) -> tuple[list[str], list[tuple[int, int]]]:
    """Split raw text into words and punctuation, keeping ``(start, end)`` character offsets into ``text``.

    With a fast ``tokenizer`` the cuts are its own words plus seqtag's rules (module docstring), so the words of
    one text are the same, or nearly, whatever the model family. Without one, a regular expression keeps
    word-internal ``-'.`` together (``U.S``, ``don't``).

    >>> split_words("Empire State Building = ESB.")
    (['Empire', 'State', 'Building', '=', 'ESB', '.'], [(0, 6), (7, 12), (13, 21), (22, 23), (24, 27), (27, 28)])
    """
    if tokenizer is not None and getattr(tokenizer, "is_fast", False):
        offsets = words_from_cuts(text, tokenizer_cuts(text, tokenizer))
    else:
        offsets = words_from_cuts(text, _regex_cuts(text), split_punctuation=False)
    return [text[a:b] for a, b in offsets], offsets


def check_text(text: str, where: str, what: str = "the line", *, path: object = None,
               encoding: str | None = None) -> None:
    """Raise :class:`DataError` at the first character of ``text`` that is not text (module docstring).

    ``where`` is the location (``file:line``, ``file:line, token 2``, ``--text``); ``what`` names ``text`` in the
    message; ``path``, the file, goes into the command that removes the character; ``encoding``, the file's, adds
    the likely cause of C1 characters in a Latin-1 file.

    >>> check_text("telan\\x00giectasia", "t.txt:3", "the token")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    seqtag.errors.DataError: t.txt:3: the token 'telan\\x00giectasia' holds U+0000, a control character, at character 5...
    """
    m = _NOT_TEXT.search(text)
    if m is None:
        return
    ch, i = m.group(), m.start()
    code = f"U+{ord(ch):04X}"
    if "\ud800" <= ch <= "\udfff":
        raise DataError(f"{where}: {what} {text!r:.80} holds {code}, a lone surrogate (half of a UTF-16 pair), at "
                        f"character {i}; it is not a character. Fix the \\u escapes of the JSON that wrote it, or "
                        f"remove it")
    fix = "remove it or replace it with a space"
    if ch < "\x80" and path is not None:
        clean = Path(str(path)).with_suffix(".clean" + Path(str(path)).suffix).name
        fix += f", e.g. `tr -d '\\{ord(ch):03o}' < {path} > {clean}` removes every {code}"
    if ch >= "\x80" and encoding is not None and encoding.lower().replace("_", "-") in ("latin-1", "latin1",
                                                                                         "iso-8859-1", "l1"):
        fix = (f"bytes 0x80-0x9f read as latin-1 are C1 controls, but in Windows files they are punctuation: read "
               f"the file as cp1252 (data.encoding=cp1252, --encoding cp1252), or {fix}")
    raise DataError(f"{where}: {what} {text!r:.80} holds {code}, a control character, at character {i}. Only TAB, "
                    f"LF, CR, VT and FF among control characters are read (as white space); {fix}")
