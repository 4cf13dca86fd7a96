"""Tag schemes for NER: parse, detect, decode to spans, check, repair and convert.

A tag is ``"O"`` or ``PREFIX-TYPE``. The TYPE is any non-empty string and may itself contain ``-``
(WNUT-17 has ``B-creative-work``); a tag is split on its *first* ``-``. The schemes differ in their prefixes:

========  ==============  =============================================================================
scheme    prefixes        a span is written as
========  ==============  =============================================================================
IOB1      B, I            ``I I I``; ``B`` only starts a span right after a span of the same type
IOB2      B, I            ``B I I`` (also called BIO)
IOBES     B, I, E, S      ``B I E``, or ``S`` for a one-token span (also called BIOES)
BILOU     B, I, L, U      ``B I L``, or ``U`` for a one-token span
========  ==============  =============================================================================

Spans are ``(type, start, end)`` with ``end`` exclusive. :func:`spans` decodes *leniently*, the way
``conlleval`` and ``seqeval`` (default mode) do: an ``I-X`` that cannot continue a span starts one, a span that is
not closed by ``E``/``L`` ends where the next span, an ``O`` or the sentence starts. :func:`find_problems` is the
strict check, :func:`repair` rewrites a sequence into the valid sequence with the same lenient reading, and
:func:`convert` goes through spans, so it works between any two schemes.

Everything here is pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from seqtag.errors import ConfigError, DataError

SCHEMES = ("IOB1", "IOB2", "IOBES", "BILOU")

PREFIXES: dict[str, tuple[str, ...]] = {
    "IOB1": ("B", "I"),
    "IOB2": ("B", "I"),
    "IOBES": ("B", "I", "E", "S"),
    "BILOU": ("B", "I", "L", "U"),
}
"""The prefixes each scheme uses, in label order."""

_ALL_PREFIXES = ("B", "I", "E", "S", "L", "U")
# BILOU's L (last) and U (unit) play the roles of IOBES's E (end) and S (single).
_TO_IOBES = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}
_ALIASES = {"BIO": "IOB2", "IOB": "IOB2", "BIOES": "IOBES", "BIOUL": "BILOU", "BMES": "IOBES"}

Span = tuple[str, int, int]
"""``(type, start, end)``, token indices, ``end`` exclusive."""


class _BadTag(DataError):
    """A malformed tag, or a prefix the scheme does not use; ``index`` is the token position."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def check_scheme(scheme: str) -> str:
    """Return ``scheme`` if it is one of :data:`SCHEMES`, else raise :class:`ConfigError` naming the choices.

    >>> check_scheme("IOBES")
    'IOBES'
    """
    if scheme in SCHEMES:
        return scheme
    hint = f" ({scheme!r} is called {_ALIASES[scheme.upper()]!r} here)" if str(scheme).upper() in _ALIASES else ""
    raise ConfigError(f"unknown tag scheme {scheme!r}{hint}; choose one of {', '.join(SCHEMES)}")


def parse_tag(tag: str) -> tuple[str, str | None]:
    """Split a tag into ``(prefix, type)``; ``"O"`` gives ``("O", None)``. Splits on the first ``-``.

    Raises :class:`DataError` for a malformed tag (``"B_PER"``, ``"X-LOC"``, ``"B-"``, ``""``).

    >>> parse_tag("B-creative-work")
    ('B', 'creative-work')
    >>> parse_tag("O")
    ('O', None)
    """
    if tag == "O":
        return "O", None
    prefix, dash, type_ = str(tag).partition("-")
    if dash and prefix in _ALL_PREFIXES and type_:
        return prefix, type_
    raise DataError(
        f"malformed tag {tag!r}: a tag is 'O' or PREFIX-TYPE with PREFIX one of "
        f"{', '.join(_ALL_PREFIXES)} and a non-empty TYPE (e.g. 'B-PER', 'I-creative-work')"
    )


