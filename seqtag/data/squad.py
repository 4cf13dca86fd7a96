"""Read extractive-QA data (SQuAD v1.1 and 2.0 JSON, JSON lines, a saved or hub `datasets` dataset) into
:class:`QAExample`.

Every reader checks each answer against its context: ``context[answer_start:answer_start + len(text)]`` must
equal ``text``. A mismatch raises :class:`~seqtag.errors.DataError` naming the file, the question id and both
strings, and, when the text occurs elsewhere in the context, the offset of the nearest occurrence.

SQuAD 2.0: a question is unanswerable when its ``answers`` list is empty (the official evaluator's rule; the Hub's
``squad_v2`` has ``{"text": [], "answer_start": []}``). An optional ``is_impossible: true`` must agree (no answers);
``plausible_answers`` (given for unanswerable questions) are checked like answers and kept in
:attr:`QAExample.plausible_answers` for analysis only: nothing trains or scores on them. A QA run reads
unanswerable questions only with ``data.allow_unanswerable: true`` (:func:`check_answered`).

The SQuAD v1.1 train set is not available offline, so the project trains and evaluates QA on an article-level
split of the dev set (:func:`split_articles`: articles 1-38 for training, 39-48 for evaluation).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqtag.data.files import check_readable_file, decode_text
from seqtag.data.hub_datasets import load_split
from seqtag.data.words import check_text
from seqtag.errors import ConfigError, DataError, where
from seqtag.paths import resolve

QA_FORMATS = ("auto", "squad", "jsonl")
"""Values of ``fmt`` accepted by :func:`read_qa`."""


@dataclass(frozen=True)
class QAExample:
    """One question about one context.

    ``answers`` holds ``(text, answer_start)`` pairs, ``answer_start`` a character offset into ``context``;
    training uses the first answer, evaluation all of them. It is empty for an unanswerable (SQuAD 2.0) question
    and for a question to answer (prediction). ``plausible_answers``: SQuAD 2.0's plausible but wrong answers of
    an unanswerable question, same form, for analysis only.
    """

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    title: str = ""
    plausible_answers: tuple[tuple[str, int], ...] = ()


# ---------------------------------------------------------------------------------------------------------------
# validation shared by all readers


def _require(record: Mapping[str, Any], key: str, loc: str, what: str = "record") -> Any:
    if not isinstance(record, Mapping):
        raise DataError(f"{loc}: expected a JSON object for the {what}, got {type(record).__name__}.")
    if key not in record:
        raise DataError(
            f"{loc}: the {what} has no key {key!r} (keys: {sorted(record)}). "
            f"Add {key!r}; see the SQuAD v1.1 format in seqtag/data/squad.py."
        )
    return record[key]


def _nearest_occurrence(context: str, text: str, start: int) -> int | None:
    """Offset of the occurrence of ``text`` in ``context`` closest to ``start`` (earliest on ties), or None.

    >>> _nearest_occurrence("a cat and a cat", "cat", 9)
    12
    >>> _nearest_occurrence("a cat", "dog", 0) is None
    True
    """
    best = None
    i = context.find(text)
    while i != -1 and text:
        if best is None or abs(i - start) < abs(best - start):
            best = i
        i = context.find(text, i + 1)
    return best


def check_answer(context: str, text: Any, start: Any, loc: str, qid: str) -> tuple[str, int]:
    """Return ``(text, start)`` after checking that ``context[start:start+len(text)] == text``.

    Raises :class:`DataError` naming ``loc`` (file or file:line), the question id and the mismatch.
    """
    if not isinstance(text, str):
        raise DataError(f"{loc}: question {qid!r}: answer text must be a string, got {text!r}.")
    if isinstance(start, bool) or not isinstance(start, int):
        raise DataError(f"{loc}: question {qid!r}: answer_start must be an integer, got {start!r}.")
    found = context[start : start + len(text)] if start >= 0 else None
    if found != text:
        near = _nearest_occurrence(context, text, start)
        hint = (
            f"The text occurs at offset {near}: set answer_start to {near} if that is the intended span."
            if near is not None
            else "The text does not occur anywhere in the context: fix the answer text or the context."
        )
        raise DataError(
            f"{loc}: question {qid!r}: answer_start={start} does not match the answer text: "
            f"context[{start}:{start + len(text)}] is {found!r} but the text is {text!r}. {hint}"
        )
    return text, start


def _flat_answers(answers: Any, key: str, context: str, loc: str, qid: str) -> tuple[tuple[str, int], ...]:
    """``{"text": [...], "answer_start": [...]}`` (the value of ``key``) as checked ``(text, start)`` pairs."""
    texts = _require(answers, "text", loc, what=f"{key!r} object")
    starts = _require(answers, "answer_start", loc, what=f"{key!r} object")
    if not isinstance(texts, list | tuple) or not isinstance(starts, list | tuple) or len(texts) != len(starts):
        raise DataError(f"{loc}: question {qid!r}: {key}.text and {key}.answer_start must be lists of equal length, "
                        f"got {texts!r} and {starts!r}.")
    return tuple(check_answer(context, t, s, loc, qid) for t, s in zip(texts, starts, strict=True))


def _check_impossible(qa: Mapping[str, Any], answers: tuple, loc: str, qid: str) -> None:
    """SQuAD 2.0's ``is_impossible``, when present, must be a boolean that agrees with the answers."""
    flag = qa.get("is_impossible", None)
    if flag is None:
        return
    if not isinstance(flag, bool):
        raise DataError(f"{loc}: question {qid!r}: is_impossible must be true or false, got {flag!r}.")
    if flag and answers:
        raise DataError(f"{loc}: question {qid!r}: is_impossible is true but it lists {len(answers)} answers; an "
                        "unanswerable question has an empty 'answers' list (its answers go in 'plausible_answers').")


