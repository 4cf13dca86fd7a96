"""Entity spans for the span head (``model.head: span``): sentences whose entities may overlap and nest.

A :class:`SpanSentence` holds words and spans ``(start, end, type)``, word indices, ``end`` exclusive. Three inputs:

- **Token spans** in JSON Lines: ``{"tokens": [...], "entities": [{"start": 0, "end": 2, "type": "DNA"}, ...]}``.
  GENIA's own keys are read as they are: ``entity_mentions`` for ``entities``, ``entity_type`` for ``type``
  (``{"tokens", "doc_id", "sent_id", "entity_mentions": [{"start", "end", "entity_type", "text"}]}``).
- **Character spans** over raw text: ``{"text": "...", "entities": [[start, end, "TYPE"], ...]}`` (objects with
  ``start``, ``end``, ``type`` also work). The text is split into words by
  :func:`seqtag.data.words.split_words` with the run's tokenizer, the splitting ``seqtag predict`` uses, and each
  span is mapped onto the words it covers. White space at a span's edges is dropped. A span whose start or end
  falls inside a word is an error naming ``file:line`` and the span, or, with ``data.on_misaligned=widen``, it
  is widened to the whole words and counted.
- **Flat tags** (CoNLL or JSONL with BIO/IOBES/BILOU tags, a Hub split): read by the NER readers, checked
  against the tag scheme, and decoded into spans (:func:`seqtag.data.schemes.spans`).

``data.train_articles`` / ``dev_articles`` / ``test_articles`` (``[start, end)``) split one file by documents:
records with the same ``doc_id``, numbered in order of first appearance (:func:`select_documents`).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from seqtag.config import DataConfig
from seqtag.data import schemes
from seqtag.data.files import check_readable_file
from seqtag.data.jsonl import json_records
from seqtag.data.ner import read_split as read_tagged_split
from seqtag.data.ner import source_scheme
from seqtag.data.sentence import validate_sentences
from seqtag.data.words import split_words
from seqtag.errors import DataError
from seqtag.paths import resolve

log = logging.getLogger(__name__)

Span = tuple[int, int, str]
"""``(start, end, type)``: word indices, ``end`` exclusive."""
ENTITY_KEYS = ("entities", "entity_mentions")
TYPE_KEYS = ("type", "entity_type")
MISALIGNED = ("error", "widen")


@dataclass(frozen=True)
class SpanSentence:
    """Words and their entity spans (``None``: unlabelled), where they came from, and for raw text the text and
    each word's ``(start, end)`` character offsets."""

    tokens: tuple[str, ...]
    spans: tuple[Span, ...] | None
    source: str = ""
    line: int = 0
    doc_id: str | None = None
    text: str | None = None
    offsets: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class SpanData:
    """The configured splits as span sentences, the entity types (sorted, from training) and counts worth logging."""

    splits: dict[str, list[SpanSentence]]
    types: list[str]
    notes: dict


def is_span_file(path: str | Path, encoding: str = "utf-8") -> bool:
    """Whether ``path`` is JSON(L) whose first record holds entity spans (an ``entities`` or ``entity_mentions``
    key) rather than tags."""
    if Path(path).suffix.lower() not in (".jsonl", ".json") or not Path(path).is_file():
        return False
    first = next(iter(json_records(path, encoding)), (0, None))[1]
    return isinstance(first, dict) and any(k in first for k in ENTITY_KEYS)


def _entity(raw: Any, loc: str, k: int) -> tuple[int, int, str]:
    """``(start, end, type)`` of one entity given as an object or a ``[start, end, type]`` list."""
    if isinstance(raw, dict):
        typ = next((raw[t] for t in TYPE_KEYS if t in raw), None)
        start, end = raw.get("start"), raw.get("end")
    elif isinstance(raw, list) and len(raw) == 3:
        start, end, typ = raw
    else:
        start = end = typ = None
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)) and isinstance(typ, str) and typ
    if not ok:
        raise DataError(f"{loc}: entity {k} is {raw!r:.80}; an entity is {{\"start\": INT, \"end\": INT, \"type\": "
                        f"STR}} (or entity_type) or [start, end, \"TYPE\"], end exclusive")
    return start, end, typ


