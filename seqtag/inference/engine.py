"""One inference path for NER and QA: the model of a finished run, token-budget batches, the logits of every
window (also spread over several processes), the word-level scores of NER windows, and how they become tags.

Training's evaluation, ``seqtag evaluate`` and ``seqtag predict`` all run through :func:`window_logits`, and NER
through :func:`word_logits` and :func:`decode_words`, so a run is scored and used with the same batching,
window merging and decoding; the logits are float32 whatever the precision the model ran at.

**Precision** is the one thing the entry points choose differently. Training's dev/test scores and ``seqtag
evaluate`` run the model at the run's ``train.mixed_precision``, resolved on the machine that evaluates
(:func:`seqtag.modeling.accel.inference_precision`: ``auto`` is bf16 on a GPU with bf16 or a CPU with AMX, fp16 on
other GPUs, else fp32; fp16 without a GPU and bf16 on a GPU without it fall back to fp32). ``seqtag predict`` runs
fp32, or bf16 autocast with ``--bf16``, whatever the run was trained with. For a run trained in fp32 the three
compute the same logits; for a run trained in bf16 or fp16, ``predict`` without ``--bf16`` computes them in fp32,
so its scores can differ from ``evaluate``'s by the half-precision rounding, and a tag where two labels are nearly
tied.

**Decoding** (``predict.decoding``). ``argmax``: each word's most probable tag (on a CRF run: the argmax of its
emission scores, what ``transformers.pipeline()`` gives). ``viterbi``: the best whole tag sequence of each
sentence that the tag scheme allows. On a softmax run that is :func:`seqtag.modeling.decoding.constrained_decode` over
the word-level log-probabilities; on a CRF run, Viterbi with the CRF's learned transitions (and its ``-inf``
forbidden moves). Windows first: every word takes its scores from the window that owns it, then each whole
sentence is decoded, with start and end scores at its true ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqtag.config import DECODINGS, Config, load_config
from seqtag.data.align import merge_windows
from seqtag.data.batching import collate
from seqtag.data.schemes import find_problems
from seqtag.errors import SeqtagError
from seqtag.modeling.decoding import constrained_decode, pad_rows, viterbi
from seqtag.modeling.heads import crf_of, load_crf_tagger
from seqtag.modeling.span_head import load_span_tagger
from seqtag.runs import CONFIG_FILE, RunInfo, read_run_info, require_finished_run, run_fix

DEFAULT_MAX_TOKENS = 4096
"""Padded subword tokens per inference batch: bounds peak memory whatever the input lengths."""

MODEL_INPUTS = ("input_ids", "token_type_ids")
TOKEN_DECODINGS = tuple(d for d in DECODINGS if d not in ("nested", "flat"))  # those of the span head: span_decoding


@dataclass
class FinishedRun:
    """A finished run loaded for inference."""

    run_dir: Path
    cfg: Config
    info: RunInfo
    model: torch.nn.Module  # in eval mode; a CRFTagger (model.head=crf) or a SpanTagger (model.head=span)
    tokenizer: Any
    labels: list[str] | None  # token-classification labels (NER, QA tagging head); entity types (span head); None for the pointer head

    @property
    def head(self) -> str:
        return self.cfg.data.qa_head if self.cfg.task == "qa" else "ner"


def load_finished_run(run_dir: str | Path, device: str | None = None) -> FinishedRun:
    """Load the model, tokenizer, config and record of a finished run (safetensors weights only); a CRF run's
    model is the encoder with its transitions file (:func:`seqtag.modeling.heads.load_crf_tagger`), a span run's the
    plain encoder with its span head file (:func:`seqtag.modeling.span_head.load_span_tagger`). A damaged file is an
    error naming it and the fix (:func:`seqtag.runs.require_finished_run` checks them first)."""
    from transformers import (
        AutoModel,
        AutoModelForQuestionAnswering,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )
    from transformers.utils import logging as hf_logging

    run_dir = require_finished_run(run_dir)
    cfg = load_config(run_dir / CONFIG_FILE)
    auto = AutoModelForQuestionAnswering if cfg.task == "qa" and cfg.data.qa_head == "pointer" \
        else AutoModel if cfg.model.head == "span" else AutoModelForTokenClassification
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # the "Loading weights" bar of a local model says nothing useful
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(run_dir), use_fast=True)
        model = auto.from_pretrained(str(run_dir), use_safetensors=True)
    except (OSError, ValueError) as e:  # the files were checked (require_finished_run): damage beyond those checks
        raise SeqtagError(f"could not load the model in {run_dir}: {' '.join(str(e).split())}; the run directory "
                          f"is incomplete or damaged: {run_fix(run_dir)}") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    labels = None
    if auto is AutoModelForTokenClassification:
        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if cfg.model.head == "crf":
        model = load_crf_tagger(model, run_dir, labels).eval()
    if cfg.model.head == "span":
        model = load_span_tagger(model, run_dir).eval()
        labels = model.types
    info = read_run_info(run_dir)
    if cfg.task == "ner" and info.decoding and info.decoding != cfg.predict.decoding:
        # the decoding the run's scores were computed with (a run saved when the default was another one)
        cfg = dataclasses.replace(cfg, predict=dataclasses.replace(cfg.predict, decoding=info.decoding))
    return FinishedRun(run_dir, cfg, info, model, tokenizer, labels)


def token_budget_batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices of windows grouped for the model: sorted by length (longest first, least padding), at most
    ``batch_size`` windows and at most ``max_tokens`` padded tokens per batch (a single longer window gets a
    batch of its own), so a batch of long windows is smaller and peak memory stays bounded.

    >>> token_budget_batches([2, 5, 1, 2, 2], batch_size=3, max_tokens=8)
    [[1], [0, 3, 4], [2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out: list[list[int]] = []
    for i in order:
        if out and len(out[-1]) < batch_size and lengths[out[-1][0]] * (len(out[-1]) + 1) <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _precision(accelerator, autocast: bool, device: torch.device):
    if accelerator is not None:
        return accelerator.autocast()
    if autocast:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def window_logits(model, windows: dict[str, Sequence], pad_token_id: int, *, batch_size: int,
                  max_tokens: int = DEFAULT_MAX_TOKENS, accelerator=None, autocast: bool = False) -> list[np.ndarray]:
    """The logits of every window, in window order, as float32 arrays: ``(T_w, C)`` for a token-classification
    model, ``(T_w, 2)`` (start, end) for a question-answering model.

    ``windows`` holds columns ``input_ids`` (and ``token_type_ids`` if the model takes them), one row per window.
    Under several processes (``accelerator``), each process runs every n-th batch and all processes receive
    every window's logits exactly once. Precision: the accelerator's mixed precision, else bf16 autocast when
    ``autocast``.
    """
    from accelerate.utils import gather_object

    if accelerator is not None:
        model = accelerator.unwrap_model(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    keys = [k for k in MODEL_INPUTS if k in windows]
    ids = windows["input_ids"]
    batches = token_budget_batches([len(x) for x in ids], batch_size, max_tokens)
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    mine: list[tuple[int, np.ndarray]] = []
    for idx in batches[rank::world]:
        batch = collate([{k: windows[k][i] for k in keys} for i in idx], pad_token_id)
        with _precision(accelerator, autocast, device):
            out = model(**{k: v.to(device) for k, v in batch.items()})
        logits = torch.stack([out.start_logits, out.end_logits], -1) if hasattr(out, "start_logits") else out.logits
        logits = logits.float().cpu().numpy()
        mine += [(i, logits[row, : len(ids[i])]) for row, i in enumerate(idx)]
    model.train(was_training)
    gathered = gather_object(mine) if world > 1 else mine
    out_rows: list = [None] * len(ids)
    for i, row in gathered:
        out_rows[i] = row
    missing = [i for i, row in enumerate(out_rows) if row is None]
    if missing:
        raise AssertionError(f"{len(missing)} windows were not predicted (first: {missing[:5]})")
    return out_rows


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis, in float64 for the exponent.

    >>> softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]])).round(2).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    z = np.exp(x - x.max(-1, keepdims=True), dtype=np.float64)
    return (z / z.sum(-1, keepdims=True)).astype(np.float32)


def word_logits(model, features: dict[str, Sequence], num_words: Sequence[int], pad_token_id: int, *,
                batch_size: int, max_tokens: int = DEFAULT_MAX_TOKENS, accelerator=None,
                autocast: bool = False) -> list[np.ndarray]:
    """Label scores (logits; a CRF run's emission scores) ``(n_words, C)`` of every word of every sentence, read
    at the position that predicts the word (its first subword, in the window that owns it).

    ``features`` holds the NER window columns ``input_ids``, ``word_index`` and ``sentence_index``
    (:func:`seqtag.data.align.encode_sentences`); ``num_words[s]`` is the length of sentence ``s``.
    """
    logits = window_logits(model, features, pad_token_id, batch_size=batch_size, max_tokens=max_tokens,
                           accelerator=accelerator, autocast=autocast)
    merged = merge_windows(features["word_index"], features["sentence_index"], logits, num_words)
    return [np.stack(rows) if rows else np.zeros((0, logits[0].shape[-1] if logits else 0), np.float32)
            for rows in merged]


def word_probabilities(model, features: dict[str, Sequence], num_words: Sequence[int], pad_token_id: int,
                       **kwargs) -> list[np.ndarray]:
    """The softmax of :func:`word_logits` (the same keyword arguments): label probabilities ``(n_words, C)``."""
    return [softmax(x) for x in word_logits(model, features, num_words, pad_token_id, **kwargs)]


def decode_words(word_scores: Sequence[np.ndarray], labels: Sequence[str], scheme: str, decoding: str,
                 transitions: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                 max_words: int = 65536) -> tuple[list[list[str]], list[list[float]]]:
    """Tags of every word of every sentence, and the probability of each tag under the word's softmax.

    Args:
        word_scores: per sentence, ``(n_words, C)`` logits (a CRF run: emission scores) from :func:`word_logits`.
        labels: the label of every id; ``scheme``: their tag scheme.
        decoding: ``argmax`` or ``viterbi`` (see the module docstring).
        transitions: a CRF run's effective ``(transitions (C, C), start (C,), end (C,))``
            (:meth:`seqtag.modeling.crf.CRF.scores`, ``-inf`` where forbidden); None for a softmax run.
        max_words: word positions (padding included) per Viterbi batch; sentences are batched by length.

    The scores are the softmax probabilities of the chosen tags (on a CRF run, of its emission scores; they are
    what ``pipeline()`` would report, not the CRF's marginals).

    >>> x = [np.log(np.array([[0.1, 0.2, 0.7], [0.2, 0.1, 0.7]], dtype=np.float32))]
    >>> decode_words(x, ["O", "B-PER", "I-PER"], "IOB2", "argmax")[0], decode_words(x, ["O", "B-PER", "I-PER"], "IOB2", "viterbi")[0]
    ([['I-PER', 'I-PER']], [['B-PER', 'I-PER']])
    """
    if decoding not in TOKEN_DECODINGS:
        raise ValueError(f"decoding={decoding!r} is invalid; accepted: {', '.join(TOKEN_DECODINGS)}")
    probs = [softmax(x) for x in word_scores]
    if decoding == "argmax":
        return argmax_decode(probs, labels)
    ids: list[list[int]] = [[] for _ in word_scores]
    for group in token_budget_batches([len(x) for x in word_scores], batch_size=len(word_scores) or 1,
                                      max_tokens=max_words):
        scores, mask = pad_rows([torch.from_numpy(np.asarray(word_scores[i], dtype=np.float32)) for i in group],
                                len(labels))
        if transitions is None:
            paths = constrained_decode(scores.log_softmax(-1), mask, labels, scheme)
        else:
            paths = viterbi(scores, mask, *transitions)
        for i, path in zip(group, paths):
            ids[i] = path
    tags = [[labels[t] for t in path] for path in ids]
    return tags, [[float(p[k, t]) for k, t in enumerate(path)] for p, path in zip(probs, ids)]


def crf_transitions(model) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The effective ``(transitions, start, end)`` of a CRF run's model, on the CPU; None for any other model."""
    crf = crf_of(model)
    return None if crf is None else tuple(t.detach().float().cpu() for t in crf.scores())


def count_invalid(tag_seqs: Sequence[Sequence[str]], scheme: str) -> int:
    """How many tag sequences break ``scheme`` (:func:`seqtag.data.schemes.find_problems` finds something).

    >>> count_invalid([["O", "I-PER"], ["B-PER", "I-PER"], ["I-LOC"]], "IOB2")
    2
    """
    return sum(bool(find_problems(tags, scheme)) for tags in tag_seqs)


def argmax_decode(word_probs: Sequence[np.ndarray], labels: Sequence[str]) -> tuple[list[list[str]], list[list[float]]]:
    """The most probable label of every word and its probability.

    >>> argmax_decode([np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32)], ["O", "B-X"])
    ([['B-X', 'O']], [[0.800000011920929, 0.8999999761581421]])
    """
    tags, scores = [], []
    for p in word_probs:
        best = p.argmax(-1) if len(p) else np.zeros(0, dtype=int)
        tags.append([labels[i] for i in best.tolist()])
        scores.append([float(p[t, i]) for t, i in enumerate(best.tolist())])
    return tags, scores

