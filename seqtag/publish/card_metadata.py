"""The model card's YAML front matter: licence, language, base model, datasets, tags and the
``model-index`` of the evaluation results, which holds exactly the values of ``metrics.json``
(fractions in [0, 1], NER and QA alike), so the card can never disagree with the file."""

from __future__ import annotations

from typing import Any

from seqtag.config import Config
from seqtag.publish.card_facts import (
    KNOWN_DATASETS,
    PIPELINE_TAGS,
    SPLIT_NAMES,
    CardRun,
    base_model_of,
    dataset_of,
    head_of,
    language_of,
)
from seqtag.runs import Metrics


def evaluated_splits(metrics: Metrics) -> list[str]:
    return [s for s in ("dev", "test", "train") if s in metrics] + sorted(s for s in metrics
                                                                          if s not in ("dev", "test", "train"))


def _split_spec(config: Config, split: str) -> str | None:
    return {"train": config.data.train, "dev": config.data.dev, "test": config.data.test}.get(split)


def eval_subset(run: CardRun, split: str) -> int | None:
    """How many examples a split was cut to by ``data.max_eval_examples``, or None when it was scored whole."""
    cap = run.config.data.max_eval_examples
    if cap is None or split == "train":
        return None
    counts = run.info.windows.get(split)
    return cap if counts is None or counts.examples >= cap else None


def _hub_split(run: CardRun, split: str) -> str:
    spec = _split_spec(run.config, split)
    name = spec if run.config.data.format == "hub" and spec else SPLIT_NAMES.get(split, split)
    n = eval_subset(run, split)
    return f"{name}[:{n}]" if n else name


def model_index(run: CardRun, model_name: str) -> list[dict[str, Any]]:
    """The ``model-index`` front-matter entry: one result per evaluated split, values exactly metrics.json's."""
    if run.config.task == "qa":
        task_entry = {"type": "question-answering", "name": "Extractive question answering"}
        wanted = [("exact_match", "Exact match"), ("f1", "F1")]
    else:
        task_entry = {"type": "token-classification", "name": "Named entity recognition"}
        wanted = [("precision", "Entity precision"), ("recall", "Entity recall"), ("f1", "Entity F1")]
    results = []
    for split in evaluated_splits(run.metrics):
        scores = run.metrics[split]
        values = [(key, label, getattr(scores, key)) for key, label in wanted]
        metrics = [{"type": key, "value": float(v), "name": f"{label} ({split})"} for key, label, v in values
                   if v is not None]
        dataset_id = dataset_of(run.config.data, _split_spec(run.config, split))
        known = KNOWN_DATASETS.get(dataset_id or "")
        hub_split = _hub_split(run, split)
        results.append({
            "task": dict(task_entry),
            "dataset": {"name": f"{known.name if known else dataset_id or 'local data'} ({hub_split})",
                        "type": dataset_id or "custom", "split": hub_split},
            "metrics": metrics,
        })
    return [{"name": model_name, "results": results}] if results else []


def card_metadata(run: CardRun, model_name: str) -> dict[str, Any]:
    """The YAML front matter as a dict (keys the Hub understands; unknown values omitted)."""
    task, head = run.config.task, run.config.data.qa_head
    meta: dict[str, Any] = {}
    if run.config.hub.license:
        meta["license"] = run.config.hub.license
    language = language_of(run.config.data)
    if language:
        meta["language"] = [language]
    meta["library_name"] = "transformers"
    span = run.info.model_head == "span"
    if not (task == "qa" and head == "tagging") and not span:  # the pipelines need a start/end or classifier head
        meta["pipeline_tag"] = PIPELINE_TAGS[task]
    base = base_model_of(run.config.model.name_or_path)
    if base:
        meta["base_model"] = base
    dataset = dataset_of(run.config.data, run.config.data.train)
    if dataset:
        meta["datasets"] = [dataset]
    if not span:  # a span run's exact-match scores are not seqeval's
        meta["metrics"] = [("squad_v2" if run.config.data.allow_unanswerable else "squad") if task == "qa" else "seqeval"]
    # what the model was trained with: the registry loss, or "crf" for the CRF head, which ignores loss.name
    trained_with = "crf" if head_of(run) == "crf" else run.config.loss.name
    tags = ["seqtag", PIPELINE_TAGS[task], "ner" if task == "ner" else "extractive-qa", trained_with]
    meta["tags"] = list(dict.fromkeys(tags))
    index = model_index(run, model_name)
    if index:
        meta["model-index"] = index
    return meta
