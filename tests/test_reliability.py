"""Interruptions and crashes: SIGTERM/SIGINT save a resumable checkpoint and a resumed run ends exactly where an
uninterrupted one does; kill -9 during a checkpoint save keeps the previous checkpoint; a NaN loss stops (or is
skipped and counted); the same seed gives the same run.

Runs that are interrupted from outside run in subprocesses started through :data:`DRIVER`, which can slow
steps down or hang inside a checkpoint save, so that the test can signal or kill them at a known point. The
others run in this process. Every run uses one thread and deterministic algorithms, so "the same" means
bit-identical: metrics, weights, and the loss and learning rate of every logged step.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from seqtag import runs
from seqtag.cli import main
from seqtag.modeling.crf import TRANSITIONS_FILE, load_transitions
from tests.tiny import tiny_config, write_config

REPO = Path(__file__).resolve().parents[1]

# Hooks (env TINY_HOOK, comma-separated): slow=SECONDS sleeps in every training batch; hang_save=N writes MARKER
# and sleeps inside the N-th checkpoint save, after the checkpoint's temporary directory is complete.
DRIVER = r"""
import os, sys, time
import torch
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
import seqtag.runs as runs
import seqtag.tasks.ner as ner
hooks = dict(h.split("=", 1) for h in os.environ.get("TINY_HOOK", "").split(",") if h)
calls = {"save": 0}
real_step, real_swap = ner.loss_step, runs.swap_in_checkpoint
def loss_step(*args):
    if "slow" in hooks:
        time.sleep(float(hooks["slow"]))
    return real_step(*args)
def swap(run_dir, tmp):
    calls["save"] += 1
    if calls["save"] == int(hooks.get("hang_save", 0)):
        open(os.environ["MARKER"], "w").close()
        time.sleep(600)
    return real_swap(run_dir, tmp)
ner.loss_step, runs.swap_in_checkpoint = loss_step, swap
from seqtag.cli import main
sys.exit(main(sys.argv[1:]))
"""


def start(config: Path, *overrides: str, hook: str = "", marker: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "TINY_HOOK": hook,
           "MARKER": str(marker or "")}
    return subprocess.Popen([sys.executable, "-c", DRIVER, "train", str(config), *overrides], env=env,
                            cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, f"training ended early: {proc.communicate()}"
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / runs.HISTORY_FILE).read_text().splitlines()]


def outcome(run: Path) -> dict:
    """What must be identical between two runs: metrics, weights, and every logged loss and learning rate."""
    from safetensors.torch import load_file

    info = json.loads((run / runs.INFO_FILE).read_text())
    return {
        "metrics": json.loads((run / runs.METRICS_FILE).read_text()),
        "weights": {k: v.tolist() for k, v in load_file(run / "model.safetensors").items()},
        "steps": [(h["step"], h["loss"], h["lr"]) for h in history(run) if h["type"] == "step"],
        "epochs": [(h["epoch"], h["dev"]) for h in history(run) if h["type"] == "epoch"],
        "info": {k: info[k] for k in ("status", "epochs", "global_steps", "best_epoch", "best_dev_f1",
                                      "skipped_batches")},
    }


def experiment(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A config in tmp_path/name: 24 training sentences, batch 4 -> 6 steps per epoch, 2 epochs."""
    d = tmp_path / name
    d.mkdir()
    cfg = tiny_config(tmp_path)  # the model and data are shared; the run directory is not
    cfg["train"]["output_dir"] = str(d / "run")
    return write_config(d / "config.yaml", cfg), d / "run"