def entity_type(tag: str) -> str | None:
    """The entity type of a tag, ``None`` for ``"O"``: the one place a tag is split into prefix and type.

    >>> entity_type("B-creative-work"), entity_type("O")
    ('creative-work', None)

    Raises :class:`DataError` for a malformed tag (see :func:`parse_tag`).
    """
    return parse_tag(tag)[1]


def _parse_all(tags: Sequence[str], scheme: str | None) -> list[tuple[str, str | None]]:
    """Parse every tag and check its prefix belongs to ``scheme`` (any prefix when ``None``); raise
    :class:`_BadTag` with the index."""
    allowed = PREFIXES[check_scheme(scheme)] if scheme is not None else _ALL_PREFIXES
    parsed = []
    for i, tag in enumerate(tags):
        try:
            prefix, type_ = parse_tag(tag)
        except DataError as e:
            raise _BadTag(f"token {i}: {e}", i) from None
        if prefix != "O" and prefix not in allowed:
            raise _BadTag(
                f"token {i}: tag {tag!r} uses prefix {prefix!r}, which {scheme} does not have "
                f"({scheme} uses {', '.join(allowed)}); is the tag scheme right?",
                i,
            )
        parsed.append((prefix, type_))
    return parsed


def entity_types(tag_seqs: Iterable[Sequence[str]]) -> list[str]:
    """The sorted set of entity types in some tag sequences.

    >>> entity_types([["B-PER", "I-PER", "O"], ["S-LOC"]])
    ['LOC', 'PER']
    """
    return sorted({entity_type(t) for tags in tag_seqs for t in tags if t != "O"})


def labels_for(types: Iterable[str], scheme: str) -> list[str]:
    """All labels of ``scheme`` for the entity ``types``: ``"O"`` first, then by sorted type, then prefix order.

    >>> labels_for(["PER", "LOC"], "IOBES")
    ['O', 'B-LOC', 'I-LOC', 'E-LOC', 'S-LOC', 'B-PER', 'I-PER', 'E-PER', 'S-PER']
    """
    prefixes = PREFIXES[check_scheme(scheme)]
    types = sorted(set(types))
    for t in types:
        if not isinstance(t, str) or not t or any(c.isspace() for c in t):
            raise DataError(f"bad entity type {t!r}: a type is a non-empty string without whitespace")
    return ["O"] + [f"{p}-{t}" for t in types for p in prefixes]


def detect_scheme(tag_seqs: Iterable[Sequence[str]]) -> str:
    """Guess the tag scheme of some tag sequences (e.g. all sentences of a training file).

    The rule, in order:

    1. ``E-``/``S-`` prefixes present -> ``"IOBES"``; ``L-``/``U-`` present -> ``"BILOU"``; both kinds ->
       :class:`DataError`.
    2. Otherwise (only ``B``/``I``/``O``), count the spans that start with ``I-X`` (after ``O``, another type or
       the sentence start: the IOB1 way) and those that start with ``B-X`` outside a same-type span (the IOB2
       way; a ``B-X`` right after ``X`` is valid in both and not counted). More ``I``-starts -> ``"IOB1"``.
    3. Otherwise ``"IOB2"``.

    Step 2 is a majority vote, not "no B-X after O at all", because real IOB1 files hold annotation slips:
    CoNLL-2003 ``eng.train`` has 2 ``B-MISC`` after ``O`` among about 23,000 ``I``-started spans.

    Ambiguity: IOB2 is preferred on a tie. That covers data with no entity tags at all (valid under every
    scheme). Both B/I schemes decode any sequence to the same spans (see :func:`spans`), so the choice only
    affects :func:`find_problems` and :func:`repair`. Raises :class:`DataError` on a malformed tag.

    >>> detect_scheme([["B-PER", "I-PER", "O"]])
    'IOB2'
    >>> detect_scheme([["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]])
    'IOB1'
    >>> detect_scheme([["O", "S-LOC"]])
    'IOBES'
    """
    seen: set[str] = set()
    i_starts = 0  # spans started by I-X (the IOB1 way)
    b_starts = 0  # spans started by a B-X that does not follow X (the IOB2 way)
    for tags in tag_seqs:
        prev: tuple[str, str | None] = ("O", None)
        for tag in tags:
            prefix, type_ = parse_tag(tag)
            seen.add(prefix)
            follows_same = prev[0] in ("B", "I") and prev[1] == type_
            if prefix == "I" and not follows_same:
                i_starts += 1
            elif prefix == "B" and not follows_same:
                b_starts += 1
            prev = (prefix, type_)
    iobes, bilou = seen & {"E", "S"}, seen & {"L", "U"}
    if iobes and bilou:
        raise DataError(
            f"tags mix IOBES prefixes ({', '.join(sorted(iobes))}) with BILOU prefixes "
            f"({', '.join(sorted(bilou))}); convert the data to one scheme"
        )
    if iobes:
        return "IOBES"
    if bilou:
        return "BILOU"
    return "IOB1" if i_starts > b_starts else "IOB2"


