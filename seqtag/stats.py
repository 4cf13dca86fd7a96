"""Label statistics of a tagged dataset: tag counts and shares, entity spans, inverse-frequency class weights.

Pure: tag sequences in, a dict out (``seqtag stats FILE`` reads the file and prints :func:`format_stats`).

Spans are decoded leniently, the way ``conlleval`` (and seqeval's default mode) reads tags, so the counts do not
depend on the declared scheme:

* ``B-X``, ``S-X`` and ``U-X`` always start a span;
* ``I-X``, ``E-X`` and ``L-X`` continue the open span when it has type ``X`` and has not been closed, and
  otherwise start a new one (so ``I-X`` after ``O`` or after another type starts a span; this covers IOB1 and
  IOB2);
* ``E-X``, ``L-X``, ``S-X`` and ``U-X`` close the span after their token; ``O`` closes any open span.

Class weights use the inverse-frequency ("balanced") formula of scikit-learn's
``compute_class_weight("balanced")``: ``w_c = N / (C * n_c)`` for a label ``c`` seen ``n_c`` times among ``N``
tokens and ``C`` distinct labels (labels never seen get no weight). That is ``inverse_frequency_weights``.
``inverse_frequency_weights_normalized`` is the same vector rescaled so that its mean over the labels is 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

LENGTH_BINS = ("1", "2", "3", "4", "5+")
"""Keys of the span-length histogram: spans of 1, 2, 3, 4 and 5 or more tokens."""

_STARTS = frozenset("BSU")
_CONTINUES = frozenset("IEL")
_CLOSES = frozenset("ESLU")


def decode_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans ``(type, start, end)`` (``end`` exclusive) of one sentence, decoded leniently.

    >>> decode_spans(["B-PER", "I-PER", "O", "I-LOC", "I-ORG", "B-ORG", "S-MISC"])
    [('PER', 0, 2), ('LOC', 3, 4), ('ORG', 4, 5), ('ORG', 5, 6), ('MISC', 6, 7)]

    Raises:
        ValueError: a tag is neither ``O`` nor ``<prefix>-<TYPE>`` with a prefix in B/I/E/S/L/U.
    """
    spans: list[tuple[str, int, int]] = []
    open_type: str | None = None
    open_start = 0
    for i, tag in enumerate(tags):
        if tag == "O":
            if open_type is not None:
                spans.append((open_type, open_start, i))
                open_type = None
            continue
        prefix, sep, etype = tag.partition("-")
        if not sep or not etype or len(prefix) != 1 or prefix not in _STARTS | _CONTINUES:
            raise ValueError(
                f"token {i}: tag {tag!r} is not 'O' or '<prefix>-<TYPE>' with a prefix in B/I/E/S/L/U; "
                "fix the tag column of the data"
            )
        if prefix in _STARTS or open_type != etype:
            if open_type is not None:
                spans.append((open_type, open_start, i))
            open_type, open_start = etype, i
        if prefix in _CLOSES:
            spans.append((etype, open_start, i + 1))
            open_type = None
    if open_type is not None:
        spans.append((open_type, open_start, len(tags)))
    return spans