@contextmanager
def one_thread():
    """In-process runs as the subprocesses run: one thread, deterministic algorithms."""
    import torch

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def train_here(config: Path, *overrides: str) -> tuple[int, str]:
    """Run ``seqtag train`` in this process (one thread); return (exit code, stderr)."""
    import contextlib
    import io

    err = io.StringIO()
    with one_thread(), contextlib.redirect_stderr(err):
        rc = main(["train", str(config), *overrides])
    return rc, err.getvalue()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: what every interrupted-and-resumed run must reproduce exactly."""
    tmp = tmp_path_factory.mktemp("rel")
    config, run = experiment(tmp, "reference")
    rc, err = train_here(config)
    assert rc == 0, err
    return tmp, outcome(run)


def test_reference_run_is_complete(reference):
    _, ref = reference
    assert ref["info"] == {**ref["info"], "status": "finished", "epochs": 2, "global_steps": 12, "skipped_batches": 0}
    assert [s for s, _, _ in ref["steps"]] == list(range(1, 13))  # log_every=1: each step once
    assert [e for e, _ in ref["epochs"]] == [1, 2]


def test_sigterm_mid_epoch_then_resume_equals_an_uninterrupted_run(reference):
    tmp, ref = reference
    config, run = experiment(tmp, "sigterm")
    proc = start(config, hook="slow=0.15")
    wait_for(lambda: (run / runs.HISTORY_FILE).is_file() and "step" in (run / runs.HISTORY_FILE).read_text(), proc)
    proc.send_signal(signal.SIGTERM)
    rc, err = finish(proc)
    assert rc == 143, err  # 128 + SIGTERM (15)
    assert "Traceback" not in err
    assert f"Continue with: seqtag train {run / 'seqtag_config.yaml'} train.resume=true" in err
    state = json.loads((run / "checkpoints" / "last" / "seqtag_state.json").read_text())
    assert state["epoch"] == 0 and 1 <= state["batch_in_epoch"] < 6  # mid-epoch, not at its end
    assert state["global_step"] == state["batch_in_epoch"]
    assert json.loads((run / runs.INFO_FILE).read_text())["status"] == "interrupted"
    assert not runs.is_finished_run(run)

    rc, err = train_here(run / "seqtag_config.yaml", "train.resume=true")  # a fresh process is not needed
    assert rc == 0, err
    assert outcome(run) == ref


@pytest.mark.parametrize("grad_accum, signal_at, expected", [
    (1, 6, (0, 6, 6)),  # the epoch's last batch: the checkpoint holds a finished pass not yet evaluated
    (2, 3, (0, 4, 2)),  # the first batch of a 2-batch window: the step finishes, then it stops
])
def test_sigint_then_resume_equals_an_uninterrupted_run(reference, monkeypatch, caplog, grad_accum, signal_at,
                                                        expected):
    """In this process: train's handler receives the SIGINT that a batch hook sends."""
    import seqtag.tasks.ner as ner

    tmp, ref = reference
    overrides = [f"train.grad_accum={grad_accum}"]
    if grad_accum != 1:
        config, run = experiment(tmp, f"reference-accum{grad_accum}")
        assert train_here(config, *overrides)[0] == 0
        ref = outcome(run)
        assert ref["info"]["global_steps"] == 6
    config, run = experiment(tmp, f"sigint-accum{grad_accum}")
    real, calls = ner.loss_step, [0]

    def loss_step(*args):
        calls[0] += 1
        if calls[0] == signal_at:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args)

    monkeypatch.setattr(ner, "loss_step", loss_step)
    rc, err = train_here(config, *overrides)
    assert rc == 130, err
    assert "SIGINT: stopping after this step and saving a checkpoint" in caplog.text
    assert f"stopped by SIGINT at epoch 1, step {expected[2]}" in err
    state = json.loads((run / "checkpoints" / "last" / "seqtag_state.json").read_text())
    assert (state["epoch"], state["batch_in_epoch"], state["global_step"]) == expected
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is given back
    monkeypatch.undo()
    rc, err = train_here(run / "seqtag_config.yaml", "train.resume=true")
    assert rc == 0, err
    assert outcome(run) == ref