def spans(tags: Sequence[str], scheme: str | None = None) -> list[Span]:
    """Decode entity spans ``(type, start, end_exclusive)``, leniently, as conlleval and seqeval do.

    A ``B``/``S``/``U`` tag starts a span; an ``I``/``E``/``L`` continues the open span of its type, or starts a
    new one when there is none (``O I-X`` reads as ``O B-X``); ``E``/``L``/``S``/``U`` close the span; ``O``, a
    new ``B`` or a type change end the open one. IOB1 and IOB2 therefore decode alike. ``scheme=None`` accepts
    every prefix (B, I, E, S, L, U), so the spans do not depend on a declared scheme (``seqtag stats``). Raises
    :class:`DataError` on a malformed tag or a prefix that ``scheme`` does not use.

    >>> spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC"], "IOB2")
    [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5)]
    >>> spans(["B-ORG", "E-ORG", "S-PER", "I-PER"], "IOBES")
    [('ORG', 0, 2), ('PER', 2, 3), ('PER', 3, 4)]
    >>> spans(["B-PER", "I-PER", "O", "I-LOC", "I-ORG", "B-ORG", "S-MISC", "U-X"])
    [('PER', 0, 2), ('LOC', 3, 4), ('ORG', 4, 5), ('ORG', 5, 6), ('MISC', 6, 7), ('X', 7, 8)]
    """
    out: list[Span] = []
    open_type: str | None = None  # type of the span being read, None when no span is open
    start = 0
    for i, (prefix, type_) in enumerate(_parse_all(tags, scheme)):
        p = _TO_IOBES.get(prefix, "O")
        if p in ("I", "E") and open_type == type_:
            pass  # continues the open span
        else:
            if open_type is not None:
                out.append((open_type, start, i))
                open_type = None
            if p != "O":
                open_type, start = type_, i
        if p in ("E", "S") and open_type is not None:
            out.append((open_type, start, i + 1))
            open_type = None
    if open_type is not None:
        out.append((open_type, start, len(tags)))
    return out


def tags_from_spans(span_list: Iterable[Span], length: int, scheme: str) -> list[str]:
    """Write non-overlapping spans as a valid tag sequence of ``length`` tokens in ``scheme``.

    Raises :class:`DataError` when spans overlap, are empty or fall outside ``[0, length)``.

    >>> tags_from_spans([("PER", 0, 2), ("PER", 2, 3)], 4, "IOB1")
    ['I-PER', 'I-PER', 'B-PER', 'O']
    >>> tags_from_spans([("PER", 0, 2), ("PER", 2, 3)], 4, "BILOU")
    ['B-PER', 'L-PER', 'U-PER', 'O']
    """
    check_scheme(scheme)
    tags = ["O"] * length
    prev_end, prev_type = -1, None
    for type_, start, end in sorted(span_list, key=lambda s: (s[1], s[2])):
        if not (0 <= start < end <= length) or start < prev_end:
            raise DataError(f"span {(type_, start, end)} is empty, overlaps another or lies outside 0..{length}")
        n = end - start
        if scheme == "IOB1":
            first = "B" if (start == prev_end and type_ == prev_type) else "I"
            tags[start:end] = [f"{first}-{type_}"] + [f"I-{type_}"] * (n - 1)
        elif scheme == "IOB2":
            tags[start:end] = [f"B-{type_}"] + [f"I-{type_}"] * (n - 1)
        else:
            single, last = ("S", "E") if scheme == "IOBES" else ("U", "L")
            if n == 1:
                tags[start] = f"{single}-{type_}"
            else:
                tags[start:end] = [f"B-{type_}"] + [f"I-{type_}"] * (n - 2) + [f"{last}-{type_}"]
        prev_end, prev_type = end, type_
    return tags


