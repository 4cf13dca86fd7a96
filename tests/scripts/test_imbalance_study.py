"""scripts/imbalance_study.py: the two budgets (steps per level, sweep directories, overrides), a results.csv from
before budgets read as the fixed budget, the report of both budgets, and the equal-exposure budget end to end on a
tiny model."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # the script imports this checkout's seqtag
COMMITTED = REPO / "docs" / "study" / "imbalance"  # the fixed-budget study, written before budgets existed
FACTS = ("o_share", "entity_tokens", "tokens", "sentences", "added_sentences", "pool_passes")


@pytest.fixture
def study(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    import imbalance_study

    return imbalance_study


def committed_info(study) -> dict:
    """{level: its set's counts}, as run_study builds them, from the committed rows."""
    rows = study.committed_rows(SimpleNamespace(report=COMMITTED), {r["level"]: {} for r in
                                                                     study.read_results_csv(COMMITTED / "results.csv")})
    return {r["level"]: {k: r[k] for k in FACTS} for r in rows}


def test_equal_exposure_scales_the_steps_with_the_set(study):
    info = committed_info(study)
    assert {k: v["sentences"] for k, v in info.items()} == {"o82.3": 250, "o90.0": 578, "o92.5": 811, "o95.0": 1295,
                                                           "o97.5": 2733, "o99.0": 7106}
    steps = [study.level_steps(info, name, 240, "equal-exposure") for name in info]
    assert steps == [240, 555, 779, 1243, 2624, 6822]  # 240 x sentences / 250, rounded
    # so each entity-bearing sentence is seen as often as at 82.3 %: 240 x 32 / 250 = 30.72 times, to rounding
    for name, n in zip(info, steps):
        assert abs(n * 32 / info[name]["sentences"] - 30.72) <= 16 / info[name]["sentences"]
    assert {study.level_steps(info, name, 240, "fixed") for name in info} == {240}


def test_each_budget_has_its_own_sweep_directories_and_evaluation(study, tmp_path):
    assert study.level_dir(tmp_path, "o90.0", "fixed") == tmp_path / "o90.0"
    assert study.level_dir(tmp_path, "o90.0", "equal-exposure") == tmp_path / "o90.0-exposure"
    args = SimpleNamespace(budget="equal-exposure", batch=32, overrides=["train.seed=3"])
    exposure = study.level_overrides(Path("o90.0.txt"), 555, args)
    assert {"train.max_steps=555", "train.eval_every_epoch=true", "train.batch_size=32"} <= set(exposure)
    assert exposure[-1] == "train.seed=3"
    fixed = study.level_overrides(Path("o90.0.txt"), 240, SimpleNamespace(**{**vars(args), "budget": "fixed"}))
    assert [o for o in fixed if o not in exposure] == ["train.max_steps=240", "train.eval_every_epoch=false"]


def test_a_report_of_fixed_rows_alone_is_what_it_was(study, tmp_path):
    """The committed study (no budget column) reads as the fixed budget and gives its committed tables and CSV back
    byte for byte: no budget column, no steps columns."""
    rows = study.committed_rows(SimpleNamespace(report=COMMITTED), committed_info(study))
    assert len(rows) == 120 and {r["budget"] for r in rows} == {"fixed"}
    study.report(rows, tmp_path)
    for name in ("tables.md", "results.csv"):
        assert (tmp_path / name).read_text() == (COMMITTED / name).read_text(), name


def test_an_equal_exposure_sweep_beside_the_committed_fixed_rows(study, tmp_path):
    """A sweep directory of the equal-exposure budget whose run has the same name as a committed fixed-budget run:
    both rows are kept, each with its budget; the report gains the budget, steps and best-step columns, and reads
    back."""
    from seqtag.study.report import write_results

    info = committed_info(study)
    report = tmp_path / "report"
    report.mkdir()
    shutil.copy(COMMITTED / "results.csv", report / "results.csv")
    args = SimpleNamespace(report=report, out=tmp_path / "study")
    (args.out / "o90.0-exposure").mkdir(parents=True)
    run = {"setting": "cross_entropy", "loss": "cross_entropy", "params": "{}", "lr": 2e-4, "status": "finished",
           "dev_f1": 0.6, "test_f1": 0.55, "steps": 555, "wall_time_s": 300.0}
    write_results([{**run, "seed": 1, "best_step": 444, "run": "cross_entropy-lr2e-4-s1"},
                   {**run, "seed": 2, "best_step": 370, "test_f1": 0.57, "run": "cross_entropy-lr2e-4-s2"}],
                  {"cross_entropy": 2e-4}, args.out / "o90.0-exposure", plots=False)
    rows = study.collect(args, info)
    assert len(rows) == 122
    mine = [r for r in rows if r["budget"] == "equal-exposure"]
    assert [(r["level"], r["run"], r["steps"], r["best_step"], r["sentences"]) for r in mine] == [
        ("o90.0", "cross_entropy-lr2e-4-s1", 555, 444, 578), ("o90.0", "cross_entropy-lr2e-4-s2", 555, 370, 578)]
    assert [r["test_f1"] for r in rows if r["level"] == "o90.0" and r["run"] == "cross_entropy-lr2e-4-s1"] == [
        0.55, 0.6036736135641115]  # the new run, and the committed fixed-budget one
    study.report(rows, report)
    table = (report / "tables.md").read_text()
    assert table.startswith("| O share | budget | setting | lr | seeds | dev F1 | test F1 | test ΔF1 vs CE (wins) | "
                            "steps | best dev step |\n")
    assert "| 90.0 % | equal exposure | `cross_entropy` | 0.0002 | 2 | 60.00 ± 0.00 | 56.00 ± 1.41 |  | 555 | " \
           "407 ± 52 |" in table
    assert "| 90.0 % | fixed | `cross_entropy` | 0.0002 | 3 | 64.57 ± 0.61 | 59.75 ± 0.96 |  |  |  |" in table
    with open(report / "results.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[:3] == ["level", "budget", "o_share"] and header[-4:] == ["steps", "best_step", "wall_time_s", "run"]
    again = study.committed_rows(args, info)
    assert [(r["budget"], r.get("best_step")) for r in again if r["budget"] != "fixed"] == [
        ("equal-exposure", 444), ("equal-exposure", 370)]
    assert (report / "curves.png").stat().st_size > 10_000


def test_the_equal_exposure_budget_end_to_end(tmp_path):
    """Tiny model, the entity sentences alone and one level, one setting: the fixed budget first (its report has
    no budget column, as before budgets), then equal exposure beside it: its own directories, steps grown with the
    set, dev after every epoch, the best epoch's step recorded; then, without run directories, nothing is trained
    again."""
    from tests.tiny import sentences, tiny_config, write_config, write_conll

    write_config(tmp_path / "c.yaml", tiny_config(tmp_path))
    empty = [[(w, "O") for w in f"the city of new {w}".split()] for w in ("york", "rome", "paris") * 8]
    write_conll(tmp_path / "train.txt", [*sentences(30, 1), *empty])
    out, report = tmp_path / "study", tmp_path / "report"
    args = [sys.executable, "scripts/imbalance_study.py", "--config", str(tmp_path / "c.yaml"), "--out", str(out),
            "--report", str(report), "--entity-sentences", "10", "--levels", "0.9", "--steps", "6", "--batch", "4",
            "--lrs", "1e-3", "--seeds", "1", "--losses", "cross_entropy"]
    for budget in ("fixed", "equal-exposure"):
        proc = subprocess.run([*args, "--budget", budget], cwd=REPO, capture_output=True, text=True, env=ENV)
        assert proc.returncode == 0, proc.stderr[-2000:]
        if budget == "fixed":
            assert next(csv.reader(open(report / "results.csv")))[:2] == ["level", "o_share"]
    assert proc.stderr.count("1 run to train (0 already done), about ") == 2  # one sweep a level
    assert "run 1 of 1: cross_entropy-lr1e-3-s1 (elapsed 0 min, time left known after the first run)" in proc.stderr
    sets = json.loads((out / "data" / "sets.json").read_text())
    base, level = sets
    rows = list(csv.DictReader(open(report / "results.csv")))
    assert sorted((r["budget"], r["level"]) for r in rows) == sorted(
        (b, lv) for b in ("fixed", "equal-exposure") for lv in (base, level))
    for r in rows:
        run_dir = out / (r["level"] if r["budget"] == "fixed" else f"{r['level']}-exposure") / "runs" / r["run"]
        epochs = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()
                  if '"type": "epoch"' in line]
        evaluated = [e["step"] for e in epochs if e["dev"]]
        if r["budget"] == "fixed":
            assert int(r["steps"]) == 6 and evaluated == [6]  # dev once, after the last step
            continue
        steps = round(6 * sets[r["level"]]["sentences"] / sets[base]["sentences"])
        per_epoch = -(-sets[r["level"]]["sentences"] // 4)  # batches of 4 sentences, one window each
        assert int(r["steps"]) == steps and (steps == 6 if r["level"] == base else steps > 6)
        assert evaluated == [*range(per_epoch, steps, per_epoch), steps]  # every epoch, and the last step
        assert int(r["best_step"]) in evaluated  # the step of the epoch whose weights were kept
        assert float(r["wall_time_s"]) > 0
    # a fresh checkout: the committed report stands in for the run directories of both budgets
    before = (report / "results.csv").read_text()
    shutil.rmtree(out)
    proc = subprocess.run([*args, "--budget", "equal-exposure"], cwd=REPO, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("recorded earlier, skipped") == 2 and "run 1 of" not in proc.stderr
    assert proc.stderr.count("0 runs to train (1 already done)") == 2
    assert (report / "results.csv").read_text() == before