def _example_from_record(rec: Mapping[str, Any], loc: str, title: str = "") -> QAExample:
    """A flat record ``{"id","question","context","answers": {"text": [...], "answer_start": [...]}}`` (optional
    ``"title"``, ``"is_impossible"`` and ``"plausible_answers"`` in the form of ``"answers"``)."""
    qid = str(_require(rec, "id", loc))
    question = _require(rec, "question", loc)
    context = _require(rec, "context", loc)
    answers = _require(rec, "answers", loc)
    if not isinstance(question, str) or not isinstance(context, str):
        raise DataError(f"{loc}: question {qid!r}: 'question' and 'context' must be strings.")
    check_text(question, f"{loc}: question {qid!r}", "the question")
    check_text(context, f"{loc}: question {qid!r}", "the context")
    pairs = _flat_answers(answers, "answers", context, loc, qid)
    _check_impossible(rec, pairs, loc, qid)
    plausible = rec.get("plausible_answers")
    plausible = _flat_answers(plausible, "plausible_answers", context, loc, qid) if plausible else ()
    return QAExample(qid, question, context, pairs, str(rec.get("title", title) or ""), plausible)


def _check_unique(examples: list[QAExample], source: object) -> list[QAExample]:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise DataError(
                f"{source}: question id {ex.id!r} occurs more than once; question ids must be unique."
            )
        seen.add(ex.id)
    if not examples:
        raise DataError(f"{source}: no questions found; the file is empty or has no 'qas'.")
    return examples


# ---------------------------------------------------------------------------------------------------------------
# SQuAD v1.1 JSON


def _load_json_text(path: Path, encoding: str = "utf-8") -> str:
    check_readable_file(path)
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as z:
                members = [
                    n for n in z.namelist() if n.lower().endswith(".json") and not n.startswith("__MACOSX/")
                ]
                if len(members) != 1:
                    raise DataError(
                        f"{path}: expected exactly one .json file inside the zip, found {members or 'none'}. "
                        "Unzip it and pass the JSON file instead."
                    )
                return decode_text(z.read(members[0]), encoding, f"{path}:{members[0]}")
        except zipfile.BadZipFile as e:
            raise DataError(f"{path}: not a valid zip file ({e}).") from e
    return decode_text(path.read_bytes(), encoding, str(path))


