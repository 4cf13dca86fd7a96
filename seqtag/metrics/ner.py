"""NER entity scores (seqeval), pure: values in, values out.

:func:`entity_scores` scores entity spans with ``seqeval.metrics`` (never ``evaluate.load``, which needs the
network). Two modes:

* ``mode="default"`` is seqeval's default mode, which reproduces the CoNLL ``conlleval`` script: spans are
  decoded leniently, so an ``I-X`` after ``O`` (or after another type) starts a span, and the declared scheme
  is ignored. Sentences are scored separately (no span crosses a sentence boundary). BILOU tags are read as
  IOBES (``L-`` as ``E-``, ``U-`` as ``S-``), since seqeval's lenient reader knows only B/I/E/S.
* ``mode="strict"`` is seqeval's strict mode with the declared scheme: only spans that are well formed in that
  scheme count; an ill-formed run such as ``O I-PER I-PER`` in IOB2 is no span at all.

Both are micro averages over entity spans; a span counts as correct when its type, start and end all match.

Findings about seqeval 1.2.2's strict decoders (checked exhaustively on all tag sequences up to length 4 and
on random well-formed sequences; pinned in ``tests/metrics/test_metrics.py``):

* IOB2, IOE2, IOBES, BILOU: correct on well-formed sequences.
* IOB1: correct on well-formed IOB1 (``B-X`` only right after an ``X`` token), but two quirks on ill-formed
  sequences, which a model trained on IOB1 data can predict: (a) a ``B-X`` that does not follow an ``X`` token is
  dropped, yet the ``I-X`` tokens after it are scored as a span of their own (``B-PER I-PER`` gives the span
  covering token 1 only, not "no span"), so such a prediction can even earn a true positive; (b) a span whose
  last token is ``B-X`` is dropped when an (ill-formed) ``B-Y`` of another type follows it (``I-PER B-PER
  B-LOC`` loses ``PER`` at token 1). Gold IOB1 data that is well formed is decoded correctly, so (a) and (b) only
  move predicted spans; strict IOB1 F1 is reported as seqeval computes it.
* IOE1: wrong even on well-formed input (``O E-PER I-PER`` loses the one-token ``PER`` at token 1; seqeval's
  own source says "IOE1 hasn't yet been able to handle some cases"). Strict IOE1 therefore raises
  :class:`~seqtag.errors.ConfigError`; convert the tags to IOE2 or IOB2 first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from seqtag.errors import ConfigError

MODES = ("default", "strict")
STRICT_SCHEMES = ("IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU")
"""Scheme names accepted by :func:`entity_scores` (seqeval's scheme classes of the same name)."""

_STRICT_PREFIXES = {
    "IOB1": "BI",
    "IOB2": "BI",
    "IOE1": "IE",
    "IOE2": "IE",
    "IOBES": "BIES",
    "BILOU": "BILU",
}
_LENIENT_PREFIXES = "BIESLU"




def _check_inputs(
    gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], mode: str, scheme: str
) -> tuple[list[list[str]], list[list[str]]]:
    """Validate arguments and return the tags as lists of lists of ``str`` (what seqeval needs)."""
    if mode not in MODES:
        raise ConfigError(f"unknown seqeval mode {mode!r}; choose one of {', '.join(MODES)}")
    if scheme not in STRICT_SCHEMES:
        raise ConfigError(f"unknown tag scheme {scheme!r}; choose one of {', '.join(STRICT_SCHEMES)}")
    if mode == "strict" and scheme == "IOE1":
        raise ConfigError(
            "strict mode with scheme 'IOE1' is not supported: seqeval 1.2.2 mis-decodes well-formed IOE1 "
            "(e.g. 'O E-PER I-PER'); convert the tags to IOE2 or IOB2, or use mode='default'"
        )
    if len(gold) != len(pred):
        raise ValueError(
            f"gold has {len(gold)} sentences but pred has {len(pred)}; pass one prediction per sentence"
        )
    allowed = _STRICT_PREFIXES[scheme] if mode == "strict" else _LENIENT_PREFIXES
    gold_l: list[list[str]] = []
    pred_l: list[list[str]] = []
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(
                f"sentence {i}: gold has {len(g)} tags but pred has {len(p)}; predictions must be aligned "
                "one tag per gold token"
            )
        for side, tags in (("gold", g), ("pred", p)):
            for j, tag in enumerate(tags):
                if tag != "O" and not (
                    isinstance(tag, str) and len(tag) > 2 and tag[0] in allowed and tag[1] == "-"
                ):
                    raise ValueError(
                        f"sentence {i} token {j}: {side} tag {tag!r} is not 'O' or '<prefix>-<TYPE>' with a "
                        f"prefix in {'/'.join(allowed)} ({mode} mode, scheme {scheme}); fix the tag or declare "
                        "the scheme the tags use"
                    )
        gold_l.append(list(g))
        pred_l.append(list(p))
    return gold_l, pred_l


