"""Label statistics of a tagged dataset: tag counts and shares, entity spans, inverse-frequency class weights;
and of span data that may nest (:func:`span_stats`: nesting, and the share of positive (span, type) candidates).

Pure: tag sequences in, a dict out (``seqtag stats FILE`` reads the file and prints :func:`format_stats`).

Spans are decoded leniently, the way ``conlleval`` (and seqeval's default mode) reads tags, by
:func:`seqtag.data.schemes.spans` with every prefix accepted, so the counts do not depend on the declared scheme.

Class weights use the inverse-frequency ("balanced") formula of scikit-learn's
``compute_class_weight("balanced")``: ``w_c = N / (C * n_c)`` for a label ``c`` seen ``n_c`` times among ``N``
tokens and ``C`` labels (:func:`inverse_frequency_weights`, the one implementation: ``seqtag sweep``'s
``weight=inverse_frequency`` uses it too, over the model's label set). ``inverse_frequency_weights_normalized``
is the same vector rescaled so that its mean over the labels is 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from seqtag.data.schemes import spans
from seqtag.errors import DataError

LENGTH_BINS = ("1", "2", "3", "4", "5+")
"""Keys of the span-length histogram: spans of 1, 2, 3, 4 and 5 or more tokens."""


def inverse_frequency_weights(counts: Mapping[str, int], labels: Sequence[str] | None = None) -> dict[str, float]:
    """Inverse-frequency class weights ``w_c = N / (C * max(n_c, 1))``, scikit-learn's "balanced" weights.

    ``counts`` maps a label to its number of tokens (``N`` is their sum); ``labels`` is the label set the
    weights are for (``C = len(labels)``; default: the labels counted, sorted). A label of ``labels`` that was
    never counted is treated as seen once, so it gets the largest weight rather than an infinite one (a model's
    label set can hold labels its training data lacks, e.g. ``E-X`` when every ``X`` span is one token long).

    >>> inverse_frequency_weights({"O": 3, "B-PER": 1})
    {'B-PER': 2.0, 'O': 0.6666666666666666}
    >>> inverse_frequency_weights({"O": 3, "B-PER": 1}, ["O", "B-PER", "I-PER"])
    {'O': 0.4444444444444444, 'B-PER': 1.3333333333333333, 'I-PER': 1.3333333333333333}
    """
    labels = sorted(counts) if labels is None else list(labels)
    n = sum(counts.values())
    return {lab: n / (len(labels) * max(counts.get(lab, 0), 1)) for lab in labels}


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
            found = spans(tags)
        except DataError as err:
            raise DataError(f"sentence {k}, {err}") from None
        for etype, start, end in found:
            span_lengths.setdefault(etype, []).append(end - start)
    n_sentences = len(sentences_tags)

    labels = {lab: {"count": counts[lab], "share": counts[lab] / n_tokens} for lab in sorted(counts)}
    weights = inverse_frequency_weights(counts)
    mean_weight = sum(weights.values()) / len(weights) if weights else 1.0
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


def _depths(spans: Sequence[tuple[int, int]]) -> list[int]:
    """Nesting depth of each distinct extent: 1 + the depth of the deepest extent strictly containing it.

    >>> _depths([(0, 5), (0, 2), (1, 2), (3, 4)])
    [1, 2, 3, 2]
    """
    order = sorted(range(len(spans)), key=lambda k: spans[k][0] - spans[k][1])  # longest first
    depth = [1] * len(spans)
    for n, k in enumerate(order):
        a, b = spans[k]
        outer = [depth[o] for o in order[:n] if spans[o][0] <= a and b <= spans[o][1] and spans[o] != (a, b)]
        depth[k] = 1 + max(outer, default=0)
    return depth


def span_stats(sentences: Sequence[tuple[int, Sequence[tuple[int, int, str]]]]) -> dict:
    """Statistics of entity spans that may nest (the span head's data): one ``(n_words, spans)`` per sentence,
    spans ``(start, end, type)`` with ``end`` exclusive.

    Returns a dict with ``sentences``, ``tokens``, ``mentions`` (distinct ``(start, end, type)``), ``entities``
    (per type, as in :func:`label_stats`), and the nesting: ``nested`` (mentions inside a longer one),
    ``containing`` (mentions holding a shorter one), ``same_extent`` (mentions whose words carry another type too),
    ``crossing`` (pairs that overlap without one holding the other), ``max_depth`` and ``depth_histogram`` (per
    distinct extent: 1 for an outermost one). And the imbalance a span head sees: ``candidates`` (every span
    ``i <= j`` of every sentence, times the types) with ``positive_share`` (mentions / candidates), and the same
    for spans of at most ``longest`` words (the longest mention: the shortest ``model.max_span_length`` that keeps
    every mention), ``candidates_up_to_longest`` and ``positive_share_up_to_longest``.

    >>> s = span_stats([(4, [(0, 2, "DNA"), (0, 1, "protein"), (3, 4, "protein")])])
    >>> s["mentions"], s["nested"], s["containing"], s["max_depth"], s["candidates"], s["candidates_up_to_longest"]
    (3, 1, 1, 2, 20, 14)
    """
    lengths: dict[str, list[int]] = {}
    n_tokens = mentions = nested = containing = same = crossing = 0
    cand = cand_short = 0
    depth_hist: Counter[int] = Counter()
    per_sentence = [(n, sorted(set(sp))) for n, sp in sentences]
    longest = max((b - a for _, sp in per_sentence for a, b, _ in sp), default=0)
    for n, found in per_sentence:
        n_tokens += n
        mentions += len(found)
        cand += n * (n + 1) // 2
        cand_short += sum(max(0, n - k + 1) for k in range(1, longest + 1))
        for a, b, t in found:
            lengths.setdefault(t, []).append(b - a)
            others = [(c, d) for c, d, u in found if (c, d, u) != (a, b, t)]
            nested += any(c <= a and b <= d and d - c > b - a for c, d in others)
            containing += any(a <= c and d <= b and b - a > d - c for c, d in others)
            same += (a, b) in others
        extents = sorted({(a, b) for a, b, _ in found})
        depth_hist.update(_depths(extents))
        crossing += sum(a < c < b < d for i, (a, b) in enumerate(extents) for c, d in extents[i + 1:])
    n_types = len(lengths)
    entities = {}
    for etype in sorted(lengths):
        hist = dict.fromkeys(LENGTH_BINS, 0)
        for length in lengths[etype]:
            hist[LENGTH_BINS[min(length, len(LENGTH_BINS)) - 1]] += 1
        entities[etype] = {"count": len(lengths[etype]), "mean_length": sum(lengths[etype]) / len(lengths[etype]),
                           "max_length": max(lengths[etype]), "length_histogram": hist}
    return {
        "sentences": len(per_sentence), "tokens": n_tokens, "mentions": mentions, "entities": entities,
        "nested": nested, "containing": containing, "same_extent": same, "crossing": crossing,
        "max_depth": max(depth_hist, default=0), "depth_histogram": {str(k): depth_hist[k] for k in sorted(depth_hist)},
        "candidates": cand * n_types, "positive_share": mentions / (cand * n_types) if cand * n_types else 0.0,
        "longest": longest, "candidates_up_to_longest": cand_short * n_types,
        "positive_share_up_to_longest": mentions / (cand_short * n_types) if cand_short * n_types else 0.0,
    }


def format_span_stats(stats: Mapping) -> str:
    """A readable report of :func:`span_stats`.

    >>> print(format_span_stats(span_stats([(4, [(0, 2, "DNA"), (0, 1, "protein")])])))
    sentences: 1  tokens: 4  mentions: 2  types: 2
    nested: 1 inside a longer mention, 1 holding a shorter one, 0 sharing their words with another type, 0 crossing pairs
    nesting depth: max 2 (extents by depth: 1: 1, 2: 1)
    candidates (span, type), every span i <= j: 20, positive 10.0000 %
    candidates with spans of at most 2 words (the longest mention): 14, positive 14.2857 %
    <BLANKLINE>
    type     count  mean len  max len  1  2  3  4  5+
    DNA          1      2.00        2  0  1  0  0   0
    protein      1      1.00        1  1  0  0  0   0
    """
    depth = ", ".join(f"{k}: {v}" for k, v in stats["depth_histogram"].items())
    lines = [
        f"sentences: {stats['sentences']}  tokens: {stats['tokens']}  mentions: {stats['mentions']}  "
        f"types: {len(stats['entities'])}",
        f"nested: {stats['nested']} inside a longer mention, {stats['containing']} holding a shorter one, "
        f"{stats['same_extent']} sharing their words with another type, {stats['crossing']} crossing pairs",
        f"nesting depth: max {stats['max_depth']} (extents by depth: {depth})",
        f"candidates (span, type), every span i <= j: {stats['candidates']}, positive "
        f"{100 * stats['positive_share']:.4f} %",
        f"candidates with spans of at most {stats['longest']} words (the longest mention): "
        f"{stats['candidates_up_to_longest']}, positive {100 * stats['positive_share_up_to_longest']:.4f} %",
        "",
    ]
    rows = [[t, str(v["count"]), f"{v['mean_length']:.2f}", str(v["max_length"])]
            + [str(v["length_histogram"][b]) for b in LENGTH_BINS] for t, v in stats["entities"].items()]
    return "\n".join(lines + _table(["type", "count", "mean len", "max len", *LENGTH_BINS], rows))


MEASURED_O_SHARES = {"tie": 0.90, "between": 0.925, "gain": 0.95, "no_learning": 0.99}
"""The imbalance curve (``docs/study/imbalance/README.md``): CoNLL-2003 training sets with the same 250
entity-bearing sentences and more entity-free ones, MiniLM, 240 steps of 32 sentences, three seeds paired, focal
γ=2 against cross-entropy (both decoded by Viterbi). Up to 90 % ``O`` they tie; at 92.5 % the losses built for
imbalance gain under a point; from 95 % focal wins on every seed; at 99 % neither learns in that budget.
``seqtag stats`` compares a file's share, rounded to 0.1 %, with these."""
MEASURED_DELTAS = {"tie": "-0.5 ± 1.7 at 82 %, +0.4 ± 0.5 at 90 %",
                   "between": "lstar_logodds k=2 +0.9 ± 0.3 and focal γ=1 +0.5 ± 0.4 on every seed, focal γ=2 "
                              "+0.5 ± 0.8",
                   "gain": "+5.0 ± 5.0 at 95 %, +19.0 ± 4.0 at 97.5 %"}
"""Loss minus cross-entropy (focal γ=2 unless named), test F1 points, mean ± std of the three per-seed differences."""


def loss_advice(o_share: float) -> str:
    """What the imbalance curve says about a training set with this share of ``O`` tokens (``seqtag stats`` prints
    it).

    >>> print(loss_advice(0.96))
    loss: at 96.0 % O, above the 95 % where focal γ=2 beat cross-entropy on every seed of the imbalance curve
    (test F1 +5.0 ± 5.0 at 95 %, +19.0 ± 4.0 at 97.5 %): try loss.name=focal loss.gamma=2.
    Measured on CoNLL-2003 subsets with MiniLM (docs/study/imbalance/README.md); run `seqtag sweep` on your data to be sure.
    """
    tie, between, gain, stuck = (round(MEASURED_O_SHARES[k], 3) for k in ("tie", "between", "gain", "no_learning"))
    pct = f"{100 * o_share:.1f} % O"
    o_share = round(o_share, 3)  # as printed: a file at 95.0 % reads as the curve's 95 % point
    if o_share >= gain:
        text = (f"loss: at {pct}, above the {100 * gain:g} % where focal γ=2 beat cross-entropy on every seed of the "
                f"imbalance curve\n(test F1 {MEASURED_DELTAS['gain']}): try loss.name=focal loss.gamma=2.")
        if o_share >= stuck:
            text += (f"\nAt {100 * stuck:g} % O neither loss learned in the curve's 240 steps (each entity sentence "
                     f"seen about once): train longer too.")
    elif o_share <= tie:
        text = (f"loss: at {pct}, at or below the {100 * tie:g} % up to which focal γ=2 and cross-entropy tied on "
                f"the imbalance curve\n(test F1 {MEASURED_DELTAS['tie']}): keep loss.name=cross_entropy.")
    else:
        text = (f"loss: {pct} lies between {100 * tie:g} % (focal γ=2 and cross-entropy tied) and {100 * gain:g} % "
                f"(focal ahead on every seed)\non the imbalance curve. At {100 * between:g} % the losses for imbalance "
                f"gained under a point\n(test F1: {MEASURED_DELTAS['between']}):\ntry loss.name=lstar_logodds "
                f"loss.k=2 and compare it with cross_entropy by `seqtag sweep`.")
    return text + ("\nMeasured on CoNLL-2003 subsets with MiniLM (docs/study/imbalance/README.md); run `seqtag sweep` "
                   "on your data to be sure.")
