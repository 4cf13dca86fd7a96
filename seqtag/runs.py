"""The run directory: what training writes and what evaluate, predict, push, the card and sweep read.

Layout (see docs/ARCHITECTURE.md): weights, tokenizer and ``config.json`` at the top level (a plain
``from_pretrained`` directory), ``seqtag_config.yaml``, ``metrics.json``, ``run_info.json``, ``history.jsonl``,
``training_curves.png`` and ``checkpoints/last/`` (resumable state, never uploaded).

The two records, ``run_info.json`` (:class:`RunInfo`) and ``metrics.json`` (``{split: SplitScores}``), have one
typed schema each, here: training writes them through these types and every reader reads them through the same
types, so a key that one side writes and the other misreads cannot exist. Every score in every file seqtag
writes is a **fraction in [0, 1]** (entity F1, SQuAD exact match and F1 alike); tables printed for people show
percentages.

Writes are atomic: a file is written beside its target and renamed over it; a checkpoint is written to a
temporary directory and renamed into place, so a process killed mid-save leaves the previous one intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqtag.errors import SeqtagError

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

    Written by :mod:`seqtag.train` (status ``running`` at the start, ``finished``, ``interrupted`` or
    ``failed`` at the end); read by evaluate, predict, push, the model card and sweep.

    >>> info = RunInfo(status="finished", task="ner", tag_scheme="IOB2")
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
    decoding; None in runs from before it was recorded). QA: SQuAD v1.1 ``exact_match`` and token ``f1``.

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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_permissions(path: Path) -> None:
    """Give ``path`` the permissions a new file gets (0666 less the umask): some writers (safetensors) create
    0600 files, which colleagues on a shared server could not read."""
    os.chmod(path, 0o666 & ~_umask())


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one. The file gets
    the permissions any new file gets (0666 less the umask), like the files transformers writes beside it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600: colleagues on a shared server could not read it
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_output(path: str | Path):
    """Open ``path`` for writing text through ``PATH.partial`` beside it: renamed over ``path`` when the block
    ends normally, deleted when it raises (an error or an interrupt never leaves a half-written output)."""
    out = Path(path)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SeqtagError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise SeqtagError(f"{path} is not valid JSON ({e}); the run directory is damaged") from None


def checkpoint_path(run_dir: Path) -> Path | None:
    """The newest complete checkpoint: ``checkpoints/last``, or ``last.old`` if a swap was interrupted."""
    base = Path(run_dir) / CHECKPOINT_DIR
    for name in ("last", "last.old"):
        if (base / name / "seqtag_state.json").is_file():
            return base / name
    return None


def swap_in_checkpoint(run_dir: Path, tmp_dir: Path) -> Path:
    """Make the complete checkpoint in ``tmp_dir`` the new ``checkpoints/last``, keeping the old until done."""
    base = Path(run_dir) / CHECKPOINT_DIR
    last, old = base / "last", base / "last.old"
    if old.exists() and last.exists():
        shutil.rmtree(old)
    if last.exists():
        os.replace(last, old)
    os.replace(tmp_dir, last)
    if old.exists():
        shutil.rmtree(old)
    return last


def is_finished_run(run_dir: Path) -> bool:
    if not (Path(run_dir) / INFO_FILE).is_file() or not (Path(run_dir) / "config.json").is_file():
        return False
    try:
        return read_run_info(run_dir).status == "finished"
    except (SeqtagError, UnicodeDecodeError):
        return False


def require_finished_run(run_dir: str | Path) -> Path:
    """Check that ``run_dir`` is a finished seqtag run; the error says what is missing and what to do."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SeqtagError(f"run directory {run_dir} does not exist; pass the output_dir of a finished `seqtag train`")
    if not (run_dir / INFO_FILE).is_file():
        raise SeqtagError(f"{run_dir} is not a seqtag run directory (no {INFO_FILE}); pass the output_dir of "
                          f"a finished `seqtag train`")
    status = read_run_info(run_dir).status
    if status != "finished":
        holder = lock_holder(run_dir) if status == "running" else None
        if holder is not None:
            raise SeqtagError(f"the run in {run_dir} is still training (process {holder}); wait until it finishes")
        raise SeqtagError(f"the run in {run_dir} is not finished (status: {status}); finish it with "
                          f"`seqtag train {run_dir / CONFIG_FILE} train.resume=true`")
    if not (run_dir / "model.safetensors").is_file() and not any(run_dir.glob("model-*.safetensors")):
        raise SeqtagError(f"{run_dir} has no model.safetensors; the run directory is incomplete")
    return run_dir


# Keys a resumed run may change: how long to train, and how this invocation treats the directory.
RESUME_MAY_CHANGE = ("train.epochs", "train.max_steps", "train.resume", "train.overwrite", "train.output_dir",
                     "train.early_stopping_patience")


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "loss" and not prefix:
            out.update(_flat(value, f"{key}."))
        elif isinstance(value, dict) and key == "loss" and not prefix:
            out.update({f"loss.{k}": v for k, v in value.items()})
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(saved_text: str, new_text: str) -> list[str]:
    """Keys whose values differ between two resolved configs, ignoring :data:`RESUME_MAY_CHANGE`.

    >>> config_differences("train: {epochs: 3, seed: 1}", "train: {epochs: 5, seed: 2}")
    ['train.seed: 1 -> 2']
    """
    import yaml

    old, new = _flat(yaml.safe_load(saved_text) or {}), _flat(yaml.safe_load(new_text) or {})
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if k not in RESUME_MAY_CHANGE and old.get(k) != new.get(k)]


