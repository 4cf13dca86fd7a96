"""seqtag.study.report: summary numbers, tables, and the committed loss-study tables recomputed from their CSVs."""

import csv
import json
from pathlib import Path

import pytest

from seqtag.study.report import mean_std, read_results_csv, summarise, write_results
from seqtag.study.sweep import choose_lrs

STUDIES = sorted(p.parent for p in (Path(__file__).resolve().parents[2] / "docs" / "study").glob("*/results.md"))


def test_the_studies_are_there():
    assert {p.name for p in STUDIES} >= {"wnut17", "conll2003", "squad-pointer", "squad-tagging"}


@pytest.mark.parametrize("study", STUDIES, ids=lambda p: p.name)
def test_study_tables_recompute_from_the_csv(study, tmp_path):
    rows = read_results_csv(study / "results.csv")
    assert all(0 <= r["dev_f1"] <= 1 for r in rows if "dev_f1" in r)  # fractions, NER and QA alike
    first_seed = rows[0]["seed"]
    write_results(rows, choose_lrs([r for r in rows if r["seed"] == first_seed]), tmp_path, plots=False)
    assert (tmp_path / "results.md").read_text() == (study / "results.md").read_text()


ROWS = [
    {"setting": "ce", "lr": 1e-4, "seed": 1, "status": "finished", "dev_f1": 0.30, "test_f1": 0.25, "run": "a"},
    {"setting": "ce", "lr": 2e-4, "seed": 1, "status": "finished", "dev_f1": 0.40, "test_f1": 0.35, "run": "b"},
    {"setting": "ce", "lr": 2e-4, "seed": 2, "status": "finished", "dev_f1": 0.44, "test_f1": 0.33, "run": "c"},
    {"setting": "fl", "lr": 1e-4, "seed": 1, "status": "finished", "dev_f1": 0.50, "test_f1": 0.45, "run": "d"},
    {"setting": "fl", "lr": 2e-4, "seed": 1, "status": "failed (exit 2)", "run": "e"},
    {"setting": "fl", "lr": 1e-4, "seed": 2, "status": "finished", "dev_f1": 0.46, "test_f1": 0.41, "run": "f"},
]


def test_best_lr_and_summary_numbers():
    best = choose_lrs(ROWS[:2] + ROWS[3:5])
    assert best == {"ce": 2e-4, "fl": 1e-4}
    summary = {s["setting"]: s for s in summarise(ROWS, best)}
    assert summary["ce"]["seeds"] == 2 and summary["ce"]["dev_f1"] == pytest.approx((0.42, 0.0282842712), abs=1e-9)
    assert summary["fl"]["failed"] == 1 and summary["fl"]["test_f1"] == pytest.approx((0.43, 0.0282842712), abs=1e-9)
    assert mean_std([0.5]) == (0.5, 0.0)


def test_write_results_tables(tmp_path):
    write_results(ROWS, {"ce": 2e-4, "fl": 1e-4}, tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "| ce | 0.0002 | 2 | 42.00 ± 2.83 | 34.00 ± 1.41 |" in md
    assert "| fl | 0.0001 | 2 (1 failed) | 48.00 ± 2.83 | 43.00 ± 2.83 |" in md
    assert "| ce | 30.00 | 40.00 |" in md and "| fl | 50.00 | – |" in md  # the grid
    # paired by seed, fl (1e-4) minus ce (2e-4): dev +10, +2; test +10, +8
    assert "| fl | +6.00 ± 5.66 | 2/2 | +9.00 ± 1.41 | 2/2 |" in md
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 6 and rows[4]["status"] == "failed (exit 2)"
    assert (tmp_path / "f1_by_loss.png").stat().st_size > 1000
    json.dumps(rows)