def char_span_words(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int, bool] | None:
    """The words ``[i, j)`` that the characters ``[start, end)`` touch, and whether the span starts and ends on
    their edges (white space around it allowed); None when it covers no word.

    >>> offsets = [(0, 5), (6, 11)]   # "Hello world"
    >>> char_span_words(offsets, 0, 11), char_span_words(offsets, 5, 11), char_span_words(offsets, 2, 11)
    ((0, 2, True), (1, 2, True), (0, 2, False))
    """
    i = bisect.bisect_right([b for _, b in offsets], start)  # the first word ending after start
    j = bisect.bisect_left([a for a, _ in offsets], end)  # words starting before end
    if i >= j:
        return None
    return i, j, offsets[i][0] >= start and offsets[j - 1][1] <= end


def _text_sentence(record: dict, src: str, line: int, tokenizer, on_misaligned: str) -> tuple[SpanSentence, int]:
    loc = f"{src}:{line}"
    text = record["text"]
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{loc}: 'text' must be a non-empty string, got {text!r:.60}")
    words, offsets = split_words(text, tokenizer)
    spans, widened = [], 0
    for k, raw in enumerate(_entity_list(record, loc)):
        start, end, typ = _entity(raw, loc, k)
        if not 0 <= start < end <= len(text):
            raise DataError(f"{loc}: entity {k} [{start}, {end}) ({typ}) is outside the text's {len(text)} "
                            f"characters or empty; character offsets are 0-based, end exclusive")
        found = char_span_words(offsets, start, end)
        if found is None:
            raise DataError(f"{loc}: entity {k} [{start}, {end}) {text[start:end]!r} ({typ}) covers no word")
        i, j, exact = found
        if not exact:
            if on_misaligned != "widen":
                cut = offsets[i] if offsets[i][0] < start else offsets[j - 1]
                raise DataError(f"{loc}: entity {k} [{start}, {end}) {text[start:end]!r} ({typ}) cuts inside the "
                                f"word {text[cut[0]:cut[1]]!r} at [{cut[0]}, {cut[1]}); fix the offsets, or set "
                                f"data.on_misaligned=widen to widen such spans to whole words (they are counted)")
            widened += 1
        spans.append((i, j, typ))
    return SpanSentence(tuple(words), tuple(spans), src, line, record.get("doc_id"), text, tuple(offsets)), widened


def _entity_list(record: dict, loc: str) -> list:
    key = next((k for k in ENTITY_KEYS if k in record), None)
    if key is None:
        raise DataError(f"{loc}: the record has no {' or '.join(map(repr, ENTITY_KEYS))} key (its keys: "
                        f"{', '.join(map(repr, record))}); label every record or none")
    if not isinstance(record[key], list):
        raise DataError(f"{loc}: {key!r} must be a list of entities, got {record[key]!r:.60}")
    return record[key]


def _token_sentence(record: dict, src: str, line: int, tokens_key: str) -> SpanSentence:
    loc = f"{src}:{line}"
    tokens = record[tokens_key]
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t for t in tokens):
        raise DataError(f"{loc}: {tokens_key!r} must be a non-empty list of non-empty strings, got {tokens!r:.80}")
    spans = []
    for k, raw in enumerate(_entity_list(record, loc)):
        start, end, typ = _entity(raw, loc, k)
        if not 0 <= start < end <= len(tokens):
            raise DataError(f"{loc}: entity {k} [{start}, {end}) ({typ}) is outside the {len(tokens)} tokens or "
                            f"empty; token indices are 0-based, end exclusive")
        spans.append((start, end, typ))
    return SpanSentence(tuple(tokens), tuple(spans), src, line, record.get("doc_id"))


def read_span_file(path: str | Path, *, tokenizer=None, on_misaligned: str = "error", tokens_key: str = "tokens",
                   encoding: str = "utf-8", key: str | None = None) -> tuple[list[SpanSentence], int]:
    """Read a JSON(L) file of token-span or character-span records (module docstring); return the sentences and
    the number of character spans widened to word boundaries. Errors name ``file:line``."""
    check_readable_file(path, key)
    src, out, widened = str(path), [], 0
    for line, record in json_records(path, encoding):
        if not isinstance(record, dict):
            raise DataError(f"{src}:{line}: expected a JSON object, got {type(record).__name__}")
        if tokens_key in record:
            out.append(_token_sentence(record, src, line, tokens_key))
        elif "text" in record:
            sentence, n = _text_sentence(record, src, line, tokenizer, on_misaligned)
            out.append(sentence)
            widened += n
        else:
            raise DataError(f"{src}:{line}: the record has neither {tokens_key!r} (words, with token-index spans) nor "
                            f"'text' (raw text, with character spans); its keys: {', '.join(map(repr, record))}")
    if not out:
        raise DataError(f"no sentences in {src} (no JSON records)")
    return out, widened