def test_sigint_then_resume_with_a_crf_head_equals_an_uninterrupted_run(reference, monkeypatch):
    """The CRF's scores, optimizer state and learning rate are in the checkpoint like the encoder's: a CRF run
    interrupted mid-epoch and resumed ends bit-identical, transitions file included."""
    import torch

    import seqtag.tasks.ner as ner

    tmp, _ = reference
    crf = ["model.head=crf"]
    config, run = experiment(tmp, "reference-crf")
    assert train_here(config, *crf)[0] == 0
    ref = outcome(run)
    ref_transitions = load_transitions(run / TRANSITIONS_FILE)
    config, run = experiment(tmp, "sigint-crf")
    real, calls = ner.crf_loss_step, [0]

    def crf_loss_step(*args):
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args)

    monkeypatch.setattr(ner, "crf_loss_step", crf_loss_step)
    rc, err = train_here(config, *crf)
    assert rc == 130, err
    state = json.loads((run / "checkpoints" / "last" / "seqtag_state.json").read_text())
    assert (state["epoch"], state["batch_in_epoch"], state["global_step"]) == (0, 3, 3)
    monkeypatch.undo()
    rc, err = train_here(run / "seqtag_config.yaml", "train.resume=true")
    assert rc == 0, err
    assert outcome(run) == ref
    got = load_transitions(run / TRANSITIONS_FILE)
    assert got[0] == ref_transitions[0] and all(torch.equal(a, b) for a, b in zip(got[1:], ref_transitions[1:]))
    assert ref["steps"] != outcome(tmp / "reference" / "run")["steps"]  # the CRF's loss is another loss


def test_kill_9_during_a_checkpoint_save_keeps_the_previous_one(reference):
    tmp, ref = reference
    config, run = experiment(tmp, "kill9")
    marker = run.parent / "saving"
    proc = start(config, hook="hang_save=2", marker=marker)
    wait_for(marker.exists, proc)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    ckpt = runs.checkpoint_path(run)
    assert ckpt == run / "checkpoints" / "last"
    assert json.loads((ckpt / "seqtag_state.json").read_text())["global_step"] == 6  # the epoch-1 checkpoint
    assert [p.name for p in (run / "checkpoints").glob(".tmp-*")] == [".tmp-12"]  # the save that was cut off
    assert json.loads((run / runs.INFO_FILE).read_text())["status"] == "running"

    rc, err = train_here(run / "seqtag_config.yaml", "train.resume=true")
    assert rc == 0, err
    assert list((run / "checkpoints").iterdir()) == [run / "checkpoints" / "last"]  # the stale temp dir is gone
    assert outcome(run) == ref  # epoch 2 re-run from the epoch-1 checkpoint; its history is logged once


def test_a_swap_cut_off_between_its_renames_leaves_last_old_loadable(tmp_path):
    """kill -9 after ``last`` became ``last.old`` but before the new one took its place."""
    ck = tmp_path / "run" / runs.CHECKPOINT_DIR
    (ck / "last.old").mkdir(parents=True)
    (ck / "last.old" / "seqtag_state.json").write_text('{"global_step": 6}')
    (ck / ".tmp-12").mkdir()  # complete but never renamed
    assert runs.checkpoint_path(tmp_path / "run") == ck / "last.old"
    new = ck / ".tmp-18"
    new.mkdir()
    (new / "seqtag_state.json").write_text('{"global_step": 18}')
    assert runs.swap_in_checkpoint(tmp_path / "run", new) == ck / "last"
    assert sorted(p.name for p in ck.iterdir()) == [".tmp-12", "last"]
    assert json.loads((ck / "last" / "seqtag_state.json").read_text()) == {"global_step": 18}


def test_truncate_history_drops_what_came_after_the_checkpoint(tmp_path):
    h = tmp_path / "history.jsonl"
    recs = [{"type": "step", "step": s, "epoch": 1 + (s > 2)} for s in (1, 2)]
    recs += [{"type": "epoch", "epoch": 1, "step": 2}, {"type": "step", "step": 3, "epoch": 2}]
    h.write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"type": "st')  # the last line cut by a kill
    assert runs.truncate_history(h, global_step=2, epoch=1) == 2
    assert [json.loads(x) for x in h.read_text().splitlines()] == recs[:3]


# ------------------------------------------------------------------------------------------ NaN and seeds


