"""The run directory's life: checkpoints swapped in atomically, a finished run recognised, the
checks before a run starts, resumes or overwrites, and the history trimmed for a resume."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from seqtag.errors import SeqtagError
from seqtag.runs.files import write_text_atomic
from seqtag.runs.lock import LOCK_FILE, lock_holder, lock_run_dir
from seqtag.runs.records import CHECKPOINT_DIR, CONFIG_FILE, INFO_FILE, read_run_info


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