def spans_from_tags(tags: Sequence[str], scheme: str) -> tuple[Span, ...]:
    """The spans of one flat tag sequence.

    >>> spans_from_tags(["B-PER", "I-PER", "O", "B-LOC"], "IOB2")
    ((0, 2, 'PER'), (3, 4, 'LOC'))
    """
    return tuple((a, b, typ) for typ, a, b in schemes.spans(list(tags), scheme))


def select_documents(sentences: list[SpanSentence], rng: Sequence[int], key: str) -> list[SpanSentence]:
    """The sentences of documents ``[start, end)``, documents numbered by first appearance of their ``doc_id``.

    >>> s = [SpanSentence(("a",), (), doc_id=d) for d in "xxyzz"]
    >>> [x.doc_id for x in select_documents(s, [1, 3], "data.dev_articles")]
    ['y', 'z', 'z']
    """
    if any(s.doc_id is None for s in sentences):
        first = next(s for s in sentences if s.doc_id is None)
        raise DataError(f"{key}: {first.source}:{first.line} has no 'doc_id', so the file cannot be split by "
                        f"documents; give every record a doc_id or drop {key}")
    order = {d: n for n, d in enumerate(dict.fromkeys(s.doc_id for s in sentences))}
    if rng[1] > len(order):
        raise DataError(f"{key}: [{rng[0]}, {rng[1]}) but {sentences[0].source} has {len(order)} documents")
    return [s for s in sentences if rng[0] <= order[s.doc_id] < rng[1]]


def read_span_split(data: DataConfig, split: str, tokenizer=None) -> tuple[list[SpanSentence], dict]:
    """One configured split as span sentences, and its notes (``widened`` character spans, the tag scheme of flat
    files and the tokens ``repaired`` under ``data.on_invalid=repair``)."""
    spec = getattr(data, split)
    notes: dict = {}
    path = resolve(spec, f"data.{split}") if data.format != "hub" else None
    if path is not None and is_span_file(path, data.encoding):
        sentences, notes["widened"] = read_span_file(path, tokenizer=tokenizer, on_misaligned=data.on_misaligned,
                                                     tokens_key=data.tokens_column, encoding=data.encoding,
                                                     key=f"data.{split}")
    else:
        tagged = read_tagged_split(data, split)
        scheme = source_scheme(data, tagged)
        tagged, notes["repaired"] = validate_sentences(tagged, scheme, data.on_invalid)
        notes["scheme"] = scheme
        sentences = [SpanSentence(s.tokens, spans_from_tags(s.tags, scheme), s.source, s.line) for s in tagged]
    rng = getattr(data, f"{split}_articles")
    if rng is not None:
        sentences = select_documents(sentences, rng, f"data.{split}_articles")
    limit = data.max_train_examples if split == "train" else data.max_eval_examples
    return sentences[:limit], notes


def load_span_data(data: DataConfig, tokenizer=None) -> SpanData:
    """Every configured split; the entity types are those of the training spans, and a dev/test type never seen
    in training is an error or, with ``data.unseen_labels=map_to_o``, dropped and counted."""
    splits, notes = {}, {}
    for split in ("train", "dev", "test"):
        if getattr(data, split):
            splits[split], notes[split] = read_span_split(data, split, tokenizer)
    types = sorted({t for s in splits["train"] for _, _, t in s.spans})
    if not types:
        raise DataError(f"data.train: {data.train} has no entity span in its {len(splits['train'])} sentences, so "
                        f"there is nothing to learn; check the file's 'entities' (or its tags)")
    for split in ("dev", "test"):
        if split in splits:
            splits[split], notes[split]["unseen_dropped"] = _drop_unseen(splits[split], set(types), split,
                                                                         data.unseen_labels)
    log.info("data.train: %d entity types: %s", len(types), ", ".join(types))
    return SpanData(splits, types, notes)


def _drop_unseen(sentences: list[SpanSentence], known: set[str], split: str, policy: str) -> tuple[list, int]:
    out, dropped = [], 0
    for s in sentences:
        kept = tuple(sp for sp in s.spans or () if sp[2] in known)
        if len(kept) != len(s.spans or ()):
            bad = next(sp for sp in s.spans if sp[2] not in known)
            if policy == "error":
                raise DataError(f"{s.source}:{s.line}: the {split} entity type {bad[2]!r} was never seen in training "
                                f"(known: {', '.join(sorted(known))}); fix the data, or set "
                                f"data.unseen_labels=map_to_o to drop such spans (counted and logged)")
            dropped += len(s.spans) - len(kept)
            s = replace(s, spans=kept)
        out.append(s)
    return out, dropped
