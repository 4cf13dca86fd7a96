"""Extractive QA on the training loop: windowed features, the loss of a batch for both heads, SQuAD evaluation,
``seqtag evaluate`` and ``seqtag predict`` for QA runs.

Two heads share the windows of :func:`seqtag.qa.prepare_features`:

* ``pointer`` (``AutoModelForQuestionAnswering``): start and end logits ``(B, T)``. Each is a multiclass problem
  over the window's positions: the context tokens and ``[CLS]`` (index 0, "the answer is not wholly in this
  window"); question, special and padding positions are not classes at all. The registry loss is summed over
  windows for start and for end and the two are averaged, so the loop's normaliser is the number of windows.
* ``tagging`` (``AutoModelForTokenClassification``): ``O``/``B-ANS``/``I-ANS`` on context tokens, the loss of
  every labelled token summed exactly as for NER.

Evaluation decodes every window exactly once (also under several processes) and scores the best span of each
question with the official SQuAD v1.1 EM/F1. ``seqtag evaluate`` and training share that code path.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from seqtag.constants import IGNORE_INDEX
from seqtag.data.batching import LengthGroupedBatches, collate
from seqtag.data.squad import QAExample
from seqtag.errors import ConfigError, DataError, SeqtagError
from seqtag.qa import CLS_INDEX, QA_TAGS, decode_pointer, decode_tagging, prepare_features
from seqtag.tasks import TaskSetup

log = logging.getLogger(__name__)

N_BEST = 20
"""Start and end candidates per window paired by the pointer decoder (as transformers' ``run_qa.py``)."""


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
    if not bool(allowed.gather(1, targets[:, None]).all()):
        raise ValueError("a target position is masked out; pointer targets must be [CLS] (0) or context tokens")
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
    loss_sum = (masked_position_loss(loss, out.start_logits, start_t, allowed)
                + masked_position_loss(loss, out.end_logits, end_t, allowed)) / 2
    return loss_sum, len(start_t), out.start_logits.masked_fill(~allowed, float("-inf")), start_t


def tagging_loss_step(model, batch, loss):
    """Summed loss over the batch's context tokens (O/B-ANS/I-ANS); logits (B, T, 3) are flattened to (N, 3)."""
    logits = model(**_model_inputs(batch)).logits.flatten(0, 1)
    targets = batch["labels"].flatten()
    return loss(logits, targets, reduction="sum"), (targets != IGNORE_INDEX).sum(), logits, targets


# ---------------------------------------------------------------------------------------------------------------
# data


def _check_answered(examples: Sequence[QAExample], source: object) -> None:
    missing = [ex.id for ex in examples if not ex.answers]
    if missing:
        raise DataError(f"{source}: {len(missing)} questions have no answer (first: {missing[0]!r}); evaluation "
                        "needs at least one reference answer per question")


def read_split(data, split: str, articles_cache: dict | None = None) -> tuple[list[QAExample], list[dict] | None]:
    """Examples of one configured split (``data.train``/``dev``/``test``) and, for a SQuAD file, its articles.

    ``data.<split>_articles = [start, end)`` selects those articles of a SQuAD ``.json``/``.zip`` (e.g. train
    ``[0, 38]`` and dev ``[38, 48]`` of the same file). ``articles_cache`` (path -> articles) avoids parsing a file
    twice. No example limit is applied here.
    """
    from seqtag.data.squad import examples_from_articles, load_hub_qa, read_qa, squad_articles
    from seqtag.paths import resolve

    spec = getattr(data, split)
    rng = getattr(data, f"{split}_articles")
    if data.format == "hub":
        if rng is not None:
            raise ConfigError(f"data.{split}_articles selects articles of a SQuAD file; it cannot be used with "
                              "data.format=hub. Remove it")
        return load_hub_qa(resolve(data.hub_dataset, "data.hub_dataset"), spec), None
    path = resolve(spec, f"data.{split}")
    if not Path(path).is_file():
        raise DataError(f"data.{split}: file {path} does not exist; fix the path in the config or override it "
                        f"with data.{split}=PATH")
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
        return read_qa(path, "jsonl"), None
    cache = articles_cache if articles_cache is not None else {}
    if path not in cache:
        cache[path] = squad_articles(path)
    articles = cache[path]
    if rng is None:
        return examples_from_articles(articles, source=path), articles
    start, end = rng
    if end > len(articles):
        raise ConfigError(f"data.{split}_articles={rng} but {path} has {len(articles)} articles; use an end of at "
                          f"most {len(articles)}")
    chosen = articles[start:end]
    return examples_from_articles(chosen, source=f"{path} articles [{start}, {end})"), chosen


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


def _eval_loader(features: dict[str, list], batch_size: int, pad_token_id: int, accelerator=None):
    """Length-sorted batches of the model inputs and each window's ``feature_index``."""
    from torch.utils.data import DataLoader

    keys = [k for k in ("input_ids", "token_type_ids") if k in features]
    rows = [{**{k: features[k][f] for k in keys}, "feature_index": f} for f in range(len(features["input_ids"]))]
    sampler = LengthGroupedBatches([len(r["input_ids"]) for r in rows], batch_size, shuffle=False)
    loader = DataLoader(rows, batch_sampler=sampler, collate_fn=partial(collate, pad_token_id=pad_token_id))
    return accelerator.prepare(loader) if accelerator is not None else loader


@torch.inference_mode()
def predict_windows(model, features: dict[str, list], head: str, accelerator, batch_size: int,
                    pad_token_id: int) -> list:
    """Logits of every window, in feature order: ``(start (T_f,), end (T_f,))`` (pointer) or ``(T_f, 3)`` (tagging),
    float32 numpy. Under several processes every process gets every window exactly once."""
    model.eval()
    n = len(features["input_ids"])
    out: list = [None] * n
    for batch in _eval_loader(features, batch_size, pad_token_id, accelerator):
        res = model(**_model_inputs(batch))
        logits = torch.stack([res.start_logits, res.end_logits], -1) if head == "pointer" else res.logits
        logits = accelerator.pad_across_processes(logits.float().contiguous(), dim=1, pad_index=0)
        fi, logits = accelerator.gather_for_metrics((batch["feature_index"], logits))
        for f, row in zip(fi.tolist(), logits.cpu().numpy(), strict=True):
            out[f] = row[: len(features["input_ids"][f])]
    missing = [f for f in range(n) if out[f] is None]
    if missing:
        raise AssertionError(f"{len(missing)} windows were not predicted (first: {missing[:5]})")
    return [(row[:, 0], row[:, 1]) for row in out] if head == "pointer" else out


def decode(features: dict[str, list], logits: list, examples: Sequence[QAExample], head: str,
           max_answer_length: int) -> dict[str, dict[str, Any]]:
    """Best span per example: ``{id: {"text", "score", "start", "end"}}`` (see :func:`seqtag.qa.decode_pointer`)."""
    if head == "pointer":
        return decode_pointer(features, [s for s, _ in logits], [e for _, e in logits], examples, n_best=N_BEST,
                              max_answer_length=max_answer_length)
    return decode_tagging(features, logits, examples, max_answer_length=max_answer_length)


def score(examples: Sequence[QAExample], answers: dict[str, str], articles: list[dict] | None = None) -> dict:
    """SQuAD v1.1 ``{"exact_match", "f1"}`` (percent): over ``articles`` when given (every question of them must be
    among ``examples``), else over ``examples`` with their reference answers."""
    from seqtag.metrics import squad_scores, squad_scores_from_refs

    if articles is not None:
        m = squad_scores(articles, answers)
    else:
        m = squad_scores_from_refs({ex.id: [t for t, _ in ex.answers] for ex in examples}, answers)
    if m["missing"]:
        raise AssertionError(f"{m['missing']} questions got no prediction")
    return {"exact_match": m["exact_match"], "f1": m["f1"]}


def evaluate_examples(model, tokenizer, examples: Sequence[QAExample], features: dict[str, list], head: str,
                      max_answer_length: int, accelerator, batch_size: int,
                      articles: list[dict] | None = None) -> tuple[dict, dict[str, str]]:
    """EM/F1 of ``model`` on ``examples`` (their ``features`` from :func:`prepare_features`) and ``{id: answer}``."""
    logits = predict_windows(model, features, head, accelerator, batch_size, tokenizer.pad_token_id)
    preds = decode(features, logits, examples, head, max_answer_length)
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

    from seqtag.model import load_model

    data, head = cfg.data, cfg.data.qa_head
    _check_loss_for_head(cfg)
    cache: dict = {}
    splits, articles = {}, {}
    limits = {"train": data.max_train_examples, "dev": data.max_eval_examples, "test": data.max_eval_examples}
    for split in ("train", "dev", "test"):
        if not getattr(data, split):
            continue
        examples, arts = read_split(data, split, cache)
        if limits[split] is not None and limits[split] < len(examples):
            examples, arts = examples[: limits[split]], None  # score only the kept questions
        if split != "train":
            _check_answered(examples, f"data.{split}")
        splits[split], articles[split] = examples, arts
    with accelerator.main_process_first():
        features = {
            split: prepare_features(ex, tokenizer, data.max_length, data.doc_stride, head, with_labels=split == "train")
            for split, ex in splits.items()
        }
    windows = {split: len(f["input_ids"]) for split, f in features.items()}
    log.info("QA %s head: %s windows (max_length=%d, doc_stride=%d)", head, windows, data.max_length,
             data.doc_stride)
    if head == "pointer":
        model = load_model(cfg.model, AutoModelForQuestionAnswering)
        loss_step = pointer_loss_step
        labels_info: dict = {}
    else:
        labels = list(QA_TAGS)
        model = load_model(cfg.model, AutoModelForTokenClassification, num_labels=len(labels),
                           id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
        loss_step = tagging_loss_step
        # the loop's loss-weight diagnostics (train.dynamics) split tokens by gold O versus these
        labels_info = {"labels": labels, "entity_label_ids": [1, 2]}
    columns = model_columns(tokenizer, head)

    def evaluate(model, split: str, accelerator, batch_size: int) -> dict:
        return evaluate_examples(model, tokenizer, splits[split], features[split], head, data.max_answer_length,
                                 accelerator, batch_size, articles[split])[0]

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
        info={
            "head": head, **labels_info, "train_examples": len(splits["train"]), "windows": windows,
            "max_length": data.max_length, "doc_stride": data.doc_stride,
            "max_answer_length": data.max_answer_length,
            "questions": {split: len(ex) for split, ex in splits.items()},
        },
    )


# ---------------------------------------------------------------------------------------------------------------
# finished runs: evaluate and predict


def load_qa_run(run_dir: Path, head: str):
    """Model and tokenizer of a finished QA run (safetensors weights only)."""
    from transformers import AutoModelForQuestionAnswering, AutoModelForTokenClassification, AutoTokenizer

    auto = AutoModelForQuestionAnswering if head == "pointer" else AutoModelForTokenClassification
    model = auto.from_pretrained(str(run_dir), use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir), use_fast=True)
    return model, tokenizer


