"""Extractive QA on the training loop: windowed features, the loss of a batch for both heads, SQuAD evaluation,
and answering questions with a finished run.

Two heads share the windows of :func:`seqtag.data.qa_windows.prepare_features`:

* ``pointer`` (``AutoModelForQuestionAnswering``): start and end logits ``(B, T)``. Each is a multiclass problem
  over the window's positions: the context tokens and ``[CLS]`` (index 0, "the answer is not wholly in this
  window"); question, special and padding positions are not classes at all. The registry loss is summed over
  windows for start and for end and the two are averaged, so the loop's normaliser is the number of windows.
* ``tagging`` (``AutoModelForTokenClassification``): ``O``/``B-ANS``/``I-ANS`` on context tokens, the loss of
  every labelled token summed exactly as for NER.

Evaluation decodes every window exactly once (also under several processes, through
:func:`seqtag.inference.engine.window_logits`) and scores the best span of each question with the official SQuAD v1.1
EM/F1, as fractions. ``seqtag evaluate`` and training share that code path.

With ``data.allow_unanswerable`` (SQuAD 2.0) the same heads and losses learn "no answer" as the target every window
without the answer already has ([CLS], or all O), and each question gets a no-answer probability from its null score
(:mod:`seqtag.data.qa_windows`). Dev evaluation tunes the null threshold: the probability that maximises dev F1,
exactly as the official script's ``best_f1_thresh``; the dev scores are given at that threshold, the test split
and later ``seqtag evaluate``/``predict`` use it as it was tuned on dev, and ``run_info.json`` records it
(``null_threshold``). Scores are the official SQuAD 2.0 evaluator's (:func:`seqtag.metrics.squad2_scores`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from seqtag.constants import IGNORE_INDEX
from seqtag.data.qa_windows import (
    CLS_INDEX,
    QA_TAGS,
    decode_pointer,
    decode_tagging,
    is_null,
    prepare_features,
    thresholded_answers,
)
from seqtag.data.squad import QAExample, read_split
from seqtag.errors import ConfigError
from seqtag.inference.engine import DEFAULT_MAX_TOKENS, window_logits
from seqtag.metrics import squad2_dataset, squad2_scores, squad_scores, squad_scores_from_refs
from seqtag.modeling.loading import load_model
from seqtag.runs import WindowCounts
from seqtag.tasks.checks import check_loss_for_labels
from seqtag.tasks.common import TaskSetup

log = logging.getLogger(__name__)

N_BEST = 20
"""Start and end candidates per window paired by the pointer decoder (as transformers' ``run_qa.py``)."""
DEFAULT_NULL_THRESHOLD = 0.5
"""The no-answer probability above which a run with unanswerable questions answers "" when no threshold was tuned
(no dev split): the null score above the best span's, ``run_qa.py``'s default ``null_score_diff_threshold=0``."""


# ---------------------------------------------------------------------------------------------------------------
# the masked pointer loss

# Losses whose value and gradient with masked classes at -inf equal those on the unmasked classes alone. Checked
# for every registry loss in tests/tasks/test_qa_task.py. Not in this table (computed row by row instead):
#   lstar: its weight softmax(-k x)_t sees -k * (-inf) = +inf at masked classes: weight 0 for every masked row
#          (k > 0, finite but wrong) or NaN (k = 0);
#   cross_entropy with label_smoothing > 0: the smoothing term sums -log p_j over all classes, +inf at -inf.
# A loss added to the registry later is computed row by row (correct, slower) until it is checked and listed.
_NEG_INF_SAFE = {
    "cross_entropy": lambda p: not p.get("label_smoothing"),
    "focal": lambda p: True,
    "hard_truncation": lambda p: True,
    "lstar": lambda p: True,
    "lstar_logodds": lambda p: True,
    "dice": lambda p: True,
}


def neg_inf_safe(loss) -> bool:
    """Whether ``loss`` (a :class:`seqtag.losses.Loss`) can take masked classes as ``-inf`` logits."""
    check = _NEG_INF_SAFE.get(loss.name)
    return bool(check and check(loss.params))


def masked_position_loss(loss, logits: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Summed ``loss`` over rows, each a classification over its allowed positions only.

    ``logits``: ``(B, T)``; ``targets``: ``(B,)`` positions, each allowed in its row; ``allowed``: ``(B, T)`` bool.
    A masked position is not a class: the result equals the sum over rows ``i`` of
    ``loss(logits[i, allowed[i]][None], [number of allowed positions before targets[i]], reduction="sum")``.
    Losses in :data:`_NEG_INF_SAFE` get the whole batch at once with masked logits at ``-inf``; the others are
    computed row by row exactly as that formula says.

    >>> from seqtag.losses import get_loss
    >>> x = torch.tensor([[0.0, 5.0, 1.0, 2.0]]); ok = torch.tensor([[True, False, True, True]])
    >>> ce = masked_position_loss(get_loss("cross_entropy"), x, torch.tensor([2]), ok)
    >>> round(ce.item(), 4) == round(torch.nn.functional.cross_entropy(x[:, [0, 2, 3]], torch.tensor([1])).item(), 4)
    True
    """
    _check_targets(targets[:, None], allowed)
    return _masked_position_loss(loss, logits, targets, allowed)


def _check_targets(targets: torch.Tensor, allowed: torch.Tensor) -> None:
    """``targets (B, K)``: positions each allowed in its row of ``allowed (B, T)`` (one read back from the device)."""
    if not bool(allowed.gather(1, targets).all()):
        raise ValueError("a target position is masked out; pointer targets must be [CLS] (0) or context tokens")


def _masked_position_loss(loss, logits: torch.Tensor, targets: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """:func:`masked_position_loss` without the check of ``targets``."""
    if neg_inf_safe(loss):
        return loss(logits.masked_fill(~allowed, float("-inf")), targets, reduction="sum")
    compact = allowed.long().cumsum(1).gather(1, targets[:, None]).squeeze(1) - 1  # target index among allowed
    rows = [loss(logits[i][allowed[i]][None], compact[i : i + 1], reduction="sum") for i in range(len(targets))]
    return torch.stack(rows).sum()


def _model_inputs(batch: dict) -> dict:
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {k: batch[k] for k in keys if k in batch}


def pointer_loss_step(model, batch, loss):
    """Loss of a batch of windows for the pointer head: ``(loss_sum, n_windows, start logits (B, T), targets (B,))``.

    ``loss_sum = (sum of start losses + sum of end losses) / 2`` over the batch's windows, each loss a
    classification over ``[CLS]`` and the context tokens (:func:`masked_position_loss`). The returned logits
    (start logits, excluded positions at ``-inf``) and start targets are for diagnostics only.
    """
    out = model(**_model_inputs(batch))
    ctx = batch["context_mask"].bool()
    allowed = ctx.clone()
    allowed[:, CLS_INDEX] = True
    start_t, end_t = batch["start_positions"], batch["end_positions"]
    _check_targets(torch.stack([start_t, end_t], 1), allowed)  # both at once: one read back per batch
    loss_sum = (_masked_position_loss(loss, out.start_logits, start_t, allowed)
                + _masked_position_loss(loss, out.end_logits, end_t, allowed)) / 2
    return loss_sum, len(start_t), out.start_logits.masked_fill(~allowed, float("-inf")), start_t


def tagging_loss_step(model, batch, loss):
    """Summed loss over the batch's context tokens (O/B-ANS/I-ANS); logits (B, T, 3) are flattened to (N, 3)."""
    logits = model(**_model_inputs(batch)).logits.flatten(0, 1)
    targets = batch["labels"].flatten()
    return loss(logits, targets, reduction="sum"), (targets != IGNORE_INDEX).sum(), logits, targets


def _feature_table(features: dict[str, list], columns: Sequence[str]):
    """The model columns of ``features`` and their ``length``, as a ``datasets.Dataset`` for the training loop."""
    import datasets

    table = {k: features[k] for k in columns}
    table["length"] = [len(ids) for ids in features["input_ids"]]
    return datasets.Dataset.from_dict(table)


def model_columns(tokenizer, head: str) -> list[str]:
    """The columns a training batch carries for ``head`` (``token_type_ids`` when the tokenizer makes them)."""
    ids = ["input_ids"] + (["token_type_ids"] if "token_type_ids" in tokenizer.model_input_names else [])
    return ids + (["context_mask", "start_positions", "end_positions"] if head == "pointer" else ["labels"])


# ---------------------------------------------------------------------------------------------------------------
# evaluation and prediction


def predict_windows(model, features: dict[str, list], head: str, accelerator, batch_size: int, pad_token_id: int,
                    max_tokens: int = DEFAULT_MAX_TOKENS) -> list:
    """Logits of every window, in feature order: ``(start (T_f,), end (T_f,))`` (pointer) or ``(T_f, 3)`` (tagging),
    float32 numpy (:func:`seqtag.inference.engine.window_logits`)."""
    logits = window_logits(model, features, pad_token_id, batch_size=batch_size, max_tokens=max_tokens,
                           accelerator=accelerator)
    return [(row[:, 0], row[:, 1]) for row in logits] if head == "pointer" else logits


def decode(features: dict[str, list], logits: list, examples: Sequence[QAExample], head: str,
           max_answer_length: int) -> dict[str, dict[str, Any]]:
    """Best span per example: ``{id: {"text", "score", "start", "end"}}`` (see :func:`seqtag.data.qa_windows.decode_pointer`)."""
    if head == "pointer":
        return decode_pointer(features, [s for s, _ in logits], [e for _, e in logits], examples, n_best=N_BEST,
                              max_answer_length=max_answer_length)
    return decode_tagging(features, logits, examples, max_answer_length=max_answer_length)


def score(examples: Sequence[QAExample], answers: dict[str, str], articles: list[dict] | None = None) -> dict:
    """SQuAD v1.1 ``{"exact_match", "f1"}`` (fractions): over ``articles`` when given (every question of them must
    be among ``examples``), else over ``examples`` with their reference answers."""
    if articles is not None:
        m = squad_scores(articles, answers)
    else:
        m = squad_scores_from_refs({ex.id: [t for t, _ in ex.answers] for ex in examples}, answers)
    if m["missing"]:
        raise AssertionError(f"{m['missing']} questions got no prediction")
    return {"exact_match": m["exact_match"], "f1": m["f1"]}


def score_unanswerable(examples: Sequence[QAExample], preds: dict[str, dict[str, Any]],
                        articles: list[dict] | None = None,
                        null_threshold: float | None = None) -> tuple[dict, dict[str, str]]:
    """SQuAD 2.0 scores (fractions, :class:`seqtag.runs.SplitScores` keys) of decoded ``preds`` and ``{id: answer}``.

    Each question's best span and no-answer probability go to the official evaluator
    (:func:`seqtag.metrics.squad2_scores`, probabilities in the order of ``examples``). ``null_threshold=None``
    tunes it here: the split's ``best_f1_thresh`` (dev); otherwise the given threshold is applied (test, evaluate).
    ``exact_match``/``f1`` and the HasAns/NoAns scores are at the applied threshold, returned as ``null_threshold``;
    ``best_*`` are this split's own sweep. Over ``articles`` when given, else over ``examples``.
    """
    dataset = articles if articles is not None else squad2_dataset({ex.id: [t for t, _ in ex.answers]
                                                                    for ex in examples})
    spans = {qid: p["text"] for qid, p in preds.items()}
    probs = {ex.id: preds[ex.id]["no_answer_probability"] for ex in examples}
    if null_threshold is None:
        null_threshold = squad2_scores(dataset, spans, probs)["best_f1_thresh"]
    m = squad2_scores(dataset, spans, probs, na_prob_thresh=null_threshold)
    scores = {"exact_match": m["exact"], "f1": m["f1"], "null_threshold": null_threshold,
              "best_exact_match": m["best_exact"], "best_exact_match_thresh": m["best_exact_thresh"],
              "best_f1": m["best_f1"], "best_f1_thresh": m["best_f1_thresh"]}
    for prefix, key in (("HasAns", "has_ans"), ("NoAns", "no_ans")):
        if f"{prefix}_total" in m:
            scores.update({f"{key}_exact_match": m[f"{prefix}_exact"], f"{key}_f1": m[f"{prefix}_f1"],
                           f"{key}_total": m[f"{prefix}_total"]})
    return scores, thresholded_answers(preds, null_threshold)


def evaluate_examples(model, tokenizer, examples: Sequence[QAExample], features: dict[str, list], head: str,
                      max_answer_length: int, accelerator, batch_size: int, articles: list[dict] | None = None,
                      max_tokens: int = DEFAULT_MAX_TOKENS, unanswerable: bool = False,
                      null_threshold: float | None = None) -> tuple[dict, dict[str, str]]:
    """EM/F1 of ``model`` on ``examples`` (their ``features`` from :func:`prepare_features`) and ``{id: answer}``.

    ``unanswerable``: SQuAD 2.0 scores at ``null_threshold``, tuned on ``examples`` when None
    (:func:`score_unanswerable`); otherwise SQuAD v1.1 scores of the best spans."""
    logits = predict_windows(model, features, head, accelerator, batch_size, tokenizer.pad_token_id, max_tokens)
    preds = decode(features, logits, examples, head, max_answer_length)
    if unanswerable:
        return score_unanswerable(examples, preds, articles, null_threshold)
    answers = {qid: p["text"] for qid, p in preds.items()}
    return score(examples, answers, articles), answers


# ---------------------------------------------------------------------------------------------------------------
# the task


def _check_loss_for_head(cfg) -> None:
    if cfg.data.qa_head != "pointer":
        return
    per_class = sorted(k for k, v in cfg.loss.params.items() if isinstance(v, list | tuple))
    if per_class:
        raise ConfigError(
            f"loss.{per_class[0]} gives one value per class, but the pointer head's classes are token positions "
            "(their number changes with every window). Remove it, or use data.qa_head=tagging (classes O, B-ANS, "
            "I-ANS)")


def setup(cfg, tokenizer, accelerator) -> TaskSetup:
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification

    data, head = cfg.data, cfg.data.qa_head
    _check_loss_for_head(cfg)
    cache: dict = {}
    splits, articles = {}, {}
    limits = {"train": data.max_train_examples, "dev": data.max_eval_examples, "test": data.max_eval_examples}
    for split in ("train", "dev", "test"):
        if not getattr(data, split):
            continue
        examples, arts = read_split(data, split, cache)  # refuses unanswerable questions unless allowed
        if limits[split] is not None and limits[split] < len(examples):
            examples, arts = examples[: limits[split]], None  # score only the kept questions
        splits[split], articles[split] = examples, arts
    with accelerator.main_process_first():
        features = {
            split: prepare_features(ex, tokenizer, data.max_length, data.doc_stride, head, with_labels=split == "train")
            for split, ex in splits.items()
        }
    windows = {split: window_counts(f, len(splits[split])) for split, f in features.items()}
    log.info("QA %s head: %s windows (max_length=%d, doc_stride=%d)", head,
             {split: w.windows for split, w in windows.items()}, data.max_length, data.doc_stride)
    if head == "pointer":
        model = load_model(cfg.model, AutoModelForQuestionAnswering)
        loss_step = pointer_loss_step
        labels_info: dict = {}
        entity_ids: list[int] = []
    else:
        labels = list(QA_TAGS)
        check_loss_for_labels(cfg.loss, labels, "the QA tagging head")
        model = load_model(cfg.model, AutoModelForTokenClassification, num_labels=len(labels),
                           id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
        loss_step = tagging_loss_step
        labels_info = {"labels": labels}
        entity_ids = [1, 2]  # the loop's loss-weight diagnostics (train.dynamics) split tokens by gold O versus these
    columns = model_columns(tokenizer, head)
    info = {
        "head": head, **labels_info, "train_examples": len(splits["train"]), "windows": windows,
        "max_length": data.max_length, "doc_stride": data.doc_stride, "max_answer_length": data.max_answer_length,
        **({"null_threshold": DEFAULT_NULL_THRESHOLD} if data.allow_unanswerable else {}),
    }

    def evaluate(model, split: str, accelerator, batch_size: int) -> dict:
        # SQuAD 2.0: dev tunes the threshold and records it; the loop evaluates dev before test with the same
        # weights (the best ones at the end), so test is scored with the threshold of those weights
        threshold = None if split == "dev" else info.get("null_threshold")
        scores = evaluate_examples(model, tokenizer, splits[split], features[split], head, data.max_answer_length,
                                   accelerator, batch_size, articles[split], unanswerable=data.allow_unanswerable,
                                   null_threshold=threshold)[0]
        if data.allow_unanswerable and split == "dev":
            info["null_threshold"] = scores["null_threshold"]
        return scores

    def describe(batch) -> list[str]:
        return [tokenizer.decode(row[:16], skip_special_tokens=True) for row in batch["input_ids"].tolist()]

    return TaskSetup(
        model=model,
        train_features=_feature_table(features["train"], columns),
        columns=columns,
        loss_step=loss_step,
        evaluate=evaluate,
        eval_splits=[s for s in ("dev", "test") if s in splits],
        describe_examples=describe,
        entity_label_ids=entity_ids,
        info=info,
    )


def window_counts(features: dict[str, list], n_examples: int) -> WindowCounts:
    """How many questions needed more than one window, and how many windows the split has."""
    per_example: dict[int, int] = {}
    for i in features["example_index"]:
        per_example[i] = per_example.get(i, 0) + 1
    return WindowCounts(examples=n_examples, windowed=sum(n > 1 for n in per_example.values()),
                        windows=len(features["input_ids"]))


# ---------------------------------------------------------------------------------------------------------------
# a finished run: answering questions


def check_null_threshold(value: float) -> float:
    """``--null-threshold``: a no-answer probability in [0, 1]."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"--null-threshold is a no-answer probability in [0, 1], got {value}")
    return value


def run_null_threshold(cfg, recorded: float | None, override: float | None = None) -> float | None:
    """The null threshold a finished run answers with: ``override`` (``--null-threshold``), else the one its
    ``run_info.json`` records, else :data:`DEFAULT_NULL_THRESHOLD` for a run with ``data.allow_unanswerable``;
    None (never answer "") for a SQuAD v1.1 run."""
    if override is not None:
        return check_null_threshold(override)
    if not cfg.data.allow_unanswerable:
        return None
    return DEFAULT_NULL_THRESHOLD if recorded is None else recorded


def answer_questions(model, tokenizer, records: Sequence[dict], cfg, accelerator, batch_size: int,
                     max_tokens: int = DEFAULT_MAX_TOKENS, null_threshold: float | None = None) -> list[dict]:
    """Answer ``[{"question", "context"}, ...]``: ``[{"answer", "score", "start", "end", "no_answer_probability"},
    ...]`` in input order.

    ``start``/``end`` are character offsets into the context (end exclusive); ``score`` is the decoder's span
    score (start + end logit for the pointer head, log-probability for tagging), None when no span was found.
    ``no_answer_probability`` is ``sigmoid(null score - span score)``; when it exceeds ``null_threshold`` (see
    :func:`run_null_threshold`) the answer is ``""``, its offsets None and its score the null score.
    """
    examples = [QAExample(str(i), r["question"], r["context"], ()) for i, r in enumerate(records)]
    features = prepare_features(examples, tokenizer, cfg.data.max_length, cfg.data.doc_stride, cfg.data.qa_head,
                                with_labels=False)
    logits = predict_windows(model, features, cfg.data.qa_head, accelerator, batch_size, tokenizer.pad_token_id,
                             max_tokens)
    preds = decode(features, logits, examples, cfg.data.qa_head, cfg.data.max_answer_length)
    out = []
    for ex in examples:
        p = preds[ex.id]
        if is_null(p, null_threshold):
            out.append({"answer": "", "score": round(p["null_score"], 4), "start": None, "end": None,
                        "no_answer_probability": p["no_answer_probability"]})
            continue
        ok = p["score"] != float("-inf")
        out.append({"answer": p["text"], "score": round(p["score"], 4) if ok else None, "start": p["start"],
                    "end": p["end"], "no_answer_probability": p["no_answer_probability"]})
    return out
