"""The run directory's life cycle: what an overwrite, a kill, a second signal and a run without dev leave behind,
the messages that say what to do from there, the checkpoint's permissions, the model card and the log.

Runs that must be killed from outside run in subprocesses through tests/test_reliability.py's driver; the rest
run in this process on the tiny model (one thread).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
from pathlib import Path

import pytest

from seqtag import runs
from seqtag.cli import main
from seqtag.config import from_dict
from seqtag.training.loop import train
from tests.test_reliability import finish, start, train_here, wait_for
from tests.tiny import tiny_config, write_config

pytestmark = pytest.mark.usefixtures("one_thread")


def snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != runs.LOCK_FILE}


def error_line(err: str, command: str) -> str:
    head = f"seqtag {command}: error: "
    (line,) = [x[x.index(head) + len(head):] for x in err.splitlines() if head in x]
    assert "Traceback" not in err
    return line


def cli(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def history_has_a_step(run: Path):
    return lambda: (run / runs.HISTORY_FILE).is_file() and '"type": "step"' in (run / runs.HISTORY_FILE).read_text()


# ----------------------------------------------------------------------------------------------- overwrite


def test_an_overwrite_that_fails_before_its_first_step_leaves_the_old_run_intact(tmp_path, monkeypatch):
    import seqtag.tasks.ner as ner

    cfg = tiny_config(tmp_path, train={"epochs": 1})
    old = train(from_dict(cfg))
    before = snapshot(old)

    def broken(*args):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(ner, "loss_step", broken)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        train(from_dict({**cfg, "train": {**cfg["train"], "overwrite": True, "seed": 8}}))
    assert snapshot(old) == before
    assert runs.read_run_info(old).status == "finished" and runs.is_finished_run(old)
    assert not runs.replaced_path(old).exists()


def test_an_overwrite_that_fails_after_some_steps_but_before_its_first_checkpoint_puts_the_old_run_back(
        tmp_path, monkeypatch):
    import seqtag.tasks.ner as ner

    cfg = tiny_config(tmp_path, train={"epochs": 1})
    old = train(from_dict(cfg))
    before = snapshot(old)
    real, calls = ner.loss_step, [0]

    def fails_at_step_3(*args):
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("out of memory")
        return real(*args)

    monkeypatch.setattr(ner, "loss_step", fails_at_step_3)
    with pytest.raises(RuntimeError, match="out of memory"):
        train(from_dict({**cfg, "train": {**cfg["train"], "overwrite": True, "seed": 8}}))
    assert snapshot(old) == before
    assert not runs.replaced_path(old).exists()


def test_an_overwrite_replaces_the_old_run_once_the_new_one_has_saved_weights(tmp_path, monkeypatch):
    import seqtag.training.loop as loop

    cfg = tiny_config(tmp_path, train={"epochs": 2})
    old = train(from_dict(cfg))
    aside = runs.replaced_path(old)
    seen = []
    real_save = loop.save_model

    def save_model(run):  # where the old run is when the new one first saves its weights, and just after
        seen.append(runs.read_run_info(aside).status if aside.is_dir() else None)
        real_save(run)
        seen.append(runs.read_run_info(aside).status if aside.is_dir() else None)

    monkeypatch.setattr(loop, "save_model", save_model)
    train(from_dict({**cfg, "train": {**cfg["train"], "overwrite": True, "seed": 8}}))
    assert seen[:2] == ["finished", "finished"]  # kept beside it until then
    assert seen[2:] == [None] * (len(seen) - 2)  # gone once the weights are saved
    assert not aside.exists()
    assert "seed: 8" in (old / runs.CONFIG_FILE).read_text()


def test_an_overwrite_killed_before_its_first_checkpoint_keeps_the_old_run_aside_and_says_where(tmp_path, capsys):
    cfg = tiny_config(tmp_path, train={"epochs": 2})
    config = write_config(tmp_path / "c.yaml", cfg)
    old = train(from_dict(cfg))
    before = snapshot(old)
    aside = runs.replaced_path(old)
    proc = start(config, "train.overwrite=true", "train.seed=8", hook="slow=0.3")
    wait_for(lambda: aside.is_dir() and history_has_a_step(old)(), proc)  # the new run's first step
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert snapshot(aside) == before  # the old run, whole
    msg = error_line(cli(capsys, "predict", old, "--text", "John lives in Paris")[1], "predict")
    assert f"the run it was to replace is kept in {aside}" in msg
    rc, err = cli(capsys, "train", config, "train.overwrite=true", "train.seed=9")
    assert rc == 0, err
    assert not aside.exists() and "seed: 9" in (old / runs.CONFIG_FILE).read_text()


# ---------------------------------------------------------------------------- killed before a checkpoint


def test_a_run_killed_before_its_first_checkpoint_is_told_the_command_that_works(tmp_path, capsys):
    """predict, resume and a plain re-run all name train.overwrite=true, the one command that works from here;
    none sends the user to another that refuses."""
    cfg = tiny_config(tmp_path, train={"epochs": 2})
    config = write_config(tmp_path / "c.yaml", cfg)
    run = Path(cfg["train"]["output_dir"])
    proc = start(config, hook="slow=0.3")
    wait_for(history_has_a_step(run), proc)
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    assert runs.checkpoint_path(run) is None and runs.read_run_info(run).status == "running"
    saved = run / runs.CONFIG_FILE
    works = f"seqtag train {saved} train.overwrite=true"

    msg = error_line(cli(capsys, "predict", run, "--text", "John lives in Paris")[1], "predict")
    assert "it stopped before its first checkpoint, so it cannot be resumed" in msg and works in msg
    assert "train.resume=true" not in msg
    msg = error_line(cli(capsys, "train", saved, "train.resume=true")[1], "train")
    assert "holds no checkpoint to resume from" in msg and works in msg
    msg = error_line(cli(capsys, "train", saved)[1], "train")
    assert f"output directory {run} already holds a run; pass train.overwrite=true to replace it" in msg
    assert "train.resume=true" not in msg

    rc, err = cli(capsys, "train", saved, "train.overwrite=true", "train.epochs=1")
    assert rc == 0, err
    assert runs.is_finished_run(run)


# ------------------------------------------------------------------------------------- a second signal


def test_a_second_sigterm_during_the_checkpoint_save_says_how_to_resume(tmp_path):
    """The first SIGTERM starts a checkpoint save (hung here); a second stops at once. The message and the
    record say where it stopped and that the epoch-1 checkpoint is kept; resuming from it finishes the run."""
    cfg = tiny_config(tmp_path, train={"epochs": 2})
    config = write_config(tmp_path / "c.yaml", cfg)
    run = Path(cfg["train"]["output_dir"])
    marker = tmp_path / "saving"
    proc = start(config, hook="slow=0.3,hang_save=2", marker=marker)
    wait_for(lambda: runs.checkpoint_path(run) is not None, proc)  # the epoch-1 checkpoint (save 1)
    proc.send_signal(signal.SIGTERM)
    wait_for(marker.exists, proc)  # inside save 2, the one the first SIGTERM asked for
    proc.send_signal(signal.SIGTERM)
    rc, err = finish(proc)
    assert rc == 143, err  # 128 + SIGTERM
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("seqtag train: ")]
    assert line.startswith("seqtag train: stopped at once by a second SIGTERM at epoch 2, step ")
    assert line.endswith(f"the last resumable checkpoint is kept in {run / 'checkpoints' / 'last'}. Continue with: "
                         f"seqtag train {run / runs.CONFIG_FILE} train.resume=true")
    info = runs.read_run_info(run)
    assert info.status == "interrupted" and info.error.startswith("stopped at once by a second SIGTERM at epoch 2")
    rc, err = train_here(run / runs.CONFIG_FILE, "train.resume=true")
    assert rc == 0, err
    assert runs.read_run_info(run).global_steps == 12


# --------------------------------------------------------------------------------- no dev, log, files


def test_a_run_without_dev_records_no_best_epoch_and_says_what_it_saves(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    run = train(from_dict(tiny_config(tmp_path, n_dev=0, train={"epochs": 2})))
    info = json.loads((run / runs.INFO_FILE).read_text())
    assert (info["best_epoch"], info["best_dev_f1"], info["epochs"]) == (None, None, 2)
    assert "dev f1" not in caplog.text
    assert "epoch 1: no dev split (data.dev is not set), so nothing chooses the best epoch: the weights of this " \
           "epoch are saved, and the run's result is its last epoch" in caplog.text


def test_the_start_of_the_log_names_what_the_crf_trains_on_and_the_precision(tmp_path, caplog):
    from seqtag.modeling.accel import resolve_precision

    caplog.set_level(logging.INFO)
    train(from_dict(tiny_config(tmp_path, model={"head": "crf"}, train={"epochs": 1, "mixed_precision": "auto"})))
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("training 24 examples")]
    resolved = resolve_precision("auto")
    assert line.endswith(f"loss: the CRF sequence negative log-likelihood, precision "
                         f"{'fp32' if resolved == 'no' else resolved} (mixed_precision: auto)")
    assert "cross_entropy" not in line


def test_checkpoint_files_get_the_usual_permissions(tmp_path):
    run = train(from_dict(tiny_config(tmp_path, train={"epochs": 1, "keep_checkpoint": True})))
    mask = os.umask(0)
    os.umask(mask)
    files = sorted((run / runs.CHECKPOINT_DIR / "last").iterdir())
    assert "model.safetensors" in [f.name for f in files]
    assert {f.name: oct(f.stat().st_mode & 0o777) for f in files} == {f.name: oct(0o666 & ~mask) for f in files}


def test_a_finished_run_holds_its_model_card(tmp_path):
    from seqtag.publish.card import render_card

    run = train(from_dict(tiny_config(tmp_path, train={"epochs": 1})))
    card = (run / "README.md").read_text(encoding="utf-8")
    assert card == render_card(run)
    assert card.startswith("---\n") and "REPO_ID" in card  # no repo id until seqtag push names one


# --------------------------------------------------------------------------------------- few steps


def test_validate_warns_when_the_run_takes_very_few_optimizer_steps(tmp_path, capsys):
    cfg = tiny_config(tmp_path)  # 24 sentences, batch 4, 2 epochs: 12 steps
    config = write_config(tmp_path / "c.yaml", cfg)
    assert main(["validate", str(config), "train.batch_size=32", "train.epochs=3"]) == 0
    err = capsys.readouterr().err
    assert "# warning: this run takes about 3 optimizer steps (24 training sentences, batch 32 x accumulation 1, " \
           "3 epochs), too few to learn much: expect dev F1 near 0 (every word O). Raise train.epochs (now 3) or " \
           "train.learning_rate (now 0.001" in err
    assert main(["validate", str(config), "train.epochs=17"]) == 0  # 6 steps x 17 epochs = 102
    assert "warning" not in capsys.readouterr().err


def test_a_zero_dev_f1_after_few_steps_gets_advice_and_the_curves_show_the_last_step(tmp_path, caplog, monkeypatch):
    """Every prediction O (forced here, so no test depends on what a barely trained model decides): dev F1 0."""
    import seqtag.tasks.ner as ner

    def all_o(scores, labels, scheme, decoding, *rest):
        return [["O"] * len(x) for x in scores], [[1.0] * len(x) for x in scores]

    monkeypatch.setattr(ner, "decode_words", all_o)
    caplog.set_level(logging.INFO)
    run = train(from_dict(tiny_config(tmp_path, train={"epochs": 3, "batch_size": 8, "log_every": 10,
                                                       "plot": True})))
    assert json.loads((run / runs.METRICS_FILE).read_text())["dev"]["f1"] == 0.0
    assert "dev F1 is 0 after only 9 optimizer steps: too few steps for this data" in caplog.text
    assert "Raise train.epochs (now 3) or train.learning_rate" in caplog.text
    steps = [json.loads(x)["step"] for x in (run / runs.HISTORY_FILE).read_text().splitlines() if '"step"' in x
             and json.loads(x)["type"] == "step"]
    assert steps == [1, 9]  # the first and the last step, though log_every is 10


def test_few_points_are_drawn_with_markers(tmp_path):
    import matplotlib.pyplot as plt

    from seqtag.training.plots import training_figure

    path = tmp_path / "h.jsonl"
    path.write_text("".join(json.dumps({"type": "step", "step": s, "loss": 1.0 / s, "lr": 1e-4}) + "\n" for s in (1, 9)))
    fig = training_figure(path)
    assert [ax.lines[0].get_marker() for ax in fig.axes[:2]] == ["o", "o"]
    plt.close(fig)
