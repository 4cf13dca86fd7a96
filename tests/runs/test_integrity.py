"""Damaged files in a run directory or a checkpoint: every file seqtag reads from one, cut short or garbled,
stops ``predict``, ``evaluate`` and a resume with exit 2, the file's name and what to do, never a traceback.

One tiny CRF run (so it has a transitions file) with its checkpoint is trained once; each test damages one file
of a copy and runs the command line on it: in a subprocess for the weights (as a user would), in this process
for the rest of the file kinds (the same ``main``, faster).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seqtag.cli import main
from seqtag.runs import file_problem
from tests.cli_subprocess import run_seqtag, user_error
from tests.tiny import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")

RUN_FILES = ["model.safetensors", "crf_transitions.safetensors", "config.json", "tokenizer.json",
             "tokenizer_config.json", "seqtag_config.yaml", "run_info.json", "metrics.json"]
CHECKPOINT_FILES = ["checkpoints/last/model.safetensors", "checkpoints/last/optimizer.bin",
                    "checkpoints/last/random_states_0.pkl", "checkpoints/last/custom_checkpoint_0.pkl",
                    "checkpoints/last/seqtag_state.json", "model.safetensors", "crf_transitions.safetensors"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    from seqtag.config import from_dict
    from seqtag.training.loop import train

    root = tmp_path_factory.mktemp("integrity")
    cfg = tiny_config(root, n_train=12, n_test=0, model={"head": "crf"}, train={"epochs": 1})
    return train(from_dict(cfg)), cfg


def damaged_copy(trained, tmp_path: Path, name: str, how: str = "half") -> Path:
    """A copy of the trained run with ``name`` cut to half its bytes (``how="half"``), or cut after its first
    ``how`` lines (a YAML file cut at a line end)."""
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    path = copy / name
    if how == "half":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[: int(how)]))
    return copy


def cli(capsys, *argv) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def error(rc: int, err: str, command: str) -> str:
    """The one-line user error (exit 2, no traceback) of an in-process run."""
    assert rc == 2, err
    assert "Traceback" not in err
    head = f"seqtag {command}: error: "
    (line,) = [x[x.index(head):] for x in err.splitlines() if head in x]
    return line[len(head):]


def test_the_tiny_run_has_every_file_kind(trained):
    run, _ = trained
    for name in RUN_FILES + CHECKPOINT_FILES:
        assert (run / name).is_file(), name
        assert file_problem(run / name) is None, name


def test_truncated_weights_stop_predict_and_evaluate_with_exit_2_in_a_subprocess(trained, tmp_path):
    run = damaged_copy(trained, tmp_path, "model.safetensors")
    _, cfg = trained
    for command, args in (("predict", ["--text", "John lives in Paris ."]), ("evaluate", ["--data", cfg["data"]["dev"]])):
        msg = user_error(run_seqtag(command, run, *args, cwd=tmp_path), command)
        assert msg.startswith(f"{run / 'model.safetensors'} is damaged: ")
        assert "incomplete metadata, file not fully covered" in msg
        assert f"seqtag train {run / 'seqtag_config.yaml'} train.overwrite=true" in msg  # what to do
        assert "download it again" in msg


def test_truncated_checkpoint_weights_stop_a_resume_with_exit_2_in_a_subprocess(trained, tmp_path):
    run = damaged_copy(trained, tmp_path, "checkpoints/last/model.safetensors")
    res = run_seqtag("train", run / "seqtag_config.yaml", "train.resume=true", f"train.output_dir={run}", cwd=tmp_path)
    msg = user_error(res, "train")
    assert msg.startswith(f"{run / 'checkpoints/last/model.safetensors'} is damaged: ")
    assert f"the run cannot be resumed: start it again with seqtag train {run / 'seqtag_config.yaml'} " \
           f"train.overwrite=true" in msg


@pytest.mark.parametrize("name", RUN_FILES)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_every_damaged_run_file_is_named_with_the_fix(trained, tmp_path, capsys, name, command):
    run = damaged_copy(trained, tmp_path, name)
    _, cfg = trained
    args = ["--text", "John lives in Paris ."] if command == "predict" else ["--data", cfg["data"]["dev"]]
    msg = error(*cli(capsys, command, run, *args, "--output", tmp_path / "out"), command)
    assert msg.startswith(f"{run / name} is damaged: "), msg
    if name == "seqtag_config.yaml":
        assert "train it again with the config file you trained it with and train.overwrite=true" in msg
    elif name == "run_info.json":  # the status is unknown: both ways
        assert f"if the run was not finished, continue it (which writes run_info.json again): seqtag train " \
               f"{run / 'seqtag_config.yaml'} train.resume=true" in msg
        assert "train.overwrite=true" in msg
    else:
        assert f"train it again: seqtag train {run / 'seqtag_config.yaml'} train.overwrite=true" in msg
    assert not (tmp_path / "out").exists()


def test_a_config_cut_at_a_line_end_is_found_though_it_parses(trained, tmp_path, capsys):
    """Cut after its first 20 lines the saved config is valid YAML, its other keys silently at their defaults."""
    run = damaged_copy(trained, tmp_path, "seqtag_config.yaml", how="20")
    assert file_problem(run / "seqtag_config.yaml") is None  # it parses
    msg = error(*cli(capsys, "predict", run, "--text", "John lives in Paris ."), "predict")
    assert msg.startswith(f"{run / 'seqtag_config.yaml'} is damaged: it lacks ")
    assert "which run_info.json records (the file was cut short)" in msg


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_every_damaged_checkpoint_file_stops_a_resume_before_anything_changes(trained, tmp_path, capsys, name):
    run = damaged_copy(trained, tmp_path, name)
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    msg = error(*cli(capsys, "train", run / "seqtag_config.yaml", "train.resume=true", f"train.output_dir={run}"),
                "train")
    assert msg.startswith(f"{run / name} is damaged: "), msg
    assert f"the run cannot be resumed: start it again with seqtag train {run / 'seqtag_config.yaml'} " \
           f"train.overwrite=true" in msg
    if name.startswith("model") or name.startswith("crf"):
        assert "(the best weights saved so far)" in msg
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before  # nothing was written


def test_a_checkpoint_whose_archive_fails_its_crc_is_found(trained, tmp_path, capsys):
    """Garbled in the middle (a bad copy), not cut short: the zip's CRC-32 finds it."""
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    path = copy / "checkpoints/last/optimizer.bin"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    msg = error(*cli(capsys, "train", copy / "seqtag_config.yaml", "train.resume=true", f"train.output_dir={copy}"),
                "train")
    assert msg.startswith(f"{path} is damaged: member ") and "fails its CRC check" in msg