def _breaks(prev: tuple[str, str | None], cur: tuple[str, str | None], scheme: str) -> tuple[bool, bool]:
    """The strict rule of ``scheme`` for two adjacent parsed tags: ``(prev_left_open, cur_orphan)``.

    ``prev_left_open``: ``prev`` opens a span that ``cur`` does not continue (IOBES/BILOU only).
    ``cur_orphan``: ``cur`` continues a span that ``prev`` did not open (IOB2 ``I``, IOBES/BILOU ``I``/``E``/``L``),
    or, in IOB1, a ``B`` that does not follow a span of its type. The sentence boundaries read as ``("O", None)``.
    """
    same = prev[0] in ("B", "I") and prev[1] == cur[1]
    if scheme == "IOB2":
        return False, cur[0] == "I" and not same
    if scheme == "IOB1":
        return False, cur[0] == "B" and not same
    last = "E" if scheme == "IOBES" else "L"
    continues = same and cur[0] in ("I", last)
    return prev[0] in ("B", "I") and not continues, cur[0] in ("I", last) and not continues


def allowed_transition(prev: str, tag: str, scheme: str) -> bool:
    """Whether ``tag`` may follow ``prev`` under the strict rules of :func:`find_problems`.

    The sentence start and end read as ``"O"``: ``allowed_transition("O", tag, s)`` says whether a sentence may
    start with ``tag``, ``allowed_transition(tag, "O", s)`` whether it may end with it. A sequence is valid iff
    every adjacent pair, the start and the end are allowed. Raises :class:`DataError` on a malformed tag or a
    prefix ``scheme`` does not use.

    >>> allowed_transition("O", "I-PER", "IOB2"), allowed_transition("B-PER", "I-PER", "IOB2")
    (False, True)
    >>> allowed_transition("B-PER", "O", "IOBES")   # an unclosed span
    False
    """
    a, b = _parse_all([prev, tag], scheme)
    return not any(_breaks(a, b, scheme))