def evaluate_file(run_dir, cfg, data_path, accelerator, batch_size: int) -> tuple[dict, dict[str, str]]:
    """EM/F1 of a finished run on a whole SQuAD ``.json``/``.zip`` or JSONL file, and ``{id: answer}``.

    The run's head, window and decoding settings; the same code path as training's evaluation.
    """
    from seqtag.data.squad import read_qa, squad_articles

    path = Path(data_path)
    if not path.is_file():
        raise DataError(f"--data {path} does not exist")
    examples = read_qa(path)
    articles = squad_articles(path) if path.suffix.lower() in (".json", ".zip") else None
    _check_answered(examples, path)
    model, tokenizer = load_qa_run(Path(run_dir), cfg.data.qa_head)
    with accelerator.main_process_first():
        features = prepare_features(examples, tokenizer, cfg.data.max_length, cfg.data.doc_stride,
                                    cfg.data.qa_head, with_labels=False)
    model = accelerator.prepare(model)
    return evaluate_examples(model, tokenizer, examples, features, cfg.data.qa_head, cfg.data.max_answer_length,
                             accelerator, batch_size, articles)


def answer_questions(model, tokenizer, records: Sequence[dict], cfg, accelerator,
                     batch_size: int) -> list[dict]:
    """Answer ``[{"question", "context"}, ...]``: ``[{"answer", "score", "start", "end"}, ...]`` in input order.

    ``start``/``end`` are character offsets into the context (end exclusive); ``score`` is the decoder's span
    score (start + end logit for the pointer head, log-probability for tagging), None when no span was found.
    """
    examples = [QAExample(str(i), r["question"], r["context"], ()) for i, r in enumerate(records)]
    features = prepare_features(examples, tokenizer, cfg.data.max_length, cfg.data.doc_stride, cfg.data.qa_head,
                                with_labels=False)
    logits = predict_windows(model, features, cfg.data.qa_head, accelerator, batch_size, tokenizer.pad_token_id)
    preds = decode(features, logits, examples, cfg.data.qa_head, cfg.data.max_answer_length)
    out = []
    for ex in examples:
        p = preds[ex.id]
        ok = p["score"] != float("-inf")
        out.append({"answer": p["text"], "score": round(p["score"], 4) if ok else None, "start": p["start"],
                    "end": p["end"]})
    return out


