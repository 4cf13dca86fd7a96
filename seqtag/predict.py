"""Tagging new text with a finished run: batched, length-sorted, streamed from input to output.

The model, tokenizer and label set come from the run directory alone. Input is raw text (one text per line,
split into words by :func:`split_words`, which keeps character offsets), or pre-tokenised CoNLL/JSONL. Output
is JSONL (one object per input line, in input order) or CoNLL columns. Memory stays flat: the input is read
in chunks, each chunk is sorted by length, predicted and written before the next is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from seqtag.data import schemes
from seqtag.data.words import split_words
from seqtag.errors import DataError, SeqtagError


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
    """A loaded run: model, tokenizer, labels and window settings. Pure prediction over word lists."""

    model: torch.nn.Module
    tokenizer: object
    labels: list[str]
    scheme: str
    max_length: int
    stride: int
    batch_size: int = 64
    autocast: bool = False
    max_tokens: int = 4096

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices of windows grouped for the model: sorted by length (longest first, least padding), at most
        ``batch_size`` windows and at most ``max_tokens`` padded tokens per batch, so a batch of long windows is
        smaller and peak memory stays bounded whatever the input.

        >>> Tagger(None, None, [], "IOB2", 128, 16, batch_size=3, max_tokens=8).batches([2, 5, 1, 2, 2])
        [[1], [0, 3, 4], [2]]
        """
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        out: list[list[int]] = []
        for i in order:
            if out and len(out[-1]) < self.batch_size and lengths[out[-1][0]] * (len(out[-1]) + 1) <= self.max_tokens:
                out[-1].append(i)
            else:
                out.append([i])
        return out

    @torch.inference_mode()
    def tag(self, sentences: Sequence[Sequence[str]]) -> list[tuple[list[str], list[float]]]:
        """Tags and probabilities for every word of every sentence (windows merged, one tag per word)."""
        from seqtag.data.align import encode_sentences, merge_windows
        from seqtag.data.batching import collate

        if not sentences:
            return []
        enc = encode_sentences(self.tokenizer, sentences, None, max_length=self.max_length, stride=self.stride)
        preds: list = [None] * len(enc["input_ids"])
        scores: list = [None] * len(enc["input_ids"])
        device = next(self.model.parameters()).device
        for idx in self.batches([len(ids) for ids in enc["input_ids"]]):
            batch = collate([{"input_ids": enc["input_ids"][i]} for i in idx], self.tokenizer.pad_token_id)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.autocast):
                logits = self.model(input_ids=batch["input_ids"].to(device),
                                    attention_mask=batch["attention_mask"].to(device)).logits
            s, p = logits.float().softmax(-1).max(-1)
            for row, i in enumerate(idx):
                preds[i], scores[i] = p[row].tolist(), s[row].tolist()
        n = [len(s) for s in sentences]
        ids = merge_windows(enc["word_index"], enc["sentence_index"], preds, n)
        probs = merge_windows(enc["word_index"], enc["sentence_index"], scores, n)
        return [([self.labels[i] for i in row], pr) for row, pr in zip(ids, probs)]


def load_tagger(run_dir: str | Path, batch_size: int = 64, device: str | None = None,
                autocast: bool = False, max_tokens: int = 4096) -> Tagger:
    """Load a finished NER run for prediction (safetensors weights only)."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from seqtag.config import load_config
    from seqtag.runs import CONFIG_FILE, require_finished_run

    run_dir = require_finished_run(run_dir)
    cfg = load_config(run_dir / CONFIG_FILE)
    if cfg.task != "ner":
        raise SeqtagError(f"{run_dir} is a {cfg.task} run, not an NER run; use `seqtag predict --question ... --context ...`")
    tok = AutoTokenizer.from_pretrained(str(run_dir), use_fast=True)
    model = AutoModelForTokenClassification.from_pretrained(str(run_dir), use_safetensors=True)
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return Tagger(model, tok, labels, cfg.data.train_scheme, cfg.data.max_length, cfg.data.stride, batch_size,
                  autocast, max_tokens)


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
    ``scores`` and ``entities``, in input order, holding at most ``chunk_size`` records in memory."""
    for chunk in chunks(records, chunk_size):
        tagged = tagger.tag([r["words"] for r in chunk])
        for rec, (tags, probs) in zip(chunk, tagged):
            yield {**rec, "tags": tags, "scores": [round(p, 4) for p in probs],
                   "entities": entities(rec["words"], tags, probs, tagger.scheme, rec.get("offsets"), rec.get("text"))}


def read_records(path: str | Path, fmt: str, tokenizer=None) -> Iterator[dict]:
    """Input records for prediction: ``text`` (one text per line, split by :func:`split_words` with
    ``tokenizer``), ``conll`` or ``jsonl`` (pre-tokenised)."""
    from seqtag.data.conll import iter_conll, read_jsonl

    if fmt == "text":
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    text = raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as e:
                    raise DataError(f"{path}:{n}: byte 0x{raw[e.start]:02x} is not valid UTF-8; convert the file to "
                                    f"UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
                if n == 1:
                    text = text.removeprefix("\ufeff")  # a byte-order mark
                words, offsets = split_words(text, tokenizer)
                yield {"line": n, "text": text, "words": words, "offsets": offsets}
    elif fmt == "conll":
        for s in iter_conll(path, tag_column=None):
            yield {"line": s.line, "words": list(s.tokens)}
    else:
        for s in read_jsonl(path):
            yield {"line": s.line, "words": list(s.tokens)}


def write_record(f, rec: dict, fmt: str) -> None:
    if fmt == "conll":
        for w, t in zip(rec["words"], rec["tags"]):
            f.write(f"{w}\t{t}\n")
        f.write("\n")
    else:
        out = {k: rec[k] for k in ("line", "text", "words", "tags", "scores", "entities") if k in rec}
        f.write(json.dumps(out, ensure_ascii=False) + "\n")
