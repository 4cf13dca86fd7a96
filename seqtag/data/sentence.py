"""A sentence as every NER reader returns it (tokens, tags, the file and line it came from), and the
checks on its tags: malformed tags (:func:`check_tags`) and tags invalid in a scheme, stopped at or
repaired (:func:`validate_sentences`, with :mod:`seqtag.data.schemes`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from seqtag.data.schemes import _BadTag, check_scheme, find_problems, parse_tag, repair
from seqtag.errors import ConfigError, DataError, where

ON_INVALID = ("error", "repair")


@dataclass(frozen=True)
class Sentence:
    """One sentence: its tokens, its tags (``None`` for untagged input) and where it came from.

    ``line`` is the 1-based line of the first token in a CoNLL or JSON Lines file (the record's first line in a
    JSON list), or the 0-based row + 1 of a Hugging Face dataset.
    """

    tokens: tuple[str, ...]
    tags: tuple[str, ...] | None
    source: str = ""
    line: int = 0

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise DataError(
                f"{where(self.source or '<input>', self.line)}: {len(self.tokens)} tokens but {len(self.tags)} tags"
            )


def token_location(sentence: Sentence, index: int) -> str:
    """Where token ``index`` of ``sentence`` is, for error messages.

    CoNLL files have one token per line, so token ``i`` is on line ``line + i``. JSON records give the record's
    line and the token index; Hugging Face datasets (source ``"NAME[SPLIT]"``) give the row. The kind is told
    from the source name (``.json``/``.jsonl`` suffix, ``]`` at the end).

    >>> token_location(Sentence(("a", "b"), ("O", "O"), "train.txt", 10), 1)
    'train.txt:11'
    >>> token_location(Sentence(("a", "b"), ("O", "O"), "train.jsonl", 10), 1)
    'train.jsonl:10, token 1'
    """
    src = sentence.source or "<input>"
    if src.endswith("]"):
        return f"{src} row {sentence.line - 1}, token {index}"
    if src.endswith((".json", ".jsonl")):
        return f"{src}:{sentence.line}, token {index}"
    return f"{src}:{sentence.line + index}"


def check_tags(sentences: Iterable[Sentence], hint: str = "") -> None:
    """Raise :class:`DataError` at the ``file:line`` of the first malformed tag (``Disease``, ``B-``, ``B_PER``).

    A tag is ``O`` or ``PREFIX-TYPE`` (:func:`~seqtag.data.schemes.parse_tag`); ``hint`` ends the message.
    Untagged sentences pass.
    """
    for s in sentences:
        for i, tag in enumerate(s.tags or ()):
            try:
                parse_tag(tag)
            except DataError as e:
                raise DataError(f"{token_location(s, i)}: {e}. Fix the tag in the file{hint}") from None


def validate_sentences(
    sentences: Iterable[Sentence], scheme: str, on_invalid: str = "error"
) -> tuple[list[Sentence], int]:
    """Check every sentence's tags against ``scheme`` (strictly, :func:`~seqtag.data.schemes.find_problems`).

    ``on_invalid="error"``: raise :class:`DataError` at the first invalid tag, naming ``source:line`` of the token,
    the rule it breaks and the fix. ``on_invalid="repair"``: rewrite invalid sequences with
    :func:`~seqtag.data.schemes.repair` (the conlleval reading, e.g. an IOB2 ``I-X`` after ``O`` becomes ``B-X``).
    Malformed tags and prefixes the scheme does not use raise in both modes. Untagged sentences pass unchanged.

    Returns ``(sentences, n_repaired_tokens)``; the count is 0 under ``"error"``.
    """
    check_scheme(scheme)
    if on_invalid not in ON_INVALID:
        raise ConfigError(f"on_invalid={on_invalid!r}; choose one of {', '.join(ON_INVALID)}")
    sentences = list(sentences)
    out: list[Sentence] = []
    n_repaired = 0
    for s in sentences:
        if s.tags is None:
            out.append(s)
            continue
        problems = find_problems(s.tags, scheme)
        if not problems:
            out.append(s)
            continue
        if on_invalid == "error":
            i, msg = problems[0]
            raise DataError(
                f"{token_location(s, i)}: invalid {scheme} tag sequence: {msg}. Fix the file, or set "
                f"data.on_invalid=repair to read it the way conlleval does (e.g. an I-X that starts a span becomes "
                f"B-X in IOB2), or check data.scheme"
            )
        try:
            fixed = repair(s.tags, scheme)
        except _BadTag as e:
            raise DataError(f"{token_location(s, e.index)}: {e}") from None
        n_repaired += sum(a != b for a, b in zip(fixed, s.tags, strict=True))
        out.append(Sentence(s.tokens, tuple(fixed), s.source, s.line))
    return out, n_repaired
