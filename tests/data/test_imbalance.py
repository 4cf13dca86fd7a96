"""The imbalance sets (seqtag.data.imbalance) and the study script that trains on them (scripts/imbalance_study.py)."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from seqtag.data.imbalance import imbalance_sets, write_sets
from seqtag.data.readers import read_tagged
from seqtag.data.sentence import Sentence
from seqtag.errors import DataError

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}  # the script imports this checkout's seqtag


def _corpus(n: int = 60, seed: int = 0) -> list[Sentence]:
    """Sentences of 2-9 words; every third one has no entity, the others one entity word."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tags = ["O"] * rng.randint(2, 9)
        if i % 3 != 2:
            tags[rng.randrange(len(tags))] = rng.choice(["B-PER", "B-LOC"])
        out.append(Sentence(tuple(f"w{i}_{j}" for j in range(len(tags))), tuple(tags)))
    return out


def _share(sentences) -> float:
    tags = [t for s in sentences for t in s.tags]
    return 1 - sum(t != "O" for t in tags) / len(tags)


def test_sets_hold_the_entity_sentences_fixed_and_add_the_fewest_entity_free_ones():
    corpus = _corpus()
    entity = [s for s in corpus if any(t != "O" for t in s.tags)][:12]
    sets = imbalance_sets(corpus, 12, [0.9, 0.95, 0.99])
    assert [s.target for s in sets] == [None, 0.9, 0.95, 0.99]
    for s in sets:
        assert list(s.sentences[:12]) == entity  # the same first 12 entity-bearing sentences at every level
        assert all(all(t == "O" for t in x.tags) for x in s.sentences[12:])
        assert s.o_share == round(_share(s.sentences), 4) and s.entity_tokens == sets[0].entity_tokens
        if s.target is not None:
            assert _share(s.sentences) >= s.target > _share(s.sentences[:-1])  # the fewest that reach it
    for lower, higher in zip(sets, sets[1:]):  # nested: a higher level adds to the one below
        assert higher.sentences[:len(lower.sentences)] == lower.sentences
    pool = [s for s in corpus if all(t == "O" for t in s.tags)]
    pool_tokens = sum(len(s.tags) for s in pool)
    assert sets[-1].pool_passes == round((sets[-1].tokens - sets[0].tokens) / pool_tokens, 2) > 1  # reused
    assert len(set(sets[1].sentences[12:])) == sets[1].added_sentences  # no repeat before the pool runs out
    assert sets[1].name == f"o{100 * sets[1].o_share:.1f}"


def test_bad_requests_name_the_limit():
    corpus = _corpus()
    with pytest.raises(DataError, match="asked for 99 entity-bearing sentences, the file has"):
        imbalance_sets(corpus, 99, [0.9])
    with pytest.raises(DataError, match=r"targets must ascend within \(0\.\d+, 1\)"):
        imbalance_sets(corpus, 12, [0.95, 0.9])
    with pytest.raises(DataError, match="% O"):
        imbalance_sets(corpus, 12, [0.1])


def test_written_sets_read_back(tmp_path):
    sets = imbalance_sets(_corpus(), 12, [0.9])
    paths = write_sets(sets, tmp_path)
    for s in sets:
        assert read_tagged(paths[s.name]) == [Sentence(x.tokens, x.tags, str(paths[s.name]), y.line)
                                               for x, y in zip(s.sentences, read_tagged(paths[s.name]))]


def assert_delta_cells(tables: str, rows: list[dict]) -> None:
    """The main table of tables.md against results.csv: one row per level and setting, and each non-baseline row's
    test ΔF1 is its test F1 minus cross-entropy's, each at the rate its own row names; with one seed the spread is
    0.00 and the wins (1/1) when the difference is positive, else (0/1)."""
    main = [[c.strip() for c in line.strip().strip("|").split("|")] for line in tables.split("\n\n")[0].splitlines()[2:]]
    level_of = {f"{100 * float(r['o_share']):.1f} %": r["level"] for r in rows}
    rate = {(share, setting): lr for share, setting, lr, *_ in main}

    def f1_of(share: str, setting: str, lr: str) -> float:
        (row,) = [r for r in rows if r["level"] == level_of[share] and f"`{r['setting']}`" == setting
                  and float(r["lr"]) == float(lr)]
        return float(row["test_f1"])

    assert sorted(setting for _, setting, *_ in main) == sorted(
        ["`cross_entropy`", "`cross_entropy@decoding=viterbi`", "`focal_gamma2`"] * 3)
    for share, setting, lr, seeds, _, _, delta in main:
        assert seeds == "1"
        if setting == "`cross_entropy`":
            assert delta == ""
            continue
        d = f1_of(share, setting, lr) - f1_of(share, "`cross_entropy`", rate[(share, "`cross_entropy`")])
        assert delta == f"{100 * d:+.2f} ± 0.00 ({int(d > 0)}/1)", (share, setting, delta, d)