def test_a_damaged_saved_config_given_to_resume_says_to_use_the_original(trained, tmp_path, capsys):
    run = damaged_copy(trained, tmp_path, "seqtag_config.yaml")
    msg = error(*cli(capsys, "train", run / "seqtag_config.yaml", "train.resume=true", f"train.output_dir={run}"),
                "train")
    assert f"{run / 'seqtag_config.yaml'} is the saved config of the run in {run}, and it is damaged" in msg
    assert "resume with the config file the run was started from" in msg


def test_resume_with_the_original_config_rewrites_a_damaged_saved_config(trained, tmp_path, capsys):
    """The config ``run_info.json`` records stands in for the damaged file; resuming writes the file again."""
    from tests.tiny import write_config

    run, cfg = trained
    copy = damaged_copy(trained, tmp_path, "seqtag_config.yaml", how="20")
    original = write_config(tmp_path / "original.yaml", {**cfg, "train": {**cfg["train"], "output_dir": str(copy)}})
    rc, err = cli(capsys, "train", original, "train.resume=true")
    assert rc == 0, err
    assert (copy / "seqtag_config.yaml").read_text() == (run / "seqtag_config.yaml").read_text().replace(
        str(run), str(copy))
    assert json.loads((copy / "run_info.json").read_text())["status"] == "finished"