def read_question_records(path: str | Path) -> Iterator[dict]:
    """JSONL records ``{"question", "context"[, "id"]}``, checked; errors name ``file:line``."""
    from seqtag.errors import where

    path = Path(path)
    if not path.is_file():
        raise SeqtagError(f"--input {path} does not exist")
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
            yield rec


def predict_cli(run_dir, args) -> int:
    """``seqtag predict RUN_DIR`` for a QA run: ``--question/--context`` prints one JSON answer; ``--input`` JSONL
    of ``{id?, question, context}`` writes one JSON line per record (to ``--output``, atomically, or stdout)."""
    from seqtag.config import load_config
    from seqtag.runs import CONFIG_FILE
    from seqtag.train import make_accelerator

    run_dir = Path(run_dir)
    cfg = load_config(run_dir / CONFIG_FILE)
    if getattr(args, "text", None):
        raise SeqtagError(f"{run_dir} is a QA run; --text is for NER runs. Use --question and --context, or --input")
    single = args.question is not None or args.context is not None
    if single and (args.question is None or args.context is None):
        raise SeqtagError("give both --question and --context (or --input FILE with one JSON object per line)")
    if not single and not args.input:
        raise SeqtagError("give --question and --context, or --input FILE (JSONL with question and context)")
    accelerator = make_accelerator("bf16" if getattr(args, "bf16", False) else "no", 1)
    model, tokenizer = load_qa_run(run_dir, cfg.data.qa_head)
    model = accelerator.prepare(model)
    batch_size = args.batch_size or cfg.train.eval_batch_size
    if single:
        (ans,) = answer_questions(model, tokenizer, [{"question": args.question, "context": args.context}], cfg,
                                  accelerator, batch_size)
        print(json.dumps(ans, ensure_ascii=False))
        return 0

    from seqtag.predict import chunks

    def results() -> Iterator[dict]:
        for chunk in chunks(read_question_records(args.input), 256):
            for rec, ans in zip(chunk, answer_questions(model, tokenizer, chunk, cfg, accelerator, batch_size),
                                strict=True):
                yield {**({"id": rec["id"]} if "id" in rec else {}), "question": rec["question"], **ans}

    if not args.output:
        for rec in results():
            sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")
        return 0
    from seqtag.runs import atomic_output

    n = 0
    with atomic_output(args.output) as f:  # never leaves a half-written output
        for rec in results():
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    print(f"wrote {n} answers to {args.output}", file=sys.stderr)
    return 0
