import csv
import json

import pytest

from seqtag.errors import ConfigError, LossConfigError
from seqtag.sweep import (
    LossSetting,
    choose_lrs,
    mean_std,
    parse_loss_settings,
    run_name,
    summarise,
    write_results,
)


def test_parse_settings_and_labels():
    s = parse_loss_settings(["cross_entropy", "focal:gamma=2,alpha=[1,2,3]", "inv=cross_entropy:weight=inverse_frequency"])
    assert s[0] == LossSetting("cross_entropy", {})
    assert s[1].params == {"gamma": 2, "alpha": [1, 2, 3]} and s[1].slug == "focal_alpha[1, 2, 3]_gamma2"
    assert s[2].slug == "inv" and s[2].params == {"weight": "inverse_frequency"}
    assert run_name(s[0], 2e-4, 3) == "cross_entropy-lr2e-4-s3"


def test_parse_settings_errors():
    with pytest.raises(LossConfigError, match="focal"):
        parse_loss_settings(["focall"])
    with pytest.raises(LossConfigError, match="gamma"):
        parse_loss_settings(["focal:gamma=-2"])
    with pytest.raises(ConfigError, match="param=value"):
        parse_loss_settings(["focal:gamma"])
    with pytest.raises(ConfigError, match="repeat"):
        parse_loss_settings(["focal:gamma=1", "focal:gamma=1"])


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
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 6 and rows[4]["status"] == "failed (exit 2)"
    assert (tmp_path / "f1_by_loss.png").stat().st_size > 1000
    json.dumps(rows)
