"""The run directory: what training writes and what evaluate, predict, push, the card and sweep read.

Layout (see docs/ARCHITECTURE.md): weights, tokenizer and ``config.json`` at the top level (a plain
``from_pretrained`` directory), ``seqtag_config.yaml``, ``metrics.json``, ``run_info.json``, ``history.jsonl``,
``training_curves.png`` and ``checkpoints/last/`` (resumable state, never uploaded).

- :mod:`~seqtag.runs.records`: the file names and the two records, ``run_info.json`` (:class:`RunInfo`) and
  ``metrics.json`` (``{split: SplitScores}``), one typed schema each: every writer and reader uses them, so a key
  one side writes and the other misreads cannot exist. Every score is a **fraction in [0, 1]**.
- :mod:`~seqtag.runs.files`: atomic writes (a file is written beside its target and renamed over it).
- :mod:`~seqtag.runs.lock`: the ``flock`` that keeps two processes from training in one directory.
- :mod:`~seqtag.runs.integrity`: damaged files (cut short, garbled) found before they are used, named with the fix.
- :mod:`~seqtag.runs.directory`: checkpoints swapped in atomically, finished runs, the checks before a run starts,
  resumes or overwrites, and the old run an overwrite keeps aside until the new one has its first checkpoint.

Imports: :mod:`seqtag.errors` only. It sits low on purpose: every layer that reads or writes a run uses it.
"""

from __future__ import annotations

from seqtag.runs.directory import (  # noqa: F401
    RESUME_MAY_CHANGE,
    check_run_dir,
    checkpoint_path,
    config_differences,
    drop_replaced,
    is_finished_run,
    next_step,
    prepare_run_dir,
    replaced_path,
    require_finished_run,
    restore_replaced,
    swap_in_checkpoint,
    truncate_history,
)
from seqtag.runs.files import (  # noqa: F401
    atomic_output,
    read_json,
    usual_permissions,
    write_json_atomic,
    write_text_atomic,
)
from seqtag.runs.integrity import (  # noqa: F401
    check_checkpoint_files,
    checkpoint_fix,
    file_problem,
    run_fix,
)
from seqtag.runs.lock import (  # noqa: F401
    LOCK_FILE,
    lock_holder,
    lock_run_dir,
)
from seqtag.runs.records import (  # noqa: F401
    CHECKPOINT_DIR,
    CONFIG_FILE,
    CURVES_FILE,
    HISTORY_FILE,
    INFO_FILE,
    METRICS_FILE,
    SEQEVAL_MODE,
    STATUSES,
    LossRecord,
    Metrics,
    RunInfo,
    SplitScores,
    TypeScores,
    WindowCounts,
    read_metrics,
    read_run_info,
    write_metrics,
    write_run_info,
)