def _bilou_as_iobes(sents: list[list[str]]) -> list[list[str]]:
    """Rename BILOU prefixes for seqeval's lenient reader: ``L-X`` -> ``E-X``, ``U-X`` -> ``S-X``."""
    rename = {"L": "E", "U": "S"}
    return [[rename[t[0]] + t[1:] if t[0] in rename and t[1:2] == "-" else t for t in s] for s in sents]


def _zero_scores(mode: str, scheme: str) -> dict:
    return {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "accuracy": 0.0,
        "per_type": {},
        "mode": mode,
        "scheme": scheme,
    }


def entity_scores(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    mode: str = "default",
    scheme: str = "IOB2",
) -> dict:
    """Micro-averaged entity precision, recall and F1 (fractions), token accuracy, and per-type scores.

    Args:
        gold: one tag sequence per sentence, e.g. ``[["B-PER", "I-PER", "O"], ...]``.
        pred: predicted tags, same number of sentences and tokens as ``gold``.
        mode: ``"default"`` (conlleval-compatible, lenient) or ``"strict"`` (only spans well formed in ``scheme``).
        scheme: ``IOB1``, ``IOB2``, ``IOE1``, ``IOE2``, ``IOBES`` or ``BILOU``; used by strict mode (strict
            IOE1 is refused, see the module docstring).

    Returns:
        ``{"precision", "recall", "f1", "accuracy", "per_type": {TYPE: {"precision", "recall", "f1",
        "support"}}, "mode", "scheme"}``. ``per_type`` has every type found in gold or pred (sorted);
        ``support`` is the number of gold spans. Undefined ratios are 0 (``zero_division=0``); empty input gives
        all zeros. ``accuracy`` is the share of tokens whose tag equals the gold tag.

    Raises:
        ValueError: the sentence counts differ, a sentence's lengths differ (the message names the sentence
            index and both lengths), or a tag is malformed for the mode and scheme.
        ConfigError: unknown ``mode`` or ``scheme``, or strict IOE1.

    >>> s = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    >>> s["precision"], s["recall"], round(s["f1"], 4), s["accuracy"]
    (1.0, 0.5, 0.6667, 0.75)
    >>> s["per_type"]["LOC"]
    {'precision': 0.0, 'recall': 0.0, 'f1': 0.0, 'support': 1}
    >>> entity_scores([["O", "I-PER"]], [["O", "I-PER"]])["f1"]
    1.0
    >>> entity_scores([["O", "I-PER"]], [["O", "I-PER"]], mode="strict", scheme="IOB2")["f1"]
    0.0
    """
    gold_l, pred_l = _check_inputs(gold, pred, mode, scheme)
    n_tokens = sum(len(s) for s in gold_l)
    if n_tokens == 0:
        return _zero_scores(mode, scheme)

    import seqeval.metrics.sequence_labeling as lenient_metrics
    import seqeval.metrics.v1 as strict_metrics
    import seqeval.scheme

    if mode == "strict":
        scheme_cls = getattr(seqeval.scheme, scheme)
        types = strict_metrics.unique_labels(gold_l, pred_l, scheme=scheme_cls)

        def prfs(average: str | None):
            return strict_metrics.precision_recall_fscore_support(
                gold_l, pred_l, average=average, zero_division=0, scheme=scheme_cls
            )
    else:
        # seqeval's lenient reader knows B/I/E/S only; read BILOU as IOBES.
        gold_l, pred_l = _bilou_as_iobes(gold_l), _bilou_as_iobes(pred_l)
        get_entities = lenient_metrics.get_entities
        types = sorted({name for name, _, _ in get_entities(gold_l) + get_entities(pred_l)})

        def prfs(average: str | None):
            return lenient_metrics.precision_recall_fscore_support(
                gold_l, pred_l, average=average, zero_division=0
            )

    if not types:  # no span in gold or pred: seqeval's averages would divide by zero
        return {**_zero_scores(mode, scheme), "accuracy": _accuracy(gold_l, pred_l, n_tokens)}
    # seqeval returns the per-type arrays in sorted type order, the order of ``types``.
    p, r, f, support = prfs(None)
    micro_p, micro_r, micro_f, _ = prfs("micro")
    per_type = {
        name: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]), "support": int(support[k])}
        for k, name in enumerate(types)
    }
    return {
        "precision": float(micro_p),
        "recall": float(micro_r),
        "f1": float(micro_f),
        "accuracy": _accuracy(gold_l, pred_l, n_tokens),
        "per_type": per_type,
        "mode": mode,
        "scheme": scheme,
    }