def label_stats(sentences_tags: Sequence[Sequence[str]]) -> dict:
    """Statistics of the tags of a dataset (one tag sequence per sentence).

    Returns a dict with:

    * ``sentences``, ``tokens``: counts; ``mean_sentence_length``, ``max_sentence_length`` (tokens);
    * ``labels``: ``{label: {"count", "share"}}`` for every tag seen, sorted by label (share of all tokens);
    * ``o_share``: share of tokens tagged ``O``;
    * ``mentions``: number of entity spans; ``entities``: ``{TYPE: {"count", "mean_length", "max_length",
      "length_histogram": {"1", "2", "3", "4", "5+": count}}}``, sorted by type;
    * ``inverse_frequency_weights``: ``{label: N / (C * n_c)}`` (scikit-learn's "balanced" weights);
    * ``inverse_frequency_weights_normalized``: the same divided by their mean over labels (mean 1).

    Empty input gives zero counts and empty tables.

    >>> s = label_stats([["B-PER", "I-PER", "O"], ["O", "O", "B-LOC"]])
    >>> s["tokens"], s["o_share"], s["mentions"], s["entities"]["PER"]["mean_length"]
    (6, 0.5, 2, 2.0)
    >>> s["inverse_frequency_weights"]["O"], s["inverse_frequency_weights"]["B-PER"]
    (0.5, 1.5)
    """
    counts: Counter[str] = Counter()
    span_lengths: dict[str, list[int]] = {}
    n_tokens = max_len = 0
    for k, tags in enumerate(sentences_tags):
        counts.update(tags)
        n_tokens += len(tags)
        max_len = max(max_len, len(tags))
        try:
            spans = decode_spans(tags)
        except ValueError as err:
            raise ValueError(f"sentence {k}, {err}") from None
        for etype, start, end in spans:
            span_lengths.setdefault(etype, []).append(end - start)
    n_sentences = len(sentences_tags)

    labels = {lab: {"count": counts[lab], "share": counts[lab] / n_tokens} for lab in sorted(counts)}
    n_labels = len(counts)
    weights = {lab: n_tokens / (n_labels * counts[lab]) for lab in sorted(counts)}
    mean_weight = sum(weights.values()) / n_labels if n_labels else 1.0
    entities = {}
    for etype in sorted(span_lengths):
        lengths = span_lengths[etype]
        hist = dict.fromkeys(LENGTH_BINS, 0)
        for length in lengths:
            hist[LENGTH_BINS[min(length, len(LENGTH_BINS)) - 1]] += 1
        entities[etype] = {
            "count": len(lengths),
            "mean_length": sum(lengths) / len(lengths),
            "max_length": max(lengths),
            "length_histogram": hist,
        }
    return {
        "sentences": n_sentences,
        "tokens": n_tokens,
        "mean_sentence_length": n_tokens / n_sentences if n_sentences else 0.0,
        "max_sentence_length": max_len,
        "labels": labels,
        "o_share": counts["O"] / n_tokens if n_tokens else 0.0,
        "mentions": sum(len(v) for v in span_lengths.values()),
        "entities": entities,
        "inverse_frequency_weights": weights,
        "inverse_frequency_weights_normalized": {lab: w / mean_weight for lab, w in weights.items()},
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-align the first column, right-align the rest, two spaces between columns."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [f"{r[0]:<{widths[0]}}"] + [f"{c:>{w}}" for c, w in zip(r[1:], widths[1:], strict=True)]
        out.append("  ".join(cells).rstrip())
    return out


def format_stats(stats: Mapping) -> str:
    """A readable text report of :func:`label_stats`: a summary, a label table and an entity table.

    >>> print(format_stats(label_stats([["B-PER", "I-PER", "O"], ["O", "O", "B-LOC"]])))
    sentences: 2  tokens: 6  mean length: 3.00  max length: 3
    O share: 0.5000  mentions: 2
    <BLANKLINE>
    label  count   share  weight  weight (mean 1)
    B-LOC      1  0.1667  1.5000           1.2000
    B-PER      1  0.1667  1.5000           1.2000
    I-PER      1  0.1667  1.5000           1.2000
    O          3  0.5000  0.5000           0.4000
    <BLANKLINE>
    type  count  mean len  max len  1  2  3  4  5+
    LOC       1      1.00        1  1  0  0  0   0
    PER       1      2.00        2  0  1  0  0   0
    <BLANKLINE>
    weight = N / (C * n_c) (scikit-learn 'balanced'); weight (mean 1) = weight / mean(weight)
    """
    lines = [
        f"sentences: {stats['sentences']}  tokens: {stats['tokens']}  "
        f"mean length: {stats['mean_sentence_length']:.2f}  max length: {stats['max_sentence_length']}",
        f"O share: {stats['o_share']:.4f}  mentions: {stats['mentions']}",
        "",
    ]
    w, wn = stats["inverse_frequency_weights"], stats["inverse_frequency_weights_normalized"]
    label_rows = [
        [lab, str(v["count"]), f"{v['share']:.4f}", f"{w[lab]:.4f}", f"{wn[lab]:.4f}"]
        for lab, v in stats["labels"].items()
    ]
    lines += _table(["label", "count", "share", "weight", "weight (mean 1)"], label_rows)
    lines.append("")
    entity_rows = [
        [etype, str(v["count"]), f"{v['mean_length']:.2f}", str(v["max_length"])]
        + [str(v["length_histogram"][b]) for b in LENGTH_BINS]
        for etype, v in stats["entities"].items()
    ]
    lines += _table(["type", "count", "mean len", "max len", *LENGTH_BINS], entity_rows)
    lines.append("")
    lines.append("weight = N / (C * n_c) (scikit-learn 'balanced'); weight (mean 1) = weight / mean(weight)")
    return "\n".join(lines)
