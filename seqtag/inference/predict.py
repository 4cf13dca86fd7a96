"""Tagging new text with a finished run: batched, length-sorted, streamed from input to output.

The model, tokenizer and label set come from the run directory alone. Input is raw text (one text per line,
split into words by :func:`split_words`, which keeps character offsets), or pre-tokenised CoNLL/JSONL. Output
is JSONL (one object per input line, in input order) or CoNLL columns. Memory stays flat: the input is read
in chunks, each chunk is sorted by length, predicted and written before the next is read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from seqtag.data import schemes
from seqtag.data.align import encode_sentences
from seqtag.data.conll import iter_conll, iter_text_lines
from seqtag.data.jsonl import read_jsonl
from seqtag.data.words import split_words
from seqtag.errors import SeqtagError
from seqtag.inference.engine import (
    DEFAULT_MAX_TOKENS,
    crf_transitions,
    decode_words,
    load_finished_run,
    word_logits,
)
from seqtag.inference.onnx import load_export
from seqtag.inference.span_decoding import SpanPredictor, predict_span_stream
from seqtag.modeling.accel import check_precision, warn_if_bf16_emulated
from seqtag.modeling.crf import load_transitions

log = logging.getLogger(__name__)


def warn_if_crf_argmax(crf: bool, decoding: str | None, what: str) -> bool:
    """Log a warning (and return True) when a CRF run (``crf``) is to be decoded by ``argmax``: its emission
    scores were trained together with its transitions and are not a tagger on their own. ``what`` names the run
    or config in the message."""
    if not crf or decoding != "argmax":
        return False
    log.warning("%s: a CRF run decoded by argmax: the CRF's emission scores were trained together with its "
                "transitions and are not a tagger on their own (expect many tag sequences the scheme forbids and a "
                "far lower F1). Decode it with viterbi (--decoding viterbi, predict.decoding=viterbi), which uses "
                "the CRF's learned transitions", what)
    return True


def entities(words: Sequence[str], tags: Sequence[str], scores: Sequence[float], scheme: str,
             offsets: Sequence[tuple[int, int]] | None = None, text: str | None = None) -> list[dict]:
    """Entity spans of one tagged sentence, with a confidence (mean word probability over the span).

    >>> entities(["Ada", "Lovelace", "wrote"], ["B-PER", "I-PER", "O"], [0.9, 0.7, 0.99], "IOB2")
    [{'type': 'PER', 'text': 'Ada Lovelace', 'start_token': 0, 'end_token': 2, 'score': 0.8}]
    """
    out = []
    for typ, a, b in schemes.spans(list(tags), scheme):
        ent = {"type": typ, "text": " ".join(words[a:b]), "start_token": a, "end_token": b,
               "score": round(sum(scores[a:b]) / (b - a), 4)}
        if offsets is not None:
            ent["start"], ent["end"] = offsets[a][0], offsets[b - 1][1]
            if text is not None:
                ent["text"] = text[ent["start"]:ent["end"]]
        out.append(ent)
    return out


@dataclass
class Tagger:
    """A model, tokenizer, labels and window settings: prediction over word lists, through the same inference
    path and decoding as training's evaluation (:func:`seqtag.inference.engine.word_logits`,
    :func:`seqtag.inference.engine.decode_words`; a CRF model decodes with its transitions)."""

    model: torch.nn.Module
    tokenizer: object
    labels: list[str]
    scheme: str
    max_length: int
    stride: int
    batch_size: int = 64
    autocast: bool = False
    max_tokens: int = DEFAULT_MAX_TOKENS
    accelerator: object = None  # under `accelerate launch`: batches are shared out, every process gets all results
    decoding: str = "argmax"  # argmax | viterbi (predict.decoding)
    transitions: tuple | None = None  # a CRF's (transitions, start, end) when the model does not hold them (ONNX)

    def tag(self, sentences: Sequence[Sequence[str]]) -> list[tuple[list[str], list[float]]]:
        """Tags and probabilities for every word of every sentence (windows merged, one tag per word)."""
        if not sentences:
            return []
        enc = encode_sentences(self.tokenizer, sentences, None, max_length=self.max_length, stride=self.stride)
        logits = word_logits(self.model, enc, [len(s) for s in sentences], self.tokenizer.pad_token_id,
                             batch_size=self.batch_size, max_tokens=self.max_tokens, autocast=self.autocast,
                             accelerator=self.accelerator)
        tags, scores = decode_words(logits, self.labels, self.scheme, self.decoding,
                                    self.transitions or crf_transitions(self.model))
        return list(zip(tags, scores, strict=True))


def load_tagger(run_dir: str | Path, batch_size: int = 64, device: str | None = None,
                autocast: bool = False, max_tokens: int = DEFAULT_MAX_TOKENS, accelerator=None,
                decoding: str | None = None) -> Tagger | SpanPredictor:
    """Load a finished NER run for prediction (safetensors weights only).

    Precision: fp32, or bf16 autocast with ``autocast`` (``seqtag predict --bf16``: an error on a GPU without bf16,
    a warning on a CPU that emulates it); with an ``accelerator`` (several processes), its device and mixed
    precision. This is not the run's ``train.mixed_precision``, which training's dev/test scores and ``seqtag
    evaluate`` run at (:mod:`seqtag.inference.engine`, "Precision"). ``decoding`` overrides the run's
    ``predict.decoding`` (argmax on a CRF run is warned about). A span-head run gives a
    :class:`~seqtag.inference.span_decoding.SpanPredictor` (entities that may nest).
    """
    if autocast and accelerator is None:
        warn_if_bf16_emulated(check_precision("bf16", "--bf16"))
    run = load_finished_run(run_dir, str(accelerator.device) if accelerator is not None else device)
    if run.cfg.task != "ner":
        raise SeqtagError(f"{run.run_dir} is a {run.cfg.task} run, not an NER run; use `seqtag predict --question ... "
                          "--context ...`")
    if run.cfg.model.head != "span" and decoding in ("nested", "flat"):
        raise SeqtagError(f"--decoding {decoding} is for span-head runs (model.head=span); {run.run_dir} tags "
                          "words: use argmax or viterbi")
    if run.cfg.model.head == "span":
        if decoding in ("argmax", "viterbi"):
            raise SeqtagError(f"{run.run_dir} has a span head; --decoding {decoding} is for token heads, use nested "
                              "or flat")
        d = run.cfg.data
        return SpanPredictor(run.model, run.tokenizer, run.labels, d.max_length, d.stride, run.cfg.model.max_span_length,
                             batch_size, autocast, max_tokens, accelerator, decoding or run.cfg.predict.decoding)
    decoding = decoding or run.cfg.predict.decoding
    warn_if_crf_argmax(run.cfg.model.head == "crf", decoding, str(run.run_dir))
    return Tagger(run.model, run.tokenizer, run.labels, run.cfg.data.train_scheme, run.cfg.data.max_length,
                  run.cfg.data.stride, batch_size, autocast, max_tokens, accelerator, decoding)


def load_onnx_tagger(export_dir: str | Path, batch_size: int = 64, max_tokens: int = DEFAULT_MAX_TOKENS,
                     threads: int | None = None, decoding: str | None = None) -> Tagger:
    """Load an export directory (``seqtag export``) for prediction with ONNX Runtime on CPU: the same windows,
    batching, merging and decoding as a torch run (a CRF run's transitions come from its transitions file)."""
    if decoding in ("nested", "flat"):
        raise SeqtagError(f"--decoding {decoding} is for span-head runs, which are not exported; {export_dir} tags "
                          "words: use argmax or viterbi")
    exp = load_export(export_dir, threads)
    transitions = None
    if exp.crf_transitions is not None:
        transitions = tuple(load_transitions(exp.crf_transitions, exp.labels)[1:])
    decoding = decoding or exp.decoding
    warn_if_crf_argmax(transitions is not None, decoding, str(export_dir))
    return Tagger(exp.model, exp.tokenizer, exp.labels, exp.scheme, exp.max_length, exp.stride, batch_size, False,
                  max_tokens, None, decoding, transitions)


def chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_stream(tagger: Tagger, records: Iterable[dict], chunk_size: int = 2048) -> Iterator[dict]:
    """Tag a stream of records ``{"words", ["offsets", "text", "id"]}`` and yield them with ``tags``,
    ``scores`` and ``entities``, in input order, holding at most ``chunk_size`` records in memory. A span-head
    run's records get ``entities`` only (they may overlap: no tag per word can hold them)."""
    if isinstance(tagger, SpanPredictor):
        yield from predict_span_stream(tagger, records, chunk_size)
        return
    for chunk in chunks(records, chunk_size):
        tagged = tagger.tag([r["words"] for r in chunk])
        for rec, (tags, probs) in zip(chunk, tagged):
            yield {**rec, "tags": tags, "scores": [round(p, 4) for p in probs],
                   "entities": entities(rec["words"], tags, probs, tagger.scheme, rec.get("offsets"), rec.get("text"))}


def read_records(path: str | Path, fmt: str, tokenizer=None, encoding: str = "utf-8") -> Iterator[dict]:
    """Input records for prediction: ``text`` (one text per line, split by :func:`split_words` with
    ``tokenizer``), ``conll`` or ``jsonl`` (pre-tokenised). Errors name ``file:line``."""
    if fmt == "text":
        for n, text in iter_text_lines(path, encoding):
            words, offsets = split_words(text, tokenizer)
            yield {"line": n, "text": text, "words": words, "offsets": offsets}
    elif fmt == "conll":
        for s in iter_conll(path, tag_column=None, encoding=encoding):
            yield {"line": s.line, "words": list(s.tokens)}
    else:
        for s in read_jsonl(path, tags_key=None, encoding=encoding):
            yield {"line": s.line, "words": list(s.tokens)}


def format_record(rec: dict, fmt: str) -> str:
    """One predicted record as output text: a JSON line (``jsonl``) or CoNLL columns and a blank line (``conll``).

    >>> format_record({"words": ["Ada"], "tags": ["B-PER"], "scores": [0.9], "entities": []}, "conll")
    'Ada\\tB-PER\\n\\n'
    """
    if fmt == "conll":
        if "tags" not in rec:
            raise SeqtagError("--output-format conll writes one tag per word, which cannot hold the overlapping "
                              "entities of a span-head run; use --output-format jsonl")
        return "".join(f"{w}\t{t}\n" for w, t in zip(rec["words"], rec["tags"])) + "\n"
    out = {k: rec[k] for k in ("line", "text", "words", "tags", "scores", "entities") if k in rec}
    return json.dumps(out, ensure_ascii=False) + "\n"
