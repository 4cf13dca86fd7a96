import csv
import json

import pytest

from seqtag.errors import ConfigError, LossConfigError
from seqtag.study.sweep import LossSetting, choose_lrs, parse_loss_settings, run_name


def test_parse_settings_and_labels():
    s = parse_loss_settings(["cross_entropy", "focal:gamma=2,alpha=[1,2,3]", "inv=cross_entropy:weight=inverse_frequency"])
    assert s[0] == LossSetting("cross_entropy", {})
    assert s[1].params == {"gamma": 2, "alpha": [1, 2, 3]} and s[1].slug == "focal_alpha[1, 2, 3]_gamma2"
    assert s[2].slug == "inv" and s[2].params == {"weight": "inverse_frequency"}
    assert run_name(s[0], 2e-4, 3) == "cross_entropy-lr2e-4-s3"


def test_parse_settings_with_head_and_decoding():
    s = parse_loss_settings(["cross_entropy@decoding=viterbi", "crf=cross_entropy@head=crf,decoding=viterbi",
                             "focal:gamma=2,alpha=[1,2]@head=linear"])
    assert s[0] == LossSetting("cross_entropy", {}, "", {"decoding": "viterbi"})
    assert s[0].slug == "cross_entropy@decoding=viterbi" and s[0].overrides() == ["predict.decoding=viterbi"]
    assert (s[1].slug, s[1].overrides()) == ("crf", ["model.head=crf", "predict.decoding=viterbi"])
    assert s[2].params == {"gamma": 2, "alpha": [1, 2]} and s[2].options == {"head": "linear"}
    assert run_name(s[0], None, 1) == "cross_entropy@decoding=viterbi-s1"
    with pytest.raises(ConfigError, match=r"option one of head, decoding"):
        parse_loss_settings(["cross_entropy@colour=red"])
    with pytest.raises(ConfigError, match=r"head='cnn': valid values: linear, crf"):
        parse_loss_settings(["cross_entropy@head=cnn"])
    with pytest.raises(ConfigError, match="repeat"):
        parse_loss_settings(["cross_entropy@head=crf", "cross_entropy@head=crf"])


def test_parse_settings_errors():
    with pytest.raises(LossConfigError, match="focal"):
        parse_loss_settings(["focall"])
    with pytest.raises(LossConfigError, match="gamma"):
        parse_loss_settings(["focal:gamma=-2"])
    with pytest.raises(ConfigError, match="param=value"):
        parse_loss_settings(["focal:gamma"])
    with pytest.raises(ConfigError, match="repeat"):
        parse_loss_settings(["focal:gamma=1", "focal:gamma=1"])


def test_best_lr_per_setting():
    rows = [{"setting": "ce", "lr": 1e-4, "seed": 1, "status": "finished", "dev_f1": 0.30},
            {"setting": "ce", "lr": 2e-4, "seed": 1, "status": "finished", "dev_f1": 0.40},
            {"setting": "fl", "lr": 1e-4, "seed": 1, "status": "finished", "dev_f1": 0.50},
            {"setting": "fl", "lr": 2e-4, "seed": 1, "status": "failed (exit 2)"}]
    assert choose_lrs(rows) == {"ce": 2e-4, "fl": 1e-4}
    # a setting that decodes ce's runs again takes ce's rate, even where its own dev F1 peaks elsewhere
    rows += [{"setting": "vit", "decoded_from": "ce", "lr": 1e-4, "seed": 1, "status": "finished", "dev_f1": 0.45},
             {"setting": "vit", "decoded_from": "ce", "lr": 2e-4, "seed": 1, "status": "finished", "dev_f1": 0.41}]
    assert choose_lrs(rows)["vit"] == 2e-4