def squad_articles(path: str | Path, encoding: str = "utf-8") -> list[dict]:
    """The raw ``data`` list (articles) of a SQuAD v1.1 ``.json`` or ``.zip``, as the official metric reads it."""
    path = Path(path)
    text = _load_json_text(path, encoding)
    if not text.strip():
        raise DataError(f"{path}: the file is empty; expected SQuAD v1.1 JSON with a 'data' list.")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{where(path, e.lineno)}: not valid JSON ({e.msg}). For one record per line use a .jsonl file."
        ) from e
    data = _require(obj, "data", str(path), what="top-level object")
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: 'data' must be a non-empty list of articles.")
    return data


def examples_from_articles(
    articles: Iterable[Mapping[str, Any]], source: object = "<articles>"
) -> list[QAExample]:
    """Flatten SQuAD articles (``[{"title", "paragraphs": [{"context", "qas": [...]}]}]``) into examples.

    ``source`` names the origin in error messages (the file path). Every answer is checked against its context.
    """
    examples = []
    for a, art in enumerate(articles):
        loc_a = f"{source}: data[{a}]"
        title = str(art.get("title", "")) if isinstance(art, Mapping) else ""
        for p, para in enumerate(_require(art, "paragraphs", loc_a, what="article")):
            loc_p = f"{loc_a}.paragraphs[{p}]"
            context = _require(para, "context", loc_p, what="paragraph")
            if isinstance(context, str):
                check_text(context, loc_p, "the context")
            for q, qa in enumerate(_require(para, "qas", loc_p, what="paragraph")):
                loc_q = f"{loc_p}.qas[{q}]"
                qid = str(_require(qa, "id", loc_q, what="question"))
                question = _require(qa, "question", loc_q, what="question")
                if isinstance(question, str):
                    check_text(question, loc_q, "the question")
                answers = _nested_answers(_require(qa, "answers", loc_q, what="question"), context, loc_q, source, qid)
                _check_impossible(qa, answers, loc_q, qid)
                plausible = _nested_answers(qa.get("plausible_answers") or [], context, loc_q, source, qid,
                                            "plausible_answers")
                examples.append(QAExample(qid, question, context, answers, title, plausible))
    return _check_unique(examples, source)


def _nested_answers(answers: Any, context: str, loc_q: str, source: object, qid: str,
                    key: str = "answers") -> tuple[tuple[str, int], ...]:
    """SQuAD JSON's ``[{"text", "answer_start"}, ...]`` as checked ``(text, start)`` pairs."""
    if not isinstance(answers, list):
        raise DataError(f"{loc_q}: question {qid!r}: {key!r} must be a list, got {type(answers).__name__}.")
    out = []
    for k, ans in enumerate(answers):
        loc_k = f"{loc_q}.{key}[{k}]"
        t = _require(ans, "text", loc_k, what="answer")
        s = _require(ans, "answer_start", loc_k, what="answer")
        out.append(check_answer(context, t, s, str(source), qid))
    return tuple(out)


def read_squad(path: str | Path, encoding: str = "utf-8") -> list[QAExample]:
    """Read SQuAD v1.1 JSON (nested ``data/paragraphs/qas``) from a ``.json`` file or a ``.zip`` holding one."""
    return examples_from_articles(squad_articles(path, encoding), source=Path(path))


def split_articles(
    data: list[dict], train_articles: Iterable[int] = range(0, 38)
) -> tuple[list[dict], list[dict]]:
    """Split articles by index into ``(train_data, eval_data)``; eval gets every article not in ``train_articles``.

    The default is the project's benchmark split of the SQuAD v1.1 dev set (48 articles): articles 1-38
    (indices 0..37) for training, 39-48 (indices 38..47) for evaluation. Both lists keep file order.

    >>> tr, ev = split_articles([{"title": str(i)} for i in range(5)], train_articles=[0, 2])
    >>> [a["title"] for a in tr], [a["title"] for a in ev]
    (['0', '2'], ['1', '3', '4'])
    """
    idx = sorted(set(train_articles))
    bad = [i for i in idx if not 0 <= i < len(data)]
    if bad:
        raise DataError(
            f"train_articles has indices {bad[:5]} outside the {len(data)} articles of the data "
            f"(valid: 0..{len(data) - 1}). Pass article indices that exist in this file."
        )
    chosen = set(idx)
    return [data[i] for i in idx], [a for i, a in enumerate(data) if i not in chosen]


