"""The parts of the model card that differ for a span-head run (``model.head: span``): what the model predicts,
how it was scored, and how to use it without seqtag (``transformers.pipeline()`` cannot read a span head).

The plain-PyTorch lines of :data:`SPAN_SCORES` compute the same scores as seqtag's head for a sentence that fits
in one window (``tests/publish/test_span_card.py`` runs them against :class:`seqtag.modeling.span_head.SpanTagger`).
"""

from __future__ import annotations

from seqtag.publish.card_facts import CardRun
from seqtag.publish.card_metadata import evaluated_splits

SPAN_SCORES = """\
import json, math, torch
from huggingface_hub import hf_hub_download
from safetensors import safe_open
from transformers import AutoModel, AutoTokenizer

repo = "{repo}"
tokenizer, encoder = AutoTokenizer.from_pretrained(repo), AutoModel.from_pretrained(repo).eval()
with safe_open(hf_hub_download(repo, "span_head.safetensors"), "pt") as f:
    meta, w = f.metadata(), {{k: f.get_tensor(k) for k in f.keys()}}
types, max_len = json.loads(meta["types"]), int(meta["max_span_length"])

def rope(x):  # rotary positions: pair t of word p turned by p * 10000^(-2t/d)
    d = x.shape[-1]
    angle = torch.arange(len(x))[:, None] * 10000.0 ** (-torch.arange(0, d, 2) / d)
    cos, sin = angle.cos().repeat_interleave(2, -1), angle.sin().repeat_interleave(2, -1)
    return x * cos + torch.stack([-x[:, 1::2], x[:, ::2]], -1).reshape(x.shape) * sin

words = {words}
enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
ids = enc.word_ids()
first = [i for i, v in enumerate(ids) if v is not None and (i == 0 or ids[i - 1] != v)]  # first subwords
with torch.no_grad():
    z = encoder(**enc).last_hidden_state[0, first] @ w["proj.weight"].T + w["proj.bias"]
    q, k = rope(z[:, ::2]), rope(z[:, 1::2])
    bias = (z @ w["type_bias.weight"].T + w["type_bias.bias"]) / 2  # per type: end bias, start bias
    scores = (q @ k.T / math.sqrt(q.shape[-1]))[None] + bias[:, 1::2].T[:, :, None] + bias[:, ::2].T[:, None, :]
n = len(first)  # scores[type, i, j]: the span of words i..j; predicted when above 0
print([(" ".join(words[i:j + 1]), types[c], round(float(scores[c, i, j].sigmoid()), 3))
       for c in range(len(types)) for i in range(n) for j in range(i, min(n, i + max_len)) if scores[c, i, j] > 0])"""

EXAMPLE_WORDS = ["IL-2", "gene", "expression", "requires", "NF-kappa", "B", "in", "T", "cells", "."]


def span_intro(base_text: str, data_text: str, types: list[str], max_span_length: int) -> str:
    return (f"Named entity recognition with nested entities ({', '.join(types) or 'no entity types'}): {base_text} "
            f"fine-tuned with a span head (Efficient GlobalPointer) on {data_text} with seqtag. For each of its "
            f"{len(types)} entity types it scores every span of up to {max_span_length} words, so entities may nest "
            f"(a DNA name holding a protein name) and overlap.")


def span_evaluation(run: CardRun) -> list[str]:
    """Exact-match span scores, one table per evaluated split."""
    lines = [f"Exact-match span precision, recall and F1: a predicted entity counts when its start, end and type all "
             f"match a gold entity; gold and predicted entities may nest. Decoding: {run.info.decoding or 'nested'} "
             "(a span is predicted when its score is above 0).", ""]
    for split in evaluated_splits(run.metrics):
        m = run.metrics[split]
        counts = run.info.windows.get(split)
        size = f", {counts.examples:,} sentences" if counts and counts.examples else ""
        lines += [f"### {split} ({split} split{size})", "",
                  "| entity type | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |"]
        for etype, s in sorted(m.per_type.items()):
            lines.append(f"| {etype} | {s.precision:.4f} | {s.recall:.4f} | {s.f1:.4f} | {s.support} |")
        lines += [f"| **micro average** | {m.precision:.4f} | {m.recall:.4f} | {m.f1:.4f} | "
                  f"{sum(s.support for s in m.per_type.values())} |", ""]
    return lines


def span_usage(run: CardRun, repo: str) -> list[str]:
    """How to use a span run: ``pipeline()`` cannot, seqtag can, and so can these lines of PyTorch."""
    max_length = run.config.data.max_length
    return [
        "## How to use", "",
        "This model has a span head (`model.head: span`): `model.safetensors` and `config.json` are the plain "
        "encoder (`AutoModel`), and `span_head.safetensors` holds the head's weights with its entity types and "
        "maximum span length in its metadata. **`transformers.pipeline()` cannot read a span head**: a "
        "token-classification pipeline would put a new, untrained classifier on the encoder.", "",
        f"`seqtag predict RUN_DIR --text \"...\"` (from a download of this repository) predicts the entities, with "
        f"character offsets, and splits texts longer than {max_length} subwords into windows. For a sentence that "
        "fits in one window, these lines of plain PyTorch compute the same scores:", "",
        "```python", SPAN_SCORES.format(repo=repo, words=EXAMPLE_WORDS), "```", "",
        "seqtag reads a word at its first subword, as here (for a tokenizer that writes a word-start marker as a "
        "subword of its own, `▁` or `Ġ`, at the subword after it).", ""]