def test_a_real_sweep_runs_resumes_and_survives_a_failed_run(tmp_path, capsys):
    """Tiny runs in subprocesses: 2 settings x 2 learning rates (seed 1), then seed 2 at each best rate; a setting
    whose alpha list has the wrong length fails at its first step, is reported, and the sweep goes on."""
    from seqtag.study.sweep import run_sweep
    from tests.tiny import tiny_config, write_config

    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, train={"epochs": 1}))
    settings = parse_loss_settings(["cross_entropy", "focal:gamma=1", "bad=focal:alpha=[1,2]",
                                    "cross_entropy@decoding=viterbi"])
    md = run_sweep(str(cfg), [], settings, [1, 2], tmp_path / "sweep", lrs=[1e-3, 3e-3])
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "results.csv")))
    assert len(rows) == 4 * 2 + 4  # grid, then one more seed per setting
    # the re-decoded setting takes the rate cross_entropy chose, and its seed-2 run decodes cross_entropy's
    vit = [r for r in rows if r["setting"] == "cross_entropy@decoding=viterbi" and r["seed"] == "2"]
    assert {r["decoded_from"] for r in rows if r["setting"] == "cross_entropy@decoding=viterbi"} == {"cross_entropy"}
    ce = [r for r in rows if r["setting"] == "cross_entropy" and r["seed"] == "2"]
    assert len(vit) == len(ce) == 1 and vit[0]["lr"] == ce[0]["lr"] and vit[0]["status"] == "finished"
    rows = [r for r in rows if r["setting"] != "cross_entropy@decoding=viterbi"]
    bad = [r for r in rows if r["setting"] == "bad"]
    assert all(r["status"].startswith("failed") for r in bad)
    good = [r for r in rows if r["setting"] != "bad"]
    assert all(r["status"] == "finished" and 0 <= float(r["dev_f1"]) <= 1 for r in good)
    assert {(r["steps"], r["best_step"]) for r in good} == {("6", "6")}  # 24 sentences, batch 4, one epoch
    assert "| cross_entropy |" in md and "| focal_gamma1 |" in md
    assert not list((tmp_path / "sweep" / "runs").glob("*/checkpoints"))  # finished sweep runs keep no optimizer state
    err = capsys.readouterr().err
    assert "FAILED" in err and "alpha" in err
    # 3 settings trained (the fourth decodes cross_entropy's runs again) x (2 rates + 1 more seed), 6 steps each
    assert ("9 runs to train (0 already done), about 54 optimizer steps; the time estimate follows the first run (no "
            "finished run to measure s/step on yet); and 1 setting(s) decoded again, not counted\n") in err
    assert "after the first run: 8 runs to train (1 already done), about 48 optimizer steps; estimated " in err
    # a second call skips every finished run
    run_sweep(str(cfg), [], settings[:2], [1, 2], tmp_path / "sweep", lrs=[1e-3, 3e-3])
    assert capsys.readouterr().err.count("finished earlier, skipped") == 6
    # settings below --repeat-min-dev-f1 on the grid get no more seeds (no dev F1 reaches 1.01): only the grid is read
    run_sweep(str(cfg), [], settings[:2], [1, 2, 3], tmp_path / "sweep", lrs=[1e-3, 3e-3], repeat_min_dev_f1=1.01)
    assert len(list(csv.DictReader(open(tmp_path / "sweep" / "results.csv")))) == 4
    assert capsys.readouterr().err.count("not repeated with seeds [2, 3]") == 2


