"""seqtag.runs: the run records' schema, the run directory's lock, and what a failed start leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from seqtag import runs
from seqtag.config import from_dict
from seqtag.errors import SeqtagError
from tests.tiny import tiny_config


def test_run_info_round_trips_and_reads_older_records(tmp_path):
    info = runs.RunInfo(status="finished", task="ner", labels=["O", "B-X"], windows={
        "train": runs.WindowCounts(examples=3, windowed=1, windows=5)}, loss=runs.LossRecord("focal", {"gamma": 2}))
    runs.write_run_info(tmp_path, info)
    assert runs.read_run_info(tmp_path) == info
    old = {"status": "finished", "task": "ner", "seqeval_mode": "default (conlleval); strict also reported",
           "windows": {"dev": {"sentences": 10, "windowed_sentences": 2, "windows_of_windowed": 5}},
           "questions": {"dev": 10}, "loss": {"name": "cross_entropy", "params": {}}}
    (tmp_path / runs.INFO_FILE).write_text(json.dumps(old))
    read = runs.read_run_info(tmp_path)
    assert read.seqeval_mode == runs.SEQEVAL_MODE
    assert read.windows["dev"] == runs.WindowCounts(examples=10, windowed=2, windows=13)  # 8 one-window + 5
    (tmp_path / runs.INFO_FILE).write_text(json.dumps({"status": "done"}))
    with pytest.raises(SeqtagError, match="status must be one of"):
        runs.read_run_info(tmp_path)


def test_metrics_schema_refuses_unknown_keys(tmp_path):
    m = {"dev": runs.SplitScores(f1=0.5, precision=0.5, recall=0.5, per_type={
        "PER": runs.TypeScores(0.5, 0.5, 0.5, 2)})}
    runs.write_metrics(tmp_path / runs.METRICS_FILE, m)
    assert runs.read_metrics(tmp_path) == m
    (tmp_path / runs.METRICS_FILE).write_text(json.dumps({"dev": {"f1": 0.5, "F1": 0.5}}))
    with pytest.raises(SeqtagError, match="unknown score keys"):
        runs.read_metrics(tmp_path)


def test_the_lock_is_exclusive_names_its_holder_and_never_goes_stale(tmp_path):
    held = runs.lock_run_dir(tmp_path)
    with pytest.raises(SeqtagError, match=f"process {os.getpid()} is training in it"):
        runs.lock_run_dir(tmp_path)
    assert runs.lock_holder(tmp_path) == os.getpid()
    held.close()
    assert runs.lock_holder(tmp_path) is None
    # a holder killed with SIGKILL leaves the file, but not the lock
    code = f"import sys, time; from seqtag.runs import lock_run_dir; f = lock_run_dir({str(tmp_path)!r}); print('ok', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "ok"
    assert runs.lock_holder(tmp_path) == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / runs.LOCK_FILE).is_file() and runs.lock_holder(tmp_path) is None
    runs.lock_run_dir(tmp_path).close()


def test_training_into_a_directory_in_use_is_refused(tmp_path):
    from seqtag.training.loop import train

    cfg = from_dict(tiny_config(tmp_path, train={"epochs": 1}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    held = runs.lock_run_dir(run_dir)
    try:
        with pytest.raises(SeqtagError, match="is in use: process"):
            train(cfg)
    finally:
        held.close()
    assert sorted(p.name for p in run_dir.iterdir()) == [runs.LOCK_FILE]  # nothing written


def test_a_running_run_is_not_offered_for_resuming_while_it_trains(tmp_path):
    runs.write_run_info(tmp_path, runs.RunInfo(status="running", task="ner"))
    held = runs.lock_run_dir(tmp_path)
    with pytest.raises(SeqtagError, match="still training"):
        runs.require_finished_run(tmp_path)
    held.close()
    with pytest.raises(SeqtagError, match="stopped before its first checkpoint.*train.overwrite=true"):
        runs.require_finished_run(tmp_path)  # nobody trains it and there is nothing to resume from
    (tmp_path / runs.CHECKPOINT_DIR / "last").mkdir(parents=True)
    (tmp_path / runs.CHECKPOINT_DIR / "last" / "seqtag_state.json").write_text("{}")
    with pytest.raises(SeqtagError, match="train.resume=true"):  # with a checkpoint, resuming is the advice
        runs.require_finished_run(tmp_path)


def test_a_run_failing_before_its_first_step_leaves_nothing(tmp_path, monkeypatch):
    import seqtag.tasks.ner as ner
    from seqtag.training.loop import train

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(ner, "loss_step", broken)
    cfg = from_dict(tiny_config(tmp_path, train={"epochs": 1}))
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # the same command can simply be run again
    monkeypatch.undo()
    run = train(cfg)  # no train.overwrite needed: the failed attempt left no directory in the way
    info = runs.read_run_info(run)
    assert info.status == "finished" and info.global_steps == 6  # 24 sentences, batch 4, 1 epoch
    steps = [json.loads(line)["step"] for line in (run / runs.HISTORY_FILE).read_text().splitlines()
             if '"type": "step"' in line]
    assert steps == [1, 2, 3, 4, 5, 6]  # train.log_every 1: this run's records, nothing from the failed one
    assert set(runs.read_metrics(run)) == {"dev", "test"}