def trained_runs(stderr: str) -> list[str]:
    """The runs a sweep trained, from its progress lines ("run k of n: NAME (elapsed ...)"), less those it decoded
    again ("[k/n] NAME: decoding SOURCE again (...)")."""
    lines = stderr.splitlines()
    decoded = {line.split("] ", 1)[1].split(": ")[0] for line in lines if ": decoding " in line}
    started = [line.split(": ", 1)[1].split(" (elapsed ")[0] for line in lines if line.startswith("run ")]
    return [name for name in started if name not in decoded]


def test_the_study_script_runs_levels_grids_and_report(tmp_path):
    """Tiny model, three levels, two loss settings and one re-decoded one, two rates, one seed: the ends run the
    grid, the middle level only the rates that won at the ends; the report has one row per run with the level's
    O share and per-type F1, and the plots."""
    from tests.tiny import sentences, tiny_config, write_config, write_conll

    cfg = tiny_config(tmp_path, train={"epochs": 1})
    empty = [[(w, "O") for w in f"the city of new {w}".split()] for w in ("york", "rome", "paris") * 8]
    write_conll(tmp_path / "train.txt", [*sentences(30, 1), *empty])
    write_config(tmp_path / "c.yaml", cfg)
    out, report = tmp_path / "study", tmp_path / "report"
    args = [sys.executable, "scripts/imbalance_study.py", "--config", str(tmp_path / "c.yaml"), "--out", str(out),
            "--report", str(report), "--entity-sentences", "10", "--levels", "0.9", "0.95", "--steps", "3",
            "--batch", "4", "--lrs", "1e-3", "3e-3", "--seeds", "1", "--losses", "cross_entropy",
            "cross_entropy@decoding=viterbi", "focal:gamma=2"]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(open(report / "results.csv")))
    levels = sorted({r["level"] for r in rows}, key=lambda n: float(n[1:]))
    assert len(levels) == 3 and float(levels[1][1:]) >= 90.0 and float(levels[2][1:]) >= 95.0
    for level in (levels[0], levels[2]):  # the ends: every setting at both rates
        assert sorted((r["setting"], r["lr"]) for r in rows if r["level"] == level) == sorted(
            (s, lr) for s in ("cross_entropy", "cross_entropy@decoding=viterbi", "focal_gamma2")
            for lr in ("0.001", "0.003"))
    middle = [r for r in rows if r["level"] == levels[1]]
    assert 3 <= len(middle) <= 6 and all(r["status"] == "finished" for r in rows)
    assert all(0 <= float(r["test_f1"]) <= 1 and float(r["o_share"]) >= 0.5 for r in rows)
    assert {r["dev_f1_PER"] != "" for r in rows} == {True}
    assert_delta_cells((report / "tables.md").read_text(), rows)
    assert (report / "curves.png").stat().st_size > 10_000 and (report / "per_type_delta.png").is_file()
    # a fresh checkout (no run directories) goes on from the committed report: nothing is trained again
    import shutil

    before = (report / "results.csv").read_text()
    shutil.rmtree(out)
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("recorded earlier, skipped") == len(rows) and not trained_runs(proc.stderr)
    assert (report / "results.csv").read_text() == before
    # a setting added later trains its runs alone; a re-decoding missing from the record trains its source again
    shutil.rmtree(out)
    kept = [line for line in before.splitlines()
            if not (line.startswith(f"{levels[0]},") and ",cross_entropy@decoding=viterbi," in line and ",0.001,"
                    in line)]
    (report / "results.csv").write_text("\n".join(kept) + "\n")
    proc = subprocess.run([*args, "focal:gamma=1"], cwd=REPO, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    trained = trained_runs(proc.stderr)
    assert trained[0].startswith("cross_entropy-") and all(t.startswith("focal_gamma1-") for t in trained[1:])
    assert 5 <= len(trained) <= 7  # the source, focal γ=1 at both rates at both ends, one or two in the middle
    after = list(csv.DictReader(open(report / "results.csv")))
    assert len(after) == len(rows) + len(trained) - 1
    assert {r["test_f1"] for r in after if r["setting"] != "focal_gamma1"} == {r["test_f1"] for r in rows}