def test_a_sweep_over_heads_and_decodings_counts_argmaxs_invalid_sequences(tmp_path):
    """ce, ce decoded by Viterbi and the CRF head, one epoch each: the head and decoding are columns of
    results.csv, with argmax's invalid sequences on dev and test; a loss the CRF head cannot take stops the sweep
    before anything runs."""
    from seqtag.study.report import read_results_csv
    from seqtag.study.sweep import run_sweep
    from tests.tiny import tiny_config, write_config

    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, train={"epochs": 1, "batch_size": 8}))
    with pytest.raises(ConfigError, match="model.head=crf .* loss.name=focal"):
        run_sweep(str(cfg), [], parse_loss_settings(["cross_entropy", "focal@head=crf"]), [1], tmp_path / "bad")
    assert not (tmp_path / "bad" / "runs").exists() or not list((tmp_path / "bad" / "runs").iterdir())
    settings = parse_loss_settings(["cross_entropy", "cross_entropy@decoding=viterbi",
                                    "crf=cross_entropy@head=crf,decoding=viterbi", "again=cross_entropy@decoding=argmax"])
    md = run_sweep(str(cfg), ["predict.decoding=argmax"], settings, [1], tmp_path / "sweep")  # a setting's own wins
    rows = {r["setting"]: r for r in read_results_csv(tmp_path / "sweep" / "results.csv")}
    assert [(r["head"], r["decoding"], r["status"]) for r in rows.values()] == [
        ("linear", "argmax", "finished"), ("linear", "viterbi", "finished"), ("crf", "viterbi", "finished"),
        ("linear", "argmax", "finished")]
    # decoding-only variants are not trained: the cross_entropy run is decoded again by `seqtag evaluate`, and
    # decoding it again with argmax reproduces training's own dev and test scores to the last digit
    runs = tmp_path / "sweep" / "runs"
    for name in ("cross_entropy@decoding=viterbi-s1", "again-s1"):
        assert json.loads((runs / name / "derived.json").read_text())["source_run"] == "cross_entropy-s1"
        assert not (runs / name / "model.safetensors").exists()
    again = rows["again"]
    assert (again["dev_f1"], again["test_f1"]) == (rows["cross_entropy"]["dev_f1"], rows["cross_entropy"]["test_f1"])
    assert again["best_epoch"] == rows["cross_entropy"]["best_epoch"]
    crf_metrics = json.loads((runs / "crf-s1" / "metrics.json").read_text())
    assert set(crf_metrics) == {"dev", "test"}
    for r in rows.values():
        assert isinstance(r["dev_invalid"], int) and 0 <= r["dev_invalid"] <= 7 and 0 <= r["test_invalid"] <= 5
    # one epoch, one seed: the same weights, so argmax's count does not depend on the run's decoding
    ce, vit = rows["cross_entropy"], rows["cross_entropy@decoding=viterbi"]
    assert (ce["dev_invalid"], ce["test_invalid"]) == (vit["dev_invalid"], vit["test_invalid"])
    assert ce["dev_invalid"] > 0  # measured: 1 of 7 (an undertrained softmax tagger)
    assert "| crf |" in md and "| cross_entropy@decoding=viterbi |" in md


def test_recorded_runs_are_not_trained_again(tmp_path, capsys):
    """`seqtag sweep --recorded CSV`: a committed results.csv stands in for run directories that are gone; a
    setting it lacks is trained; a missing file is refused by name."""
    from seqtag.cli import main
    from tests.tiny import tiny_config, write_config

    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, train={"epochs": 1}))
    first = ["sweep", str(cfg), "--losses", "cross_entropy", "--seeds", "1", "--lrs", "1e-3",
             "--out", str(tmp_path / "a")]
    assert main(first) == 0
    before = list(csv.DictReader(open(tmp_path / "a" / "results.csv")))
    capsys.readouterr()
    again = ["sweep", str(cfg), "--losses", "cross_entropy", "focal:gamma=2", "--seeds", "1", "--lrs", "1e-3",
             "--out", str(tmp_path / "b"), "--recorded", str(tmp_path / "a" / "results.csv")]
    assert main(again) == 0
    err = capsys.readouterr().err
    assert "cross_entropy-lr1e-3-s1: recorded earlier, skipped" in err and "run 2 of 2: focal_gamma2-lr1e-3-s1 (elapsed " in err
    after = {r["setting"]: r for r in csv.DictReader(open(tmp_path / "b" / "results.csv"))}
    assert after["cross_entropy"]["dev_f1"] == before[0]["dev_f1"] and after["focal_gamma2"]["status"] == "finished"
    assert not (tmp_path / "b" / "runs" / "cross_entropy-lr1e-3-s1").exists()
    assert main([*again[:-1], str(tmp_path / "missing.csv")]) != 0
    assert "missing.csv: no such file" in capsys.readouterr().err


