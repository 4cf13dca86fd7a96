"""Tests for seqtag.data.schemes: parsing, detection, span decoding, strict checks, repair and conversion."""

from __future__ import annotations

import itertools
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from seqtag.data.schemes import (
    PREFIXES,
    SCHEMES,
    allowed_transition,
    check_scheme,
    convert,
    detect_scheme,
    entity_type,
    entity_types,
    find_problems,
    labels_for,
    parse_tag,
    repair,
    spans,
    tags_from_spans,
)
from seqtag.errors import ConfigError, DataError

TYPES = ("PER", "LOC", "creative-work")

# ------------------------------------------------------------------------------------------- parse / scheme


@pytest.mark.parametrize(
    "tag, expected",
    [("O", ("O", None)), ("B-PER", ("B", "PER")), ("I-creative-work", ("I", "creative-work")),
     ("E-a-b-c", ("E", "a-b-c")), ("S-X", ("S", "X")), ("L-X", ("L", "X")), ("U-X", ("U", "X")), ("B--", ("B", "-"))],
)
def test_parse_tag_splits_on_first_dash(tag, expected):
    assert parse_tag(tag) == expected


@pytest.mark.parametrize("tag", ["B_PER", "X-LOC", "B-", "", "B", "O-PER", "o", "b-PER", "-PER"])
def test_parse_tag_rejects_malformed_and_lists_prefixes(tag):
    with pytest.raises(DataError, match="PREFIX one of B, I, E, S, L, U") as e:
        parse_tag(tag)
    assert repr(tag) in str(e.value)


def test_check_scheme_names_choices_and_aliases():
    assert [check_scheme(s) for s in SCHEMES] == list(SCHEMES)
    with pytest.raises(ConfigError, match=r"'BIO' is called 'IOB2'.*IOB1, IOB2, IOBES, BILOU"):
        check_scheme("BIO")
    with pytest.raises(ConfigError, match="choose one of"):
        check_scheme("XYZ")


# ------------------------------------------------------------------------------------------------ detect


@pytest.mark.parametrize(
    "seqs, expected",
    [
        ([["B-PER", "I-PER", "O"], ["O", "B-LOC", "B-LOC"]], "IOB2"),
        ([["I-PER", "I-PER", "O"], ["O", "I-LOC", "B-LOC"]], "IOB1"),
        ([["I-PER"]], "IOB1"),
        ([["B-PER", "E-PER", "O"], ["S-LOC"]], "IOBES"),
        ([["B-PER", "I-PER", "E-PER"]], "IOBES"),
        ([["B-PER", "L-PER", "O"], ["U-LOC"]], "BILOU"),
        ([["O", "O"], ["O"]], "IOB2"),  # no entities: valid under all schemes -> IOB2
        ([], "IOB2"),
        # 3 spans start with I- (IOB1 way), 1 with B- after O (an annotation slip): majority says IOB1
        ([["I-PER", "O", "I-LOC"], ["I-ORG", "O", "B-MISC", "I-MISC"]], "IOB1"),
        # 1 I-start vs 2 B-starts: IOB2 with one orphan I-
        ([["B-PER", "O", "I-LOC"], ["B-ORG"]], "IOB2"),
        ([["I-PER", "B-LOC"]], "IOB2"),  # tie (1 vs 1) -> IOB2
    ],
)
def test_detect_scheme(seqs, expected):
    assert detect_scheme(seqs) == expected
    assert detect_scheme(iter([tuple(s) for s in seqs])) == expected  # one pass over any iterable


def test_detect_scheme_rejects_mixed_iobes_bilou_and_bad_tags():
    with pytest.raises(DataError, match=r"IOBES prefixes \(E\).*BILOU prefixes \(U\)"):
        detect_scheme([["B-PER", "E-PER"], ["U-LOC"]])
    with pytest.raises(DataError, match="'B_PER'"):
        detect_scheme([["O", "B_PER"]])


# ------------------------------------------------------------------------------------------------- spans


