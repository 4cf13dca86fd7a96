"""seqtag.study.progress: the pace measured on finished runs, the estimate's arithmetic, the progress line."""

import json
from pathlib import Path

from seqtag.runs import RunInfo, SplitScores, write_metrics, write_run_info
from seqtag.study.progress import (
    Pace,
    SweepProgress,
    duration,
    estimate_line,
    measured_pace,
    planned_steps,
    progress_line,
)


def fake_run(run_dir: Path, *, status: str = "finished", steps: int = 240, wall: float = 120.0,
             best_epoch: int | None = 3, epochs: list[tuple[int, int]] | None = None) -> Path:
    """A run directory with the records a sweep reads: run_info.json, metrics.json, config.json and, when
    ``epochs`` gives (epoch, step) pairs, history.jsonl's epoch records."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    write_run_info(run_dir, RunInfo(status=status, task="ner", global_steps=steps, wall_time_s=wall,
                                    best_epoch=best_epoch))
    write_metrics(run_dir / "metrics.json", {"dev": SplitScores(f1=0.5), "test": SplitScores(f1=0.4)})
    if epochs:
        (run_dir / "history.jsonl").write_text("".join(json.dumps({"type": "epoch", "epoch": e, "step": s}) + "\n"
                                                       for e, s in epochs))
    return run_dir


def test_the_pace_is_the_finished_runs_wall_time_over_their_steps(tmp_path):
    runs = tmp_path / "runs"
    assert measured_pace(runs) is None  # no directory yet
    fake_run(runs / "a", steps=240, wall=120.0)
    fake_run(runs / "b", steps=560, wall=300.0)
    fake_run(runs / "c", status="failed", steps=100, wall=900.0)  # not finished: not counted
    fake_run(runs / "d", steps=0, wall=50.0)  # took no step: not counted
    (runs / "e").mkdir()  # a re-decoding holds no run_info.json
    (runs / "e" / "derived.json").write_text("{}")
    (runs / "a.log").write_text("")
    pace = measured_pace(runs)
    assert (pace.runs, pace.steps, pace.steps_per_run) == (2, 800, 400)
    assert pace.s_per_step == 420.0 / 800  # 0.525
    assert pace.describe() == (f"from 2 finished runs in {runs}: run_info.json wall time over optimizer steps, "
                               "evaluation included")


def test_the_estimate_multiplies_runs_steps_and_pace():
    pace = Pace(0.525, runs=2, steps=800, source="d")
    # 20 runs x 1,250 steps x 0.525 s = 13,125 s = 3 h 38.75 min
    assert estimate_line(20, 7, 1250, pace) == ("20 runs to train (7 already done), about 25,000 optimizer steps; "
                                                "estimated 3 h 39 min at 0.53 s/step (from 2 finished runs in d: "
                                                "run_info.json wall time over optimizer steps, evaluation included)")
    assert estimate_line(0, 12, 240, pace).startswith("0 runs to train (12 already done), about 0 optimizer steps; "
                                                      "estimated 0 min")
    assert estimate_line(3, 0, None, None) == ("3 runs to train (0 already done); the time estimate follows the "
                                               "first run (no finished run to measure s/step on yet)")
    assert [duration(s) for s in (0, 29, 31, 89, 91, 3569, 3571, 36000 + 59 * 60)] == [
        "0 min", "0 min", "1 min", "1 min", "2 min", "59 min", "1 h 00 min", "10 h 59 min"]
    assert progress_line(3, 40, "x-s1", 12 * 60, 40 * 60) == "run 3 of 40: x-s1 (elapsed 12 min, about 40 min left)"


def test_progress_lines_follow_an_injected_clock(tmp_path):
    """No pace at first (an empty directory): the first run's line says so; once it finished (120 s for 240
    steps), the estimate is printed with its pace and the time left counts the runs still to train."""
    runs = tmp_path / "runs"
    now = [1000.0]
    p = SweepProgress(runs, to_train=3, done=1, steps_per_run=240, clock=lambda: now[0])
    assert p.estimate().endswith("the time estimate follows the first run (no finished run to measure s/step on yet)")
    assert p.before(2, 4, "a-s1") == "run 2 of 4: a-s1 (elapsed 0 min, time left known after the first run)"
    now[0] += 130
    fake_run(runs / "a-s1", steps=240, wall=120.0)
    assert p.trained(finished=True) == ("2 runs to train (2 already done), about 480 optimizer steps; estimated "
                                        f"4 min at 0.50 s/step (from 1 finished run in {runs}: run_info.json wall time "
                                        "over optimizer steps, evaluation included)")
    assert p.before(3, 4, "b-s1") == "run 3 of 4: b-s1 (elapsed 2 min, about 4 min left)"  # 130 s; 2 x 240 x 0.5
    assert p.before(3, 4, "b-s1@decoding=argmax", trains=False) == (
        "run 3 of 4: b-s1@decoding=argmax (elapsed 2 min, about 4 min left)")
    now[0] += 1850
    fake_run(runs / "b-s1", steps=240, wall=360.0)  # slower: the pace becomes 480 s / 480 steps
    assert p.trained(finished=True) is None  # the estimate is printed once
    assert p.before(4, 4, "c-s1") == "run 4 of 4: c-s1 (elapsed 33 min, about 4 min left)"  # 1 x 240 x 1.0
    p.drop(5)
    assert p.to_train == 0 and p.before(4, 4, "c-s1").endswith("about 4 min left)")  # its own run still counts
    assert p.trained(finished=False) is None and (p.to_train, p.done) == (0, 3)


def test_a_pace_stands_in_for_a_step_count_the_config_cannot_give(tmp_path):
    fake_run(tmp_path / "runs" / "a", steps=300, wall=60.0)
    fake_run(tmp_path / "runs" / "b", steps=500, wall=100.0)
    p = SweepProgress(tmp_path / "runs", to_train=2, done=2, steps_per_run=None, clock=lambda: 0.0)
    assert p.steps_per_run == 400 and p.estimate().startswith(
        "2 runs to train (2 already done), about 800 optimizer steps; estimated 3 min at 0.20 s/step")


def test_planned_steps_of_a_config(tmp_path):
    from seqtag.config import from_dict
    from tests.tiny import tiny_config

    raw = tiny_config(tmp_path, n_train=24)  # 24 sentences, batch 4: 6 steps an epoch, 2 epochs
    assert planned_steps(from_dict(raw)) == 12
    assert planned_steps(from_dict({**raw, "train": {**raw["train"], "epochs": 1000, "max_steps": 555}})) == 555
    assert planned_steps(from_dict({**raw, "train": {**raw["train"], "batch_size": 5}})) == 10  # ceil(24 / 5) x 2