FAKE_TRAIN = """#!{python}
# stands in for `python -m seqtag train CONFIG ...`: writes a finished run of 240 steps in {wall} s, best epoch 2
import json, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.study.test_progress import fake_run
out = Path(next(a.split("=", 1)[1] for a in sys.argv if a.startswith("train.output_dir=")))
fake_run(out, steps=240, wall={wall}, best_epoch=2, epochs=[(1, 100), (2, 200), (3, 240)])
"""


def fake_python(tmp_path, wall: float):
    import stat
    import sys
    from pathlib import Path

    path = tmp_path / f"python-{wall:g}"
    path.write_text(FAKE_TRAIN.format(python=sys.executable, repo=str(Path(__file__).resolve().parents[2]), wall=wall))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_a_sweep_estimates_its_time_from_the_runs_it_holds_and_shows_progress(tmp_path, capsys):
    """Two runs of the sweep finished earlier (120 s for 240 steps each: 0.5 s/step); two are left, each of 240
    steps (train.max_steps): 4 min. The clock is a fake that advances 10 min per finished run; a run takes 360 s
    (the pace becomes 600 s / 720 steps). The rows record each run's steps and the step of its best epoch."""
    from seqtag.study.report import read_results_csv
    from seqtag.study.sweep import run_sweep
    from tests.study.test_progress import fake_run
    from tests.tiny import tiny_config, write_config

    cfg = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, train={"epochs": 1000, "max_steps": 240}))
    out = tmp_path / "sweep"
    for seed in (1, 2):
        fake_run(out / "runs" / f"cross_entropy-lr1e-3-s{seed}", steps=240, wall=120.0, best_epoch=1,
                 epochs=[(1, 240)])
    settings = parse_loss_settings(["cross_entropy", "focal:gamma=2", "cross_entropy@decoding=argmax"])
    clock = lambda: 600.0 * sum((d / "run_info.json").is_file() for d in (out / "runs").iterdir())  # noqa: E731
    capsys.readouterr()  # writing the tiny model
    run_sweep(str(cfg), [], settings[:2], [1, 2], out, lrs=[1e-3], python=fake_python(tmp_path, 360), clock=clock)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == ("2 runs to train (2 already done), about 480 optimizer steps; estimated 4 min at 0.50 s/step "
                      f"(from 2 finished runs in {out / 'runs'}: run_info.json wall time over optimizer steps, "
                      "evaluation included)")
    assert [line for line in err if line.startswith("run ")] == [
        "run 2 of 4: focal_gamma2-lr1e-3-s1 (elapsed 0 min, about 4 min left)",  # 2 x 240 x 0.5 s
        "run 4 of 4: focal_gamma2-lr1e-3-s2 (elapsed 10 min, about 3 min left)"]  # 1 x 240 x 600 / 720 s
    rows = {r["run"]: r for r in read_results_csv(out / "results.csv")}
    assert (rows["focal_gamma2-lr1e-3-s2"]["steps"], rows["focal_gamma2-lr1e-3-s2"]["best_step"]) == (240, 200)
    assert rows["cross_entropy-lr1e-3-s1"]["best_step"] == 240 and rows["cross_entropy-lr1e-3-s1"]["wall_time_s"] == 120
    # a new directory has no pace: the estimate follows the first run
    run_sweep(str(cfg), [], settings[:1], [1, 2], tmp_path / "fresh", lrs=[1e-3], python=fake_python(tmp_path, 60),
              clock=lambda: 0.0)
    err = capsys.readouterr().err.splitlines()
    assert err[:3] == [
        "2 runs to train (0 already done), about 480 optimizer steps; the time estimate follows the first run (no "
        "finished run to measure s/step on yet)",
        "run 1 of 2: cross_entropy-lr1e-3-s1 (elapsed 0 min, time left known after the first run)",
        "after the first run: 1 run to train (1 already done), about 240 optimizer steps; estimated 1 min at 0.25 "
        f"s/step (from 1 finished run in {tmp_path / 'fresh' / 'runs'}: run_info.json wall time over optimizer "
        "steps, evaluation included)"]
    assert err[4] == "run 2 of 2: cross_entropy-lr1e-3-s2 (elapsed 0 min, about 1 min left)"
