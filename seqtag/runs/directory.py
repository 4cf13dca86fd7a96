"""The run directory's life: checkpoints swapped in atomically, a finished run recognised, the
checks before a run starts, resumes or overwrites, and the history trimmed for a resume."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from seqtag.errors import SeqtagError
from seqtag.runs.files import read_json, write_text_atomic
from seqtag.runs.integrity import (
    check_checkpoint_files,
    check_info_file,
    check_run_files,
    config_problem,
    damaged,
    file_problem,
)
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
    """Check that ``run_dir`` is a finished seqtag run whose files read whole; the error says what is missing or
    damaged and what to do."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SeqtagError(f"run directory {run_dir} does not exist; pass the output_dir of a finished `seqtag train`")
    if not (run_dir / INFO_FILE).is_file():
        raise SeqtagError(f"{run_dir} is not a seqtag run directory (no {INFO_FILE}); pass the output_dir of "
                          f"a finished `seqtag train`")
    check_info_file(run_dir, has_checkpoint=checkpoint_path(run_dir) is not None)
    status = read_run_info(run_dir).status
    if status != "finished":
        holder = lock_holder(run_dir) if status == "running" else None
        if holder is not None:
            raise SeqtagError(f"the run in {run_dir} is still training (process {holder}); wait until it finishes")
        raise SeqtagError(f"the run in {run_dir} is not finished (status: {status}); {next_step(run_dir)}")
    if not (run_dir / "model.safetensors").is_file() and not any(run_dir.glob("model-*.safetensors")):
        raise SeqtagError(f"{run_dir} has no model.safetensors; the run directory is incomplete")
    check_run_files(run_dir)
    return run_dir