# ---------------------------------------------------------------------------------------------------------------
# JSON lines, dispatch, datasets


def read_squad_jsonl(path: str | Path, encoding: str = "utf-8") -> list[QAExample]:
    """Read one record per line: ``{"id","question","context","answers": {"text": [...], "answer_start": [...]}}``
    (optional ``"title"``). Blank lines are skipped; errors name ``file:line``."""
    path = Path(path)
    check_readable_file(path)
    examples = []
    text = decode_text(path.read_bytes(), encoding, str(path))
    for lineno, line in enumerate(io.StringIO(text, newline=None), start=1):  # universal newlines, as open() reads
        if not line.strip():
            continue
        loc = where(path, lineno)
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{loc}: not valid JSON ({e.msg}); each line must hold one JSON object."
            ) from e
        examples.append(_example_from_record(rec, loc))
    return _check_unique(examples, path)


def read_qa(path: str | Path, fmt: str = "auto", encoding: str = "utf-8") -> list[QAExample]:
    """Read QA examples; ``fmt="auto"`` picks SQuAD JSON for ``.json``/``.zip`` and JSON lines for ``.jsonl``."""
    path = Path(path)
    if fmt not in QA_FORMATS:
        raise DataError(f"unknown QA format {fmt!r} for {path}; choose one of {QA_FORMATS}.")
    if fmt == "auto":
        suffix = path.suffix.lower()
        if suffix in (".json", ".zip"):
            fmt = "squad"
        elif suffix == ".jsonl":
            fmt = "jsonl"
        else:
            raise DataError(
                f"{path}: cannot tell the QA format from the extension {suffix!r}; use .json/.zip (SQuAD) or "
                f".jsonl, or pass fmt='squad' or fmt='jsonl'."
            )
    return read_squad(path, encoding) if fmt == "squad" else read_squad_jsonl(path, encoding)


def load_hub_qa(name_or_path: str | Path, split: str) -> list[QAExample]:
    """Load a QA dataset with `datasets` (records shaped like :func:`read_squad_jsonl`'s) and return one split.

    The split is opened by :func:`seqtag.data.hub_datasets.load_split` (a ``save_to_disk`` directory, or
    ``load_dataset(name_or_path, split=split)``, which needs the dataset in the local cache when offline).
    """
    ds = load_split(name_or_path, split)
    source = f"{name_or_path}[{split}]"
    examples = [_example_from_record(rec, f"{source} row {i}") for i, rec in enumerate(ds)]
    return _check_unique(examples, source)


# ---------------------------------------------------------------------------------------------------------------
# the configured splits of a QA run, and questions to answer


def check_answered(examples: Sequence[QAExample], source: object, evaluate_at: str | None = None) -> None:
    """Refuse unanswerable questions in a run that reads SQuAD v1.1 (``data.allow_unanswerable: false``).

    The fix the message gives depends on the command. Training (``evaluate_at`` None) would learn to answer ""
    and tune the no-answer threshold on ``data.dev`` (0.5 without a dev split). ``seqtag evaluate`` trains and
    tunes nothing: ``evaluate_at`` says at which threshold it would score them, e.g. ``"--null-threshold 0.3"``.
    """
    missing = [ex.id for ex in examples if not ex.answers]
    if not missing:
        return
    if evaluate_at is None:
        fix = ('Set data.allow_unanswerable=true to train and score unanswerable questions (the model learns to answer '
               '"" and the no-answer threshold is tuned on data.dev, 0.5 without a dev split), or remove those '
               "questions")
    else:
        fix = ("To score them, add data.allow_unanswerable=true: evaluate tunes no threshold and scores them with the "
               f"SQuAD 2.0 evaluator at {evaluate_at}. Or remove those questions")
    raise DataError(f"{source}: {len(missing):,} of {len(examples):,} questions have no answer (first: "
                    f"{missing[0]!r}), as in SQuAD 2.0; this run reads SQuAD v1.1, where every question has one. "
                    + fix)


