"""Damaged files: every file seqtag reads from a run directory or a checkpoint is checked before it is used, and
one that is cut short (a full disk, a copy that stopped) or garbled is an error that names it and says what to do.

What is checked, by kind: JSON files parse; safetensors files have a complete header whose tensors cover the file
exactly (the check ``safetensors`` itself makes, so a truncated file is found without reading its tensors);
``torch.save`` files (optimizer, scheduler and RNG states: zip archives) have their central directory and every
member's CRC-32; ``seqtag_config.yaml`` parses and holds every key the run recorded in ``run_info.json`` (a YAML
file cut at a line end still parses, with the missing keys silently at their defaults).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from seqtag.errors import SeqtagError
from seqtag.runs.records import CONFIG_FILE, INFO_FILE

TORCH_SAVE_SUFFIXES = (".bin", ".pkl", ".pt")


def file_problem(path: Path) -> str | None:
    """What is wrong with ``path`` by its kind (see the module docstring), or None when it reads whole.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.json"
    >>> _ = p.write_text('{"a": 1')
    >>> file_problem(p)
    "not valid JSON (Expecting ',' delimiter: line 1 column 8 (char 7))"
    """
    path = Path(path)
    try:
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy"):
                pass
        elif path.suffix in TORCH_SAVE_SUFFIXES:
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            if bad is not None:
                return f"member {bad} fails its CRC check"
        elif path.suffix == ".yaml":
            import yaml

            if not isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict):
                return "not a YAML mapping"
    except json.JSONDecodeError as e:
        return f"not valid JSON ({e})"
    except UnicodeDecodeError as e:
        return f"not UTF-8 text ({e.reason} at byte {e.start})"
    except zipfile.BadZipFile as e:
        return f"not a complete torch.save archive ({e})"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    except Exception as e:  # safetensors' SafetensorError, yaml's YAMLError: their messages say what is wrong
        return f"{type(e).__name__}: {' '.join(str(e).split())}"
    return None


def config_problem(run_dir: Path) -> str | None:
    """What is wrong with a run's ``seqtag_config.yaml``: it does not parse, or it lacks keys that ``run_info.json``
    records in the run's config (a file cut at a line end parses, the rest of it silently at its defaults)."""
    import yaml

    run_dir = Path(run_dir)
    problem = file_problem(run_dir / CONFIG_FILE)
    if problem is not None or file_problem(run_dir / INFO_FILE) is not None:
        return problem
    info = json.loads((run_dir / INFO_FILE).read_text(encoding="utf-8"))
    recorded = info.get("config") if isinstance(info, dict) else None
    if not isinstance(recorded, dict):
        return None
    saved = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    missing = []
    for section, values in recorded.items():
        if section not in saved:
            missing.append(section)
        elif isinstance(values, dict) and isinstance(saved[section], dict) and section != "loss":
            missing += [f"{section}.{k}" for k in values if k not in saved[section]]
    if missing:
        return f"it lacks {', '.join(missing[:5])}, which {INFO_FILE} records (the file was cut short)"
    return None


def run_fix(run_dir: Path, path: Path | None = None) -> str:
    """What to do about a damaged file of a finished run: train it again, or copy it again from its source."""
    config = run_dir / CONFIG_FILE
    again = ("train it again with the config file you trained it with and train.overwrite=true" if path == config
             else f"train it again: seqtag train {config} train.overwrite=true")
    return f"{again}; or copy the run directory again from its source, or download it again if it came from the Hub"


def checkpoint_fix(run_dir: Path) -> str:
    """What to do about a damaged checkpoint: it cannot be resumed, so the run starts again."""
    return (f"the run cannot be resumed: start it again with "
            f"seqtag train {run_dir / CONFIG_FILE} train.overwrite=true")


def damaged(path: Path, problem: str, fix: str) -> SeqtagError:
    return SeqtagError(f"{path} is damaged: {problem}; {fix}")


def check_info_file(run_dir: Path, has_checkpoint: bool) -> None:
    """``run_info.json`` reads whole; when it does not, the run's status is unknown, so the fix covers both."""
    path = Path(run_dir) / INFO_FILE
    problem = file_problem(path)
    if problem is None:
        return
    fix = run_fix(Path(run_dir))
    if has_checkpoint:
        fix = (f"if the run was not finished, continue it (which writes {INFO_FILE} again): seqtag train "
               f"{Path(run_dir) / CONFIG_FILE} train.resume=true; if it was, {fix}")
    raise damaged(path, problem, fix)


def check_run_files(run_dir: Path) -> None:
    """Every file a finished run is read from (weights, tokenizer, configs, records, CRF transitions) reads whole;
    else raise an error naming the first damaged one and what to do (:func:`run_fix`)."""
    run_dir = Path(run_dir)
    for path in sorted(run_dir.iterdir()):  # the files seqtag reads; never pickles (*.bin, *.pt), which it refuses
        if path.is_file() and not path.name.startswith(".") and path.suffix in (".json", ".safetensors", ".yaml"):
            problem = file_problem(path)
            if problem is not None:
                raise damaged(path, problem, run_fix(run_dir, path))
    config = run_dir / CONFIG_FILE
    problem = config_problem(run_dir) if config.is_file() and (run_dir / INFO_FILE).is_file() else None
    if problem is not None:
        raise damaged(config, problem, run_fix(run_dir, config))


def check_checkpoint_files(run_dir: Path, checkpoint: Path) -> None:
    """Every file a resume reads (the checkpoint's weights, optimizer, scheduler and RNG states and
    ``seqtag_state.json``; the best weights saved so far at the top of the run) reads whole; else raise an error
    naming the first damaged one (:func:`checkpoint_fix`)."""
    run_dir, checkpoint = Path(run_dir), Path(checkpoint)
    files = [p for p in sorted(checkpoint.iterdir()) if p.is_file()]
    files += [p for p in sorted(run_dir.glob("*.safetensors")) if p.is_file()]
    for path in files:
        problem = file_problem(path)
        if problem is not None:
            what = " (the best weights saved so far)" if path.parent == run_dir else ""
            raise damaged(path, f"{problem}{what}", checkpoint_fix(run_dir))