def _accuracy(gold: list[list[str]], pred: list[list[str]], n_tokens: int) -> float:
    """Share of tokens whose predicted tag equals the gold tag (conlleval's "accuracy")."""
    return (
        sum(gt == pt for g, p in zip(gold, pred, strict=True) for gt, pt in zip(g, p, strict=True)) / n_tokens
    )


def ner_report(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str) -> dict:
    """The per-split NER object a run's ``metrics.json`` stores.

    Returns ``{"precision", "recall", "f1", "f1_strict", "precision_strict", "recall_strict", "accuracy",
    "per_type"}``: ``precision/recall/f1/per_type`` from the default (conlleval) mode, the ``*_strict`` values
    from strict mode with ``scheme``; fractions.

    >>> r = ner_report([["O", "I-PER", "I-PER"]], [["O", "I-PER", "I-PER"]], "IOB2")
    >>> r["f1"], r["f1_strict"], r["accuracy"]
    (1.0, 0.0, 1.0)
    """
    lenient = entity_scores(gold, pred, mode="default", scheme=scheme)
    strict = entity_scores(gold, pred, mode="strict", scheme=scheme)
    return {
        "precision": lenient["precision"],
        "recall": lenient["recall"],
        "f1": lenient["f1"],
        "f1_strict": strict["f1"],
        "precision_strict": strict["precision"],
        "recall_strict": strict["recall"],
        "accuracy": lenient["accuracy"],
        "per_type": lenient["per_type"],
    }


def format_report(report: Mapping) -> str:
    """A fixed-width text table of a :func:`ner_report` (or :func:`entity_scores`) result, for the CLI.

    One row per type (precision, recall, f1, support), then the micro average, then a line with the strict
    F1, the token accuracy (each when present) and (when present) how many sentences argmax tagged invalidly.

    >>> print(format_report(ner_report([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "O"]], "IOB2")))
    type        precision  recall      f1  support
    LOC            0.0000  0.0000  0.0000        1
    PER            1.0000  1.0000  1.0000        1
    micro avg      1.0000  0.5000  0.6667        2
    strict f1: 0.6667  token accuracy: 0.6667
    """
    per_type = report.get("per_type", {})
    width = max([len("micro avg"), *(len(t) for t in per_type)]) + 3
    head = f"{'type':<{width}}{'precision':>9}{'recall':>8}{'f1':>8}{'support':>9}"

    def row(name: str, p: float, r: float, f: float, s: int) -> str:
        return f"{name:<{width}}{p:>9.4f}{r:>8.4f}{f:>8.4f}{s:>9d}"

    lines = [head]
    for name, sc in per_type.items():
        lines.append(row(name, sc["precision"], sc["recall"], sc["f1"], sc["support"]))
    total = sum(sc["support"] for sc in per_type.values())
    lines.append(row("micro avg", report["precision"], report["recall"], report["f1"], total))
    tail = []
    if "f1_strict" in report:
        tail.append(f"strict f1: {report['f1_strict']:.4f}")
    if "accuracy" in report:  # a span head's exact-match scores have no token accuracy
        tail.append(f"token accuracy: {report['accuracy']:.4f}")
    if report.get("invalid_sequences") is not None:
        tail.append(f"invalid argmax sequences: {report['invalid_sequences']}")
    if tail:
        lines.append("  ".join(tail))
    return "\n".join(lines)