def find_problems(tags: Sequence[str], scheme: str) -> list[tuple[int, str]]:
    """Every place where ``tags`` breaks ``scheme`` in the strict sense, as ``(token_index, message)``.

    Strict rules (the previous tag of the first token is ``O``):

    - IOB2: ``I-X`` must follow ``B-X`` or ``I-X``.
    - IOB1: ``B-X`` must follow ``I-X`` or ``B-X`` (it only separates two adjacent ``X`` spans).
    - IOBES / BILOU: ``I-X`` and ``E-X``/``L-X`` must follow ``B-X`` or ``I-X``; a ``B-X`` or ``I-X`` must be
      followed by ``I-X`` or ``E-X``/``L-X`` (an unclosed span is reported at its last token).

    The rule for one pair of tags is :func:`allowed_transition` (constrained decoding uses it too).
    A malformed tag or a prefix the scheme does not use is reported too (and read as ``O`` for the rest).
    An empty list means the sequence is valid.

    >>> find_problems(["O", "I-PER", "I-PER"], "IOB2")
    [(1, 'I-PER follows O at token 0; in IOB2 a span starts with B-PER')]
    >>> find_problems(["O", "I-PER"], "IOB1")
    []
    """
    check_scheme(scheme)
    allowed = PREFIXES[scheme]
    parsed: list[tuple[str, str | None]] = []
    problems: list[tuple[int, str]] = []
    for i, tag in enumerate(tags):
        try:
            prefix, type_ = parse_tag(tag)
        except DataError as e:
            problems.append((i, str(e)))
            prefix, type_ = "O", None
        if prefix != "O" and prefix not in allowed:
            problems.append((i, f"tag {tag!r}: {scheme} has no {prefix!r} prefix (it uses {', '.join(allowed)})"))
            prefix, type_ = "O", None
        parsed.append((prefix, type_))

    def desc(j: int) -> str:
        return "the sentence start" if j < 0 else f"{tags[j]} at token {j}"

    last, single = ("E", "S") if scheme == "IOBES" else ("L", "U")
    n = len(parsed)
    for i in range(n + 1):  # i = n: the sentence end, read as O
        prev_p, prev_t = parsed[i - 1] if i > 0 else ("O", None)
        left_open, orphan = _breaks((prev_p, prev_t), parsed[i] if i < n else ("O", None), scheme)
        if left_open and i == n:
            problems.append(
                (i - 1, f"the {prev_t} span ending at token {i - 1} is not closed: {tags[i - 1]} ends the sentence, "
                        f"but in {scheme} a span ends with {last}-{prev_t} (or is one {single}-{prev_t})")
            )
        elif left_open:
            problems.append(
                (i - 1, f"the {prev_t} span ending at token {i - 1} is not closed: {tags[i - 1]} is followed by "
                        f"{tags[i]}, but in {scheme} a span ends with {last}-{prev_t} (or is one {single}-{prev_t})")
            )
        if orphan and scheme == "IOB2":
            problems.append((i, f"{tags[i]} follows {desc(i - 1)}; in IOB2 a span starts with B-{parsed[i][1]}"))
        elif orphan and scheme == "IOB1":
            type_ = parsed[i][1]
            problems.append(
                (i, f"{tags[i]} follows {desc(i - 1)}; in IOB1 a span starts with I-{type_}, and B-{type_} "
                    f"only starts a span right after another {type_} span")
            )
        elif orphan:
            problems.append(
                (i, f"{tags[i]} follows {desc(i - 1)}; in {scheme} a span starts with B-{parsed[i][1]} "
                    f"(or is one {single}-{parsed[i][1]} token)")
            )
    if scheme in ("IOBES", "BILOU"):
        problems.sort(key=lambda p: p[0])
    return problems


def repair(tags: Sequence[str], scheme: str) -> list[str]:
    """Rewrite ``tags`` into the valid ``scheme`` sequence that has the same spans under :func:`spans`.

    This is the conlleval reading made explicit: in IOB2 an orphan ``I-X`` becomes ``B-X``; in IOBES an unclosed
    ``B-X`` becomes ``S-X`` and the last ``I-X`` of an unclosed span ``E-X``. Valid sequences come back
    unchanged. Raises :class:`DataError` on a malformed tag or a prefix the scheme does not use (those cannot
    be repaired without guessing).

    >>> repair(["O", "I-PER", "I-PER", "I-LOC"], "IOB2")
    ['O', 'B-PER', 'I-PER', 'B-LOC']
    >>> repair(["B-PER", "O", "I-LOC"], "IOBES")
    ['S-PER', 'O', 'S-LOC']
    """
    return tags_from_spans(spans(tags, scheme), len(tags), scheme)


def convert(tags: Sequence[str], src: str, dst: str) -> list[str]:
    """Convert a tag sequence from scheme ``src`` to scheme ``dst`` through its spans.

    Exact (and reversible) for sequences valid under ``src``; invalid ones are read leniently (:func:`spans`).

    >>> convert(["I-PER", "I-PER", "B-PER", "O"], "IOB1", "IOB2")
    ['B-PER', 'I-PER', 'B-PER', 'O']
    >>> convert(["B-LOC", "I-LOC", "I-LOC", "O", "B-PER"], "IOB2", "BILOU")
    ['B-LOC', 'I-LOC', 'L-LOC', 'O', 'U-PER']
    """
    check_scheme(dst)
    return tags_from_spans(spans(tags, src), len(tags), dst)