def next_step(run_dir: Path) -> str:
    """The command that takes an unfinished run on from where it is: resume from its checkpoint, or, when it
    stopped before its first one (``kill -9``, a crash), train it again in the same directory."""
    config = Path(run_dir) / CONFIG_FILE
    if checkpoint_path(run_dir) is not None:
        return f"finish it with `seqtag train {config} train.resume=true`"
    kept = replaced_path(run_dir)
    kept = f" (the run it was to replace is kept in {kept}; move it back to use it)" if kept.is_dir() else ""
    return (f"it stopped before its first checkpoint, so it cannot be resumed; train it again with "
            f"`seqtag train {config} train.overwrite=true`{kept}")


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
    directory is then replaced once the new run has its first checkpoint) or ``resume`` (which needs a checkpoint
    whose files read whole and the same config, apart from :data:`RESUME_MAY_CHANGE`). Each refusal names the
    command that works from the state the directory is in.
    """
    run_dir = Path(run_dir)
    existing = run_dir / CONFIG_FILE
    holds_run = existing.is_file() or (run_dir / INFO_FILE).is_file()
    if resume:
        ckpt = checkpoint_path(run_dir)
        if ckpt is None:
            missing = (f"train.resume=true but {run_dir} holds no checkpoint to resume from "
                       f"({run_dir / CHECKPOINT_DIR / 'last'} is missing)")
            if holds_run:
                raise SeqtagError(f"{missing}: the run stopped before its first checkpoint, or finished without "
                                  f"train.keep_checkpoint; train it again in the same directory with seqtag train "
                                  f"{existing} train.overwrite=true, or drop train.resume and choose another "
                                  f"train.output_dir")
            if run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
                raise SeqtagError(f"{missing}, and it is not a seqtag run directory; drop train.resume and choose "
                                  f"another train.output_dir")
            raise SeqtagError(f"{missing}; drop train.resume to start a new run")
        saved = _saved_config_text(run_dir, config_text)
        diff = config_differences(saved, config_text) if saved is not None else []
        if diff:
            raise SeqtagError(
                f"train.resume=true but the config differs from the one {run_dir} was trained with "
                f"({'; '.join(diff[:5])}); resume with the run's own config: seqtag train {existing} "
                f"train.resume=true (only {', '.join(RESUME_MAY_CHANGE[:2])} may change), or start a new run "
                f"in another train.output_dir"
            )
        check_checkpoint_files(run_dir, ckpt)
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise SeqtagError(f"train.output_dir {run_dir} is a file, not a directory; choose another train.output_dir")
    if run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
        if not holds_run:
            raise SeqtagError(f"output directory {run_dir} already holds other files and is not a seqtag run "
                              f"directory, so seqtag will neither replace nor continue it; choose another "
                              f"train.output_dir")
        if not overwrite:
            resume_hint = " or train.resume=true to continue it," if checkpoint_path(run_dir) is not None else ""
            raise SeqtagError(
                f"output directory {run_dir} already holds a run; pass train.overwrite=true to replace it,"
                f"{resume_hint} or choose another train.output_dir"
            )


def _saved_config_text(run_dir: Path, config_text: str) -> str | None:
    """The config a run was trained with, to compare a resume's config with: ``seqtag_config.yaml``, or, when that
    file is damaged, the copy ``run_info.json`` records (resuming writes the file again)."""
    import yaml

    existing = run_dir / CONFIG_FILE
    if not existing.is_file():
        return None
    problem = config_problem(run_dir)
    if problem is None:
        return existing.read_text(encoding="utf-8")
    fix = (f"resume with the config file the run was started from (resuming writes {existing.name} again): "
           f"seqtag train YOUR_CONFIG train.resume=true; or start the run again: seqtag train YOUR_CONFIG "
           f"train.overwrite=true")
    recorded = read_json(run_dir / INFO_FILE).get("config") if file_problem(run_dir / INFO_FILE) is None else None
    if not isinstance(recorded, dict):
        raise damaged(existing, problem, fix)
    recorded_text = yaml.safe_dump(recorded, sort_keys=False)
    diff = config_differences(recorded_text, config_text)
    if diff:
        raise damaged(existing, f"{problem}; the config given differs from the one {INFO_FILE} records "
                                f"({'; '.join(diff[:5])})", fix)
    return recorded_text


def prepare_run_dir(run_dir: Path, config_text: str, *, overwrite: bool, resume: bool):
    """Create ``run_dir`` for a new run, or tidy it to resume, and return its lock (:func:`lock_run_dir`), to be
    held while training and closed at the end.

    Checks with :func:`check_run_dir` first. Resuming removes what a killed process may have left half-written
    (temporary checkpoint and weight directories) and rewrites the config (epochs and max_steps may change).
    Overwriting renames the old run to :func:`replaced_path` (beside it, so nothing is copied): the new run
    deletes it once it has its first checkpoint or saved weights (:func:`drop_replaced`), and puts it back when
    it fails before that (:func:`restore_replaced`).
    """
    run_dir = Path(run_dir)
    lock = lock_run_dir(run_dir) if run_dir.is_dir() else None  # refuses a directory another process trains in
    try:
        check_run_dir(run_dir, config_text, overwrite=overwrite, resume=resume)
        if resume:
            for tmp in list((run_dir / CHECKPOINT_DIR).glob(".tmp-*")) + list(run_dir.glob(".best-*")):
                shutil.rmtree(tmp, ignore_errors=True)
        elif run_dir.exists() and any(p.name != LOCK_FILE for p in run_dir.iterdir()):
            _set_aside(run_dir)  # check_run_dir allowed it: overwrite of a seqtag run directory
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


def replaced_path(run_dir: Path) -> Path:
    """Where ``train.overwrite=true`` keeps the run it replaces until the new run has its first checkpoint:
    ``.NAME.replaced`` beside ``run_dir``."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.replaced")


def _set_aside(run_dir: Path) -> None:
    aside = replaced_path(run_dir)
    if aside.exists():
        # left by an overwrite killed before the new run's first checkpoint: the run in run_dir is that new run,
        # with nothing worth keeping unless it got further (then it replaces the older one)
        if checkpoint_path(run_dir) is None and not (run_dir / "model.safetensors").is_file():
            shutil.rmtree(run_dir)
            return
        shutil.rmtree(aside)
    os.replace(run_dir, aside)


def drop_replaced(run_dir: Path) -> None:
    """Delete the run an overwrite set aside (the new run has its first checkpoint or saved weights)."""
    shutil.rmtree(replaced_path(run_dir), ignore_errors=True)


def restore_replaced(run_dir: Path) -> None:
    """Put the run an overwrite set aside back in place of the new run, which failed before its first checkpoint."""
    shutil.rmtree(run_dir)
    os.replace(replaced_path(run_dir), run_dir)


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