def poison(monkeypatch, at_batch: int) -> list:
    """Make the loss of training batch ``at_batch`` (1-based over the run) NaN; return the poisoned batches."""
    import seqtag.tasks.ner as ner

    real, seen, calls = ner.loss_step, [], [0]

    def loss_step(model, batch, loss):
        calls[0] += 1
        loss_sum, n, logits, targets = real(model, batch, loss)
        if calls[0] == at_batch:
            seen.append(batch["input_ids"].tolist())
            loss_sum = loss_sum * float("nan")
        return loss_sum, n, logits, targets

    monkeypatch.setattr(ner, "loss_step", loss_step)
    return seen


def test_nan_loss_stops_naming_the_step_and_examples_and_keeps_the_checkpoint(reference, monkeypatch):
    from transformers import AutoTokenizer

    tmp_path, ref = reference
    config, run = experiment(tmp_path, "nan")
    poisoned = poison(monkeypatch, at_batch=9)  # epoch 2, its third batch
    rc, err = train_here(config)
    assert rc == 2 and "Traceback" not in err
    (msg,) = [line[line.index("seqtag train: error: "):] for line in err.splitlines() if "seqtag train: error: " in line]
    assert "non-finite (NaN or infinite) loss at epoch 2, optimizer step 9, batch 3 of the epoch" in msg
    assert f"the last good checkpoint ({run / 'checkpoints' / 'last'}) is kept" in msg
    assert "train.nan_policy=skip" in msg
    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    first_example = " ".join(tok.convert_ids_to_tokens(poisoned[0][0][:12]))
    assert f"The batch's examples begin: {first_example} |" in msg
    assert json.loads((runs.checkpoint_path(run) / "seqtag_state.json").read_text())["global_step"] == 6
    info = json.loads((run / runs.INFO_FILE).read_text())
    assert info["status"] == "failed" and info["error"].startswith("non-finite")
    assert max(h["step"] for h in history(run)) == 8

    monkeypatch.undo()
    rc, err = train_here(run / "seqtag_config.yaml", "train.resume=true")
    assert rc == 0, err
    assert outcome(run) == ref  # batch 9 is a NaN no more: the resumed run is the reference run


def test_nan_policy_skip_skips_the_batch_and_counts_it(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file

    config, run = experiment(tmp_path, "skip")
    poison(monkeypatch, at_batch=3)
    rc, err = train_here(config, "train.nan_policy=skip", "train.epochs=1")
    assert rc == 0, err
    info = json.loads((run / runs.INFO_FILE).read_text())
    assert (info["status"], info["skipped_batches"], info["global_steps"]) == ("finished", 1, 5)
    assert [h["step"] for h in history(run) if h["type"] == "step"] == list(range(1, 6))
    assert all(math.isfinite(h["loss"]) for h in history(run) if h["type"] == "step")
    assert all(torch.isfinite(w).all() for w in load_file(run / "model.safetensors").values())


def test_same_seed_and_config_give_the_same_run(reference, tmp_path):
    """A second run with the reference's seed is identical to it (the subprocess runs above match it too);
    another seed is not."""
    _, ref = reference
    config, run = experiment(tmp_path, "again")
    assert train_here(config)[0] == 0
    assert outcome(run) == ref
    config, run = experiment(tmp_path, "other-seed")
    assert train_here(config, "train.seed=8", "train.epochs=1")[0] == 0
    assert outcome(run)["weights"] != ref["weights"]


def test_checkpoint_directory_is_never_half_a_checkpoint(tmp_path):
    """The temp dir is renamed into place only once complete: no 'last' without seqtag_state.json."""
    run = tmp_path / "run"
    tmp = run / runs.CHECKPOINT_DIR / ".tmp-3"
    tmp.mkdir(parents=True)
    (tmp / "model.safetensors").write_bytes(b"x")
    assert runs.checkpoint_path(run) is None  # a temp dir is never a checkpoint
    (tmp / "seqtag_state.json").write_text("{}")
    runs.swap_in_checkpoint(run, tmp)
    assert runs.checkpoint_path(run) == run / runs.CHECKPOINT_DIR / "last"
    shutil.rmtree(run)