@pytest.mark.parametrize(
    "tags, scheme, expected",
    [
        (["B-PER", "I-PER", "O", "B-LOC"], "IOB2", [("PER", 0, 2), ("LOC", 3, 4)]),
        (["O", "I-PER", "I-PER"], "IOB2", [("PER", 1, 3)]),  # orphan I- starts a span (conlleval)
        (["B-PER", "I-LOC", "I-LOC"], "IOB2", [("PER", 0, 1), ("LOC", 1, 3)]),
        (["B-PER", "B-PER", "I-PER"], "IOB2", [("PER", 0, 1), ("PER", 1, 3)]),
        (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "IOB1", [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)]),
        (["I-creative-work", "B-creative-work"], "IOB1", [("creative-work", 0, 1), ("creative-work", 1, 2)]),
        (["B-PER", "I-PER", "E-PER", "S-LOC", "S-LOC"], "IOBES", [("PER", 0, 3), ("LOC", 3, 4), ("LOC", 4, 5)]),
        (["B-PER", "O", "E-PER"], "IOBES", [("PER", 0, 1), ("PER", 2, 3)]),  # unclosed B, orphan E
        (["S-PER", "I-PER", "E-PER"], "IOBES", [("PER", 0, 1), ("PER", 1, 3)]),
        (["E-PER", "E-PER"], "IOBES", [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-X", "I-X", "L-X", "U-Y", "B-Y"], "BILOU", [("X", 0, 3), ("Y", 3, 4), ("Y", 4, 5)]),
        ([], "IOB2", []),
        (["O", "O"], "BILOU", []),
    ],
)
def test_spans_hand_made(tags, scheme, expected):
    assert spans(tags, scheme) == expected


def test_spans_rejects_prefix_outside_scheme():
    with pytest.raises(DataError, match=r"token 1: .*'E-PER'.*IOB2 uses B, I"):
        spans(["B-PER", "E-PER"], "IOB2")
    with pytest.raises(DataError, match="token 0: .*'S-PER'"):
        spans(["S-PER"], "BILOU")


def _seqeval_spans(tags):
    """Reference decoder: seqeval's conlleval port, end made exclusive."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sorted((t, s, e + 1) for t, s, e in get_entities(list(tags)))


_ANY_TAG = {
    scheme: st.sampled_from(["O"] + [f"{p}-{t}" for p in PREFIXES[scheme] for t in TYPES]) for scheme in SCHEMES
}


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_spans_match_seqeval_on_random_sequences(scheme, data):
    """Any sequence, valid or not, decodes like seqeval (conlleval); BILOU is compared after L->E, U->S."""
    tags = data.draw(st.lists(_ANY_TAG[scheme], max_size=12))
    as_iobes = [t.replace("L-", "E-", 1) if t.startswith("L-") else t.replace("U-", "S-", 1) if t.startswith("U-")
                else t for t in tags]
    assert sorted(spans(tags, scheme)) == _seqeval_spans(as_iobes)


# ------------------------------------------------------------------------------------- tags from spans / convert


@st.composite
def span_lists(draw, max_len=14):
    """A sentence length and sorted non-overlapping spans in it (adjacent same-type spans included)."""
    n = draw(st.integers(0, max_len))
    cuts = sorted(draw(st.sets(st.integers(0, n), max_size=n + 1)))
    out = []
    for start, end in itertools.pairwise(cuts):
        if draw(st.booleans()):
            out.append((draw(st.sampled_from(TYPES)), start, end))
    return n, out


@pytest.mark.parametrize(
    "scheme, expected",
    [
        ("IOB1", ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-PER"]),
        ("IOB2", ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-PER"]),
        ("IOBES", ["B-PER", "E-PER", "S-PER", "O", "S-LOC", "S-PER"]),
        ("BILOU", ["B-PER", "L-PER", "U-PER", "O", "U-LOC", "U-PER"]),
    ],
)
def test_tags_from_spans_hand_made(scheme, expected):
    sp = [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5), ("PER", 5, 6)]
    assert tags_from_spans(sp, 6, scheme) == expected
    assert spans(expected, scheme) == sp


@pytest.mark.parametrize("bad", [[("PER", 0, 2), ("LOC", 1, 3)], [("PER", 2, 2)], [("PER", 3, 5)], [("X", -1, 1)]])
def test_tags_from_spans_rejects_bad_spans(bad):
    with pytest.raises(DataError, match="overlaps"):
        tags_from_spans(bad, 4, "IOB2")


@pytest.mark.parametrize(
    "tags, src, dst, expected",
    [
        (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "IOB1", "IOB2", ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]),
        (["B-PER", "I-PER", "I-PER", "O", "B-LOC"], "IOB2", "IOBES", ["B-PER", "I-PER", "E-PER", "O", "S-LOC"]),
        (["B-PER", "E-PER", "S-LOC"], "IOBES", "BILOU", ["B-PER", "L-PER", "U-LOC"]),
        (["U-PER", "U-PER", "B-LOC", "L-LOC"], "BILOU", "IOB1", ["I-PER", "B-PER", "I-LOC", "I-LOC"]),
        (["O", "I-PER", "I-PER"], "IOB2", "IOBES", ["O", "B-PER", "E-PER"]),  # invalid input: read leniently
    ],
)
def test_convert_hand_made(tags, src, dst, expected):
    assert convert(tags, src, dst) == expected


@pytest.mark.parametrize("src, dst", list(itertools.permutations(SCHEMES, 2)))
@settings(max_examples=60, deadline=None)
@given(case=span_lists())
def test_convert_round_trips_all_pairs(src, dst, case):
    n, sp = case
    src_tags = tags_from_spans(sp, n, src)
    assert find_problems(src_tags, src) == []
    dst_tags = convert(src_tags, src, dst)
    assert len(dst_tags) == n
    assert find_problems(dst_tags, dst) == []
    assert spans(dst_tags, dst) == sp
    assert convert(dst_tags, dst, src) == src_tags


# ---------------------------------------------------------------------------------------- find_problems / repair


@pytest.mark.parametrize(
    "tags, scheme, indices",
    [
        (["O", "I-PER", "I-PER"], "IOB2", [1]),
        (["I-PER"], "IOB2", [0]),
        (["B-PER", "I-LOC", "O", "B-LOC", "I-LOC"], "IOB2", [1]),
        (["B-PER", "B-PER", "I-PER"], "IOB2", []),
        (["O", "I-PER", "I-PER"], "IOB1", []),
        (["O", "B-PER"], "IOB1", [1]),
        (["I-LOC", "B-PER"], "IOB1", [1]),
        (["I-PER", "B-PER", "B-PER"], "IOB1", []),
        (["B-PER", "O"], "IOBES", [0]),  # unclosed span, reported at its last token
        (["B-PER", "I-PER"], "IOBES", [1]),
        (["O", "I-PER", "E-PER"], "IOBES", [1]),
        (["S-PER", "E-PER"], "IOBES", [1]),
        (["B-PER", "S-PER"], "IOBES", [0]),
        (["B-PER", "E-LOC"], "IOBES", [0, 1]),
        (["B-PER", "I-PER", "E-PER", "S-LOC"], "IOBES", []),
        (["B-PER", "L-PER", "U-LOC"], "BILOU", []),
        (["U-PER", "L-PER"], "BILOU", [1]),
        (["B-PER", "O", "I-LOC"], "BILOU", [0, 2, 2]),  # orphan I-LOC that is also unclosed
        (["B-PER", "E-PER"], "IOB2", [1]),  # prefix not in scheme
        (["B_PER", "O"], "IOB2", [0]),  # malformed
    ],
)
def test_find_problems_indices(tags, scheme, indices):
    assert [i for i, _ in find_problems(tags, scheme)] == indices


@pytest.mark.parametrize(
    "prev, tag, scheme, ok",
    [
        ("O", "I-PER", "IOB2", False), ("B-PER", "I-PER", "IOB2", True), ("I-LOC", "I-PER", "IOB2", False),
        ("O", "I-PER", "IOB1", True), ("O", "B-PER", "IOB1", False), ("I-PER", "B-PER", "IOB1", True),
        ("B-PER", "O", "IOBES", False), ("B-PER", "E-PER", "IOBES", True), ("S-PER", "E-PER", "IOBES", False),
        ("E-PER", "O", "IOBES", True), ("I-PER", "L-PER", "BILOU", True), ("U-PER", "B-LOC", "BILOU", True),
        ("I-PER", "U-PER", "BILOU", False), ("O", "O", "BILOU", True),
    ],
)
def test_allowed_transition_is_the_pair_rule_of_find_problems(prev, tag, scheme, ok):
    assert allowed_transition(prev, tag, scheme) is ok
    # the two-tag sentence [prev, tag] is valid iff its start, the pair and its end are allowed
    assert (find_problems([prev, tag], scheme) == []) is (ok and allowed_transition("O", prev, scheme)
                                                         and allowed_transition(tag, "O", scheme))


def test_allowed_transition_refuses_foreign_prefixes():
    with pytest.raises(DataError, match="IOB2 does not have"):
        allowed_transition("O", "S-PER", "IOB2")


def test_find_problems_messages_say_the_rule():
    [(i, msg)] = find_problems(["O", "I-PER"], "IOB2")
    assert i == 1 and "I-PER follows O at token 0" in msg and "starts with B-PER" in msg
    [(i, msg)] = find_problems(["B-LOC", "O"], "BILOU")
    assert i == 0 and "ends with L-LOC" in msg and "U-LOC" in msg


@pytest.mark.parametrize(
    "tags, scheme, expected",
    [
        (["O", "I-PER", "I-PER", "O"], "IOB2", ["O", "B-PER", "I-PER", "O"]),
        (["B-PER", "I-LOC"], "IOB2", ["B-PER", "B-LOC"]),
        (["O", "B-PER", "I-PER"], "IOB1", ["O", "I-PER", "I-PER"]),
        (["B-PER", "O", "I-LOC", "I-LOC"], "IOBES", ["S-PER", "O", "B-LOC", "E-LOC"]),
        (["S-PER", "E-PER"], "IOBES", ["S-PER", "S-PER"]),
        (["B-PER", "I-PER"], "BILOU", ["B-PER", "L-PER"]),
        (["B-PER", "I-PER", "O"], "IOB2", ["B-PER", "I-PER", "O"]),  # valid: unchanged
    ],
)
def test_repair_hand_made(tags, scheme, expected):
    assert repair(tags, scheme) == expected
    assert find_problems(expected, scheme) == []


def test_repair_refuses_unrepairable_tags():
    with pytest.raises(DataError, match="token 1"):
        repair(["O", "I_PER"], "IOB2")


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_repair_is_valid_keeps_spans_and_fixes_only_problems(scheme, data):
    tags = data.draw(st.lists(_ANY_TAG[scheme], max_size=12))
    fixed = repair(tags, scheme)
    assert find_problems(fixed, scheme) == []
    assert spans(fixed, scheme) == spans(tags, scheme)
    if not find_problems(tags, scheme):
        assert fixed == tags
    else:
        assert fixed != tags


# --------------------------------------------------------------------------------------------------- labels


def test_labels_for_every_scheme():
    assert labels_for(["PER", "LOC", "PER"], "IOB2") == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert labels_for(["PER", "LOC"], "IOB1") == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert labels_for(["PER", "LOC"], "BILOU") == [
        "O", "B-LOC", "I-LOC", "L-LOC", "U-LOC", "B-PER", "I-PER", "L-PER", "U-PER"]
    wnut = ["person", "location", "group", "corporation", "creative-work", "product"]
    assert len(labels_for(wnut, "IOB2")) == 13
    assert len(labels_for(wnut, "IOBES")) == 25
    assert labels_for([], "IOBES") == ["O"]
    with pytest.raises(DataError, match="non-empty"):
        labels_for(["PER", ""], "IOB2")


def test_entity_types():
    assert entity_types([["B-PER", "I-PER", "O"], ["U-creative-work"], []]) == ["PER", "creative-work"]


def test_entity_type_is_the_one_tag_splitter():
    assert [entity_type(t) for t in ("O", "B-PER", "I-creative-work", "U-X")] == [None, "PER", "creative-work", "X"]
    for bad in ("PER", "B-", "Disease", "X-PER"):
        with pytest.raises(DataError, match="malformed tag"):
            entity_type(bad)


def test_spans_without_a_scheme_accept_every_prefix():
    tags = ["S-PER", "B-LOC", "E-LOC", "I-LOC", "U-ORG", "B-X", "L-X", "E-X", "I-Y", "I-Z"]
    assert spans(tags) == [("PER", 0, 1), ("LOC", 1, 3), ("LOC", 3, 4), ("ORG", 4, 5), ("X", 5, 7), ("X", 7, 8),
                           ("Y", 8, 9), ("Z", 9, 10)]
    assert spans(["B-creative-work", "I-creative-work"]) == [("creative-work", 0, 2)]
    assert spans([]) == []
    with pytest.raises(DataError, match=r"token 0: malformed tag 'X-PER'"):
        spans(["X-PER"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"]), max_size=12))
def test_spans_without_a_scheme_match_seqeval_lenient_reader(tags):
    assert spans(tags) == [(t, s, e + 1) for t, s, e in get_entities(list(tags))]