def check_run_dir(run_dir: Path, config_text: str, *, overwrite: bool, resume: bool) -> None:
    """Refuse an output directory training may not use; reads only, so it can run before anything is loaded.

    A directory that already holds a different run (or other files) is refused unless ``overwrite`` (a seqtag run
    directory is then replaced once setup succeeded) or ``resume`` (which needs a checkpoint and the same config,
    apart from :data:`RESUME_MAY_CHANGE`).
    """
    run_dir = Path(run_dir)
    existing = run_dir / CONFIG_FILE
    if resume:
        if checkpoint_path(run_dir) is None:
            raise SeqtagError(f"train.resume=true but {run_dir} holds no checkpoint to resume from "
                              f"({run_dir / CHECKPOINT_DIR / 'last'} is missing); drop train.resume to start a new run")
        if existing.is_file():
            diff = config_differences(existing.read_text(encoding="utf-8"), config_text)
            if diff:
                raise SeqtagError(
                    f"train.resume=true but the config differs from the one {run_dir} was trained with "
                    f"({'; '.join(diff[:5])}); resume with the run's own config: seqtag train {existing} "
                    f"train.resume=true (only {', '.join(RESUME_MAY_CHANGE[:2])} may change), or start a new run "
                    f"in another train.output_dir"
                )
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise SeqtagError(f"train.output_dir {run_dir} is a file, not a directory; choose another train.output_dir")
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        if not overwrite:
            what = "a run" if existing.is_file() else "other files"
            raise SeqtagError(
                f"output directory {run_dir} already holds {what}; choose another train.output_dir, "
                f"or pass train.overwrite=true to replace it, or train.resume=true to continue it"
            )
        if not existing.is_file() and not (run_dir / INFO_FILE).is_file():
            raise SeqtagError(f"train.overwrite=true, but {run_dir} is not a seqtag run directory; refusing to "
                              f"delete it. Choose another train.output_dir")


def prepare_run_dir(run_dir: Path, config_text: str, *, overwrite: bool, resume: bool):
    """Create ``run_dir`` for a new run (replacing an old run when ``overwrite``), or tidy it to resume, and
    return its lock (:func:`lock_run_dir`), to be held while training and closed at the end.

    Checks with :func:`check_run_dir` first. Resuming removes what a killed process may have left half-written
    (temporary checkpoint and weight directories) and rewrites the config (epochs and max_steps may change).
    """
    run_dir = Path(run_dir)
    lock = lock_run_dir(run_dir) if run_dir.is_dir() else None  # refuses a directory another process trains in
    try:
        check_run_dir(run_dir, config_text, overwrite=overwrite, resume=resume)
        if resume:
            for tmp in list((run_dir / CHECKPOINT_DIR).glob(".tmp-*")) + list(run_dir.glob(".best-*")):
                shutil.rmtree(tmp, ignore_errors=True)
        elif run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
            shutil.rmtree(run_dir)  # check_run_dir allowed it: overwrite of a seqtag run directory
            lock.close()
            lock = None
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = lock or lock_run_dir(run_dir)
        write_text_atomic(run_dir / CONFIG_FILE, config_text)
    except BaseException:
        if lock is not None:
            lock.close()
        raise
    return lock


LOCK_FILE = ".seqtag.lock"


def lock_run_dir(run_dir: Path):
    """An exclusive lock on ``run_dir`` (``flock`` on ``.seqtag.lock``, which holds the owner's PID), as an open
    file to close when done. The operating system releases it when the process ends, ``kill -9`` included, so
    a lock is never stale. Raises :class:`SeqtagError` naming the PID when another process holds it."""
    import fcntl

    f = open(Path(run_dir) / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "unknown"
        f.close()
        raise SeqtagError(f"{run_dir} is in use: process {pid} is training in it. Wait for it to finish, stop it "
                          "(it saves a resumable checkpoint on Ctrl-C or SIGTERM), or choose another "
                          "train.output_dir") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def lock_holder(run_dir: Path) -> int | None:
    """The PID of the process training in ``run_dir`` now, or None when none is."""
    path = Path(run_dir) / LOCK_FILE
    if not path.is_file():
        return None
    try:
        f = lock_run_dir(run_dir)
    except SeqtagError:
        try:
            return int(path.read_text().strip())
        except ValueError:
            return -1
    f.close()
    return None


def truncate_history(path: Path, global_step: int, epoch: int) -> int:
    """Drop ``history.jsonl`` records written after a checkpoint (steps above ``global_step``, epochs above
    ``epoch``), so a resumed run's history has each step once. Returns the number of records dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    keep, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            dropped += 1
            continue
        late = rec.get("epoch", 0) > epoch if rec.get("type") == "epoch" else rec.get("step", 0) > global_step
        if late:
            dropped += 1
        else:
            keep.append(line)
    if dropped:
        write_text_atomic(path, "".join(f"{line}\n" for line in keep))
    return dropped
