"""The run directory's file names and its two records, each with one typed schema: ``run_info.json``
(:class:`RunInfo`) and ``metrics.json`` (``{split: SplitScores}``). Every score is a fraction in [0, 1]."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqtag.errors import SeqtagError
from seqtag.runs.files import read_json, write_json_atomic

CONFIG_FILE = "seqtag_config.yaml"
METRICS_FILE = "metrics.json"
INFO_FILE = "run_info.json"
HISTORY_FILE = "history.jsonl"
CURVES_FILE = "training_curves.png"
CHECKPOINT_DIR = "checkpoints"


# ---------------------------------------------------------------------------------------------------------------
# the records: one schema each

STATUSES = ("running", "interrupted", "failed", "finished")
SEQEVAL_MODE = "default"
"""The seqeval mode of a run's headline scores (conlleval's lenient reading); strict scores sit beside them."""


@dataclass(frozen=True)
class WindowCounts:
    """How one split was cut into model windows: ``examples`` (sentences or questions), how many of them needed
    more than one window (``windowed``), and the number of ``windows`` of the whole split."""

    examples: int
    windowed: int
    windows: int


@dataclass(frozen=True)
class LossRecord:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """``run_info.json``: what a run is, how far it got and how it was trained.

    Written by :mod:`seqtag.training.loop` (status ``running`` at the start, ``finished``, ``interrupted`` or
    ``failed`` at the end); read by evaluate, predict, push, the model card and sweep.

    >>> info = RunInfo(status="finished", task="ner", tag_scheme="IOB2")
    >>> import json
    >>> RunInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    True
    """

    status: str  # running | interrupted | failed | finished
    task: str  # ner | qa
    seqtag_version: str = ""
    torch_version: str = ""
    hardware: str = ""
    error: str | None = None  # first line of the message, when status is failed or interrupted
    # progress
    epochs: int = 0  # epochs completed
    configured_epochs: int | None = None
    global_steps: int = 0  # optimizer steps taken
    best_epoch: int | None = None
    best_dev_f1: float | None = None  # fraction; None before the first evaluation
    skipped_batches: int = 0  # batches skipped for a non-finite loss (train.nan_policy=skip)
    wall_time_s: float = 0.0
    # how it was trained
    total_batch_size: int | None = None  # per device x accumulation x processes
    processes: int | None = None
    mixed_precision: str = "no"
    loss: LossRecord = field(default_factory=lambda: LossRecord("cross_entropy"))
    base_model: str = ""  # model.name_or_path as configured
    learning_rate: float | None = None
    seed: int | None = None
    datasets: list[str] = field(default_factory=list)  # data.hub_dataset and data.train as configured
    train_examples: int | None = None  # sentences (NER) or questions (QA) trained on
    windows: dict[str, WindowCounts] = field(default_factory=dict)  # per split
    # NER, and the QA tagging head
    labels: list[str] | None = None
    tag_scheme: str | None = None  # the scheme the model was trained and is scored in
    source_scheme: str | None = None  # the scheme of the data files
    seqeval_mode: str | None = None  # SEQEVAL_MODE for NER runs
    data_notes: dict[str, Any] = field(default_factory=dict)  # repaired tags, unseen labels mapped to O...
    model_head: str | None = None  # NER: linear | crf (model.head); None: a QA run, or an NER run from before (linear)
    decoding: str | None = None  # NER: argmax | viterbi, the decoding of its dev/test scores (predict.decoding)
    # QA
    head: str | None = None  # pointer | tagging
    max_length: int | None = None
    doc_stride: int | None = None
    max_answer_length: int | None = None
    # QA with data.allow_unanswerable (SQuAD 2.0): the answer is "" when the no-answer probability exceeds this
    # (tuned on dev: the official script's best_f1_thresh); None: a run without unanswerable questions
    null_threshold: float | None = None
    # the resolved config the run was trained with
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: object = INFO_FILE) -> RunInfo:
        """Read a ``run_info.json`` object (also one written by an earlier seqtag version)."""
        if not isinstance(raw, dict) or raw.get("status") not in STATUSES:
            raise SeqtagError(f"{source} is not a seqtag run record (its status must be one of {', '.join(STATUSES)}); "
                              "the run directory is damaged")
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in raw.items() if k in names}
        kw.setdefault("task", "ner")
        if isinstance(kw.get("loss"), dict):
            kw["loss"] = LossRecord(kw["loss"].get("name", "cross_entropy"), dict(kw["loss"].get("params") or {}))
        kw["windows"] = {split: _window_counts(w) for split, w in (kw.get("windows") or {}).items()}
        if kw.get("seqeval_mode") and str(kw["seqeval_mode"]).startswith("default"):
            kw["seqeval_mode"] = SEQEVAL_MODE  # written as a sentence before 0.1.0's schema
        for key in ("epochs", "global_steps", "skipped_batches"):
            kw[key] = kw.get(key) or 0
        return cls(**kw)


def _window_counts(raw: Any) -> WindowCounts:
    """A split's window counts; also the older forms ``{"sentences", "windowed_sentences",
    "windows_of_windowed"}`` (NER) and a plain window count (QA)."""
    if isinstance(raw, int):
        return WindowCounts(examples=0, windowed=0, windows=raw)
    if "sentences" in raw:
        return WindowCounts(raw["sentences"], raw["windowed_sentences"],
                            raw["sentences"] - raw["windowed_sentences"] + raw["windows_of_windowed"])
    return WindowCounts(**raw)


@dataclass(frozen=True)
class TypeScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class SplitScores:
    """One split of ``metrics.json``. Fractions in [0, 1].

    NER: entity ``precision``/``recall``/``f1`` in seqeval's default (conlleval) mode, the ``*_strict`` values in
    strict mode with the run's tag scheme, token ``accuracy``, ``per_type`` scores, and ``invalid_sequences``: the
    number of sentences the word-by-word argmax tags in a way the tag scheme forbids (counted whatever the run's
    decoding; None in runs from before it was recorded). QA: SQuAD v1.1 ``exact_match`` and token ``f1``. QA with
    unanswerable questions (SQuAD 2.0, :func:`seqtag.metrics.squad2_scores`): ``exact_match`` and ``f1`` over all
    questions with the answers given at ``null_threshold``, the same over the answerable (``has_ans_*``) and the
    unanswerable (``no_ans_*``) questions with their counts (``*_total``), and the split's own best threshold
    (``best_exact_match``/``best_f1`` and their ``*_thresh``, the official script's threshold sweep).

    >>> SplitScores.from_dict({"exact_match": 0.5, "f1": 0.75}).to_dict()
    {'f1': 0.75, 'exact_match': 0.5}
    """

    f1: float
    exact_match: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1_strict: float | None = None
    precision_strict: float | None = None
    recall_strict: float | None = None
    accuracy: float | None = None
    invalid_sequences: int | None = None
    per_type: dict[str, TypeScores] = field(default_factory=dict)
    # SQuAD 2.0
    null_threshold: float | None = None
    has_ans_exact_match: float | None = None
    has_ans_f1: float | None = None
    has_ans_total: int | None = None
    no_ans_exact_match: float | None = None
    no_ans_f1: float | None = None
    no_ans_total: int | None = None
    best_exact_match: float | None = None
    best_exact_match_thresh: float | None = None
    best_f1: float | None = None
    best_f1_thresh: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if not self.per_type:
            out.pop("per_type")
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SplitScores:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise SeqtagError(f"unknown score keys {unknown}; valid: {sorted(names)}")
        kw = dict(raw)
        kw["per_type"] = {t: TypeScores(**s) for t, s in (raw.get("per_type") or {}).items()}
        return cls(**kw)


Metrics = dict[str, SplitScores]


def write_run_info(run_dir: Path, info: RunInfo) -> None:
    write_json_atomic(Path(run_dir) / INFO_FILE, info.to_dict())


def read_run_info(run_dir: Path) -> RunInfo:
    path = Path(run_dir) / INFO_FILE
    return RunInfo.from_dict(read_json(path), path)


def write_metrics(path: Path, metrics: Metrics) -> None:
    """``metrics.json`` (or an ``evaluate --output`` file): ``{split: scores}``."""
    write_json_atomic(path, {split: m.to_dict() for split, m in metrics.items()})


def read_metrics(run_dir: Path) -> Metrics:
    """A run's ``metrics.json``; ``{}`` when the run has none."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return {}
    raw = read_json(path)
    try:
        out = {split: SplitScores.from_dict(m) for split, m in raw.items()}
    except (SeqtagError, TypeError) as e:
        raise SeqtagError(f"{path} does not follow the metrics schema ({e}); the run directory is damaged") from None
    return out