def read_split(data, split: str, articles_cache: dict | None = None,
               evaluate_at: str | None = None) -> tuple[list[QAExample], list[dict] | None]:
    """Examples of one configured split (``data.train``/``dev``/``test``) and, for a SQuAD file, its articles.

    ``data.<split>_articles = [start, end)`` selects those articles of a SQuAD ``.json``/``.zip`` (e.g. train
    ``[0, 38]`` and dev ``[38, 48]`` of the same file). ``articles_cache`` (path -> articles) avoids parsing a file
    twice. No example limit is applied here. Unanswerable questions are refused unless
    ``data.allow_unanswerable`` (:func:`check_answered`; ``evaluate_at`` when ``seqtag evaluate`` reads the split).
    """
    examples, articles = _read_split(data, split, articles_cache)
    if not data.allow_unanswerable:
        check_answered(examples, f"data.{split}", evaluate_at)
    return examples, articles


def _read_split(data, split: str, articles_cache: dict | None) -> tuple[list[QAExample], list[dict] | None]:
    spec = getattr(data, split)
    rng = getattr(data, f"{split}_articles")
    if data.format == "hub":
        if rng is not None:
            raise ConfigError(f"data.{split}_articles selects articles of a SQuAD file; it cannot be used with "
                              "data.format=hub. Remove it")
        return load_hub_qa(resolve(data.hub_dataset, "data.hub_dataset"), spec), None
    path = resolve(spec, f"data.{split}")
    check_readable_file(path, f"data.{split}")
    fmt = data.format if data.format in ("squad", "jsonl") else "auto"
    if data.format == "conll":
        raise ConfigError("data.format=conll is for NER; QA reads squad (.json/.zip), jsonl or hub")
    if fmt == "auto":
        fmt = "squad" if path.lower().endswith((".json", ".zip")) else "jsonl" if path.lower().endswith(".jsonl") \
            else None
        if fmt is None:
            raise DataError(f"data.{split}: cannot tell the QA format of {path}; use .json/.zip (SQuAD) or .jsonl, "
                            "or set data.format=squad or jsonl")
    if fmt == "jsonl":
        if rng is not None:
            raise ConfigError(f"data.{split}_articles selects articles of a SQuAD file; {path} is JSON lines. "
                              "Remove it")
        return read_qa(path, "jsonl", encoding=data.encoding), None
    cache = articles_cache if articles_cache is not None else {}
    if path not in cache:
        cache[path] = squad_articles(path, data.encoding)
    articles = cache[path]
    if rng is None:
        return examples_from_articles(articles, source=path), articles
    start, end = rng
    if end > len(articles):
        raise ConfigError(f"data.{split}_articles={rng} but {path} has {len(articles)} articles; use an end of at "
                          f"most {len(articles)}")
    chosen = articles[start:end]
    return examples_from_articles(chosen, source=f"{path} articles [{start}, {end})"), chosen


def read_question_records(path: str | Path) -> Iterator[dict]:
    """JSONL records ``{"question", "context"[, "id"]}``, checked; errors name ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--input {path} does not exist")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where(path, lineno)}: not valid JSON ({e.msg}); each line must hold one "
                                'object {"question": ..., "context": ...}') from None
            if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) for k in ("question", "context")):
                raise DataError(f"{where(path, lineno)}: each line needs string fields 'question' and 'context' "
                                '(and optionally "id"), e.g. {"id": "q1", "question": "Who?", "context": "Ada did."}')
            for key in ("question", "context"):
                check_text(rec[key], where(path, lineno), f"the {key}")
            yield rec
