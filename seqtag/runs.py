"""The run directory: what training writes and what evaluate, predict and push read.

Layout (see docs/ARCHITECTURE.md): weights, tokenizer and ``config.json`` at the top level (a plain
``from_pretrained`` directory), ``seqtag_config.yaml``, ``metrics.json``, ``run_info.json``, ``history.jsonl``,
``training_curves.png`` and ``checkpoints/last/`` (resumable state, never uploaded).

Writes are atomic: a file is written beside its target and renamed over it; a checkpoint is written to a
temporary directory and renamed into place, so a process killed mid-save leaves the previous one intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from seqtag.errors import SeqtagError

CONFIG_FILE = "seqtag_config.yaml"
METRICS_FILE = "metrics.json"
INFO_FILE = "run_info.json"
HISTORY_FILE = "history.jsonl"
CURVES_FILE = "training_curves.png"
CHECKPOINT_DIR = "checkpoints"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
    info = Path(run_dir) / INFO_FILE
    if not info.is_file() or not (Path(run_dir) / "config.json").is_file():
        return False
    try:
        return json.loads(info.read_text(encoding="utf-8")).get("status") == "finished"
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def require_finished_run(run_dir: str | Path) -> Path:
    """Check that ``run_dir`` is a finished seqtag run; the error says what is missing and what to do."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SeqtagError(f"run directory {run_dir} does not exist; pass the output_dir of a finished `seqtag train`")
    if not (run_dir / INFO_FILE).is_file():
        raise SeqtagError(f"{run_dir} is not a seqtag run directory (no {INFO_FILE}); pass the output_dir of "
                          f"a finished `seqtag train`")
    status = read_json(run_dir / INFO_FILE).get("status")
    if status != "finished":
        raise SeqtagError(f"the run in {run_dir} is not finished (status: {status}); finish it with "
                          f"`seqtag train {run_dir / CONFIG_FILE} train.resume=true`")
    if not (run_dir / "model.safetensors").is_file() and not any(run_dir.glob("model-*.safetensors")):
        raise SeqtagError(f"{run_dir} has no model.safetensors; the run directory is incomplete")
    return run_dir


def prepare_run_dir(run_dir: Path, config_text: str, *, overwrite: bool, resume: bool) -> None:
    """Create ``run_dir`` for a new run, or check it is the same run when resuming.

    A directory that already holds a different run is refused unless ``overwrite`` (which deletes it) or
    ``resume`` (which requires the same config, apart from train.resume/overwrite/epochs/max_steps).
    """
    run_dir = Path(run_dir)
    existing = run_dir / CONFIG_FILE
    if resume:
        if checkpoint_path(run_dir) is None:
            raise SeqtagError(f"train.resume=true but {run_dir} holds no checkpoint to resume from; "
                              f"drop train.resume to start a new run")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            what = "a run" if existing.is_file() else "other files"
            raise SeqtagError(
                f"output directory {run_dir} already holds {what}; choose another train.output_dir, "
                f"or pass train.overwrite=true to replace it, or train.resume=true to continue it"
            )
        if not existing.is_file() and not (run_dir / INFO_FILE).is_file():
            raise SeqtagError(f"train.overwrite=true, but {run_dir} is not a seqtag run directory; refusing to "
                              f"delete it. Choose another train.output_dir")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(existing, config_text)
