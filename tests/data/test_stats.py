"""Tests for seqtag.data.stats: a hand-counted set, the class-weight formula vs scikit-learn (and the sweep's use of it),
and WNUT-17 train against the counts in its SOURCE.md. Span decoding is tested in tests/data/test_schemes.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqtag.data.stats import format_stats, inverse_frequency_weights, label_stats
from seqtag.errors import DataError
from tests.shared import shared_file

HAND = [
    ["B-PER", "I-PER", "O", "O"],  # PER len 2
    ["I-LOC", "I-LOC", "B-LOC", "O"],  # IOB1: LOC len 2, LOC len 1
    ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "I-ORG", "O"],  # ORG len 5
    ["O", "I-PER", "B-LOC", "I-LOC"],  # PER len 1 (I- after O), LOC len 2
]


def test_hand_made_counts():
    s = label_stats(HAND)
    assert (s["sentences"], s["tokens"], s["max_sentence_length"]) == (4, 18, 6)
    assert s["mean_sentence_length"] == 4.5
    counts = {"B-LOC": 2, "B-ORG": 1, "B-PER": 1, "I-LOC": 3, "I-ORG": 4, "I-PER": 2, "O": 5}
    assert {k: v["count"] for k, v in s["labels"].items()} == counts
    assert list(s["labels"]) == sorted(counts)
    assert s["labels"]["I-ORG"]["share"] == pytest.approx(4 / 18)
    assert s["o_share"] == pytest.approx(5 / 18)
    assert s["mentions"] == 6
    assert s["entities"] == {
        "LOC": {
            "count": 3,
            "mean_length": pytest.approx(5 / 3),
            "max_length": 2,
            "length_histogram": {"1": 1, "2": 2, "3": 0, "4": 0, "5+": 0},
        },
        "ORG": {
            "count": 1,
            "mean_length": 5.0,
            "max_length": 5,
            "length_histogram": {"1": 0, "2": 0, "3": 0, "4": 0, "5+": 1},
        },
        "PER": {
            "count": 2,
            "mean_length": 1.5,
            "max_length": 2,
            "length_histogram": {"1": 1, "2": 1, "3": 0, "4": 0, "5+": 0},
        },
    }


def test_inverse_frequency_weights_by_hand_and_normalised():
    s = label_stats(HAND)
    w = s["inverse_frequency_weights"]
    # w_c = N / (C * n_c) with N = 18 tokens, C = 7 labels
    assert w["O"] == pytest.approx(18 / (7 * 5))
    assert w["B-PER"] == pytest.approx(18 / 7)
    assert w["I-ORG"] == pytest.approx(18 / 28)
    wn = s["inverse_frequency_weights_normalized"]
    assert sum(wn.values()) / len(wn) == pytest.approx(1.0)
    mean = sum(w.values()) / 7
    assert wn["O"] == pytest.approx(w["O"] / mean)
    # the "balanced" weights reproduce N: sum over tokens of w(label) = N
    assert sum(w[k] * v["count"] for k, v in s["labels"].items()) == pytest.approx(18 * 1.0)


def test_weights_match_sklearn_balanced():
    utils = pytest.importorskip("sklearn.utils")
    import numpy as np

    s = label_stats(HAND)
    y = np.array([t for sent in HAND for t in sent])
    classes = np.array(sorted(set(y)))
    ref = utils.compute_class_weight("balanced", classes=classes, y=y)
    assert [s["inverse_frequency_weights"][c] for c in classes] == pytest.approx(list(ref), abs=1e-12)


def test_bad_tag_names_sentence_and_token():
    with pytest.raises(DataError, match=r"sentence 1, token 2: malformed tag 'PER'"):
        label_stats([["O"], ["O", "B-LOC", "PER"]])


def test_inverse_frequency_weights_over_a_label_set():
    counts = {"O": 6, "B-PER": 2, "I-PER": 1}
    assert inverse_frequency_weights(counts) == pytest.approx({"B-PER": 9 / 6, "I-PER": 9 / 3, "O": 9 / 18})
    # the model's label set may hold labels the data lacks: C counts them, and they count as seen once
    w = inverse_frequency_weights(counts, ["O", "B-PER", "I-PER", "B-LOC"])
    assert list(w) == ["O", "B-PER", "I-PER", "B-LOC"]
    assert w == pytest.approx({"O": 9 / 24, "B-PER": 9 / 8, "I-PER": 9 / 4, "B-LOC": 9 / 4})
    assert inverse_frequency_weights({}) == {}


def test_sweep_class_weights_come_from_stats(tmp_path):
    """seqtag sweep's weight=inverse_frequency: the same formula, over the training label set in label-id order."""
    import yaml

    from seqtag.study.sweep import _inverse_frequency_weights

    (tmp_path / "train.txt").write_text("a B-PER\nb O\nc O\n\nd B-LOC\ne I-LOC\nf O\ng O\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"name_or_path": "m"}, "data": {"train": str(tmp_path / "train.txt")}}))
    # labels O, B-LOC, I-LOC, B-PER, I-PER (C = 5); N = 7 tokens; I-PER never seen counts as once
    assert _inverse_frequency_weights(str(cfg), []) == pytest.approx([7 / 20, 7 / 5, 7 / 5, 7 / 5, 7 / 5])


def test_empty_input():
    s = label_stats([])
    assert (s["sentences"], s["tokens"], s["o_share"], s["mentions"]) == (0, 0, 0.0, 0)
    assert s["labels"] == s["entities"] == s["inverse_frequency_weights"] == {}
    assert "sentences: 0" in format_stats(s)


def test_format_stats_rows():
    text = format_stats(label_stats(HAND))
    lines = text.splitlines()
    assert lines[0] == "sentences: 4  tokens: 18  mean length: 4.50  max length: 6"
    assert lines[1] == "O share: 0.2778  mentions: 6"
    rows = {line.split()[0]: line.split() for line in lines if line.strip()}
    assert rows["I-ORG"][1:4] == ["4", "0.2222", f"{18 / 28:.4f}"]
    assert rows["ORG"][1:] == ["1", "5.00", "5", "0", "0", "0", "0", "1"]
    assert rows["LOC"][1:] == ["3", "1.67", "2", "1", "2", "0", "0", "0"]


def read_tags(path: Path) -> list[list[str]]:
    """Minimal reader for the 2-column WNUT files: any whitespace-only line ends a sentence."""
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if current:
                sentences.append(current)
                current = []
            continue
        current.append(line.split("\t")[-1].strip())
    if current:
        sentences.append(current)
    return sentences


@pytest.mark.shared_data
def test_wnut17_train_matches_source_counts():
    s = label_stats(read_tags(shared_file("wnut17/train.txt")))
    # numbers from shared/data/wnut17/SOURCE.md
    assert (s["sentences"], s["tokens"], s["max_sentence_length"]) == (3394, 62730, 41)
    assert s["labels"]["O"]["count"] == 59570
    assert s["o_share"] == pytest.approx(59570 / 62730, abs=1e-15)
    assert round(s["o_share"], 4) == 0.9496
    assert {t: v["count"] for t, v in s["entities"].items()} == {
        "person": 660,
        "location": 548,
        "group": 264,
        "corporation": 221,
        "creative-work": 140,
        "product": 142,
    }
    assert s["mentions"] == 1975
    # IOB2 with no stray I-: every mention starts with a B- tag
    assert sum(v["count"] for k, v in s["labels"].items() if k.startswith("B-")) == 1975
    assert round(s["mean_sentence_length"], 1) == 18.5
    n_labels = len(s["labels"])
    assert n_labels == 13
    assert s["inverse_frequency_weights"]["O"] == pytest.approx(62730 / (13 * 59570))


def test_stats_command_reports_bad_files_at_file_line_in_a_subprocess(tmp_path):
    """seqtag stats reads through the training reader: file:line errors, exit 2, no traceback, nothing written."""
    from tests.cli_subprocess import listing, run_seqtag, user_error

    (tmp_path / "disease.txt").write_text("aspirin O\nfever Disease\n")
    (tmp_path / "labels.jsonl").write_text('{"tokens": ["a"], "labels": ["O"]}\n')
    (tmp_path / "latin.txt").write_bytes("Z\u00fcrich B-LOC\n".encode("latin-1"))
    before = listing(tmp_path)
    msg = user_error(run_seqtag("stats", "disease.txt", cwd=tmp_path), "stats")
    assert msg.startswith("disease.txt:2: malformed tag 'Disease'")
    msg = user_error(run_seqtag("stats", "labels.jsonl", cwd=tmp_path), "stats")
    assert msg.startswith("labels.jsonl:1: the record has no tag key 'tags' or 'ner_tags' (its keys: 'tokens', 'labels')")
    msg = user_error(run_seqtag("stats", "latin.txt", cwd=tmp_path), "stats")
    assert "latin.txt:1: byte 0xfc" in msg and "--encoding latin-1 on the command line (seqtag stats, seqtag predict)" in msg
    assert listing(tmp_path) == before


def test_stats_command_bad_input_and_its_fixes(tmp_path, capsys, monkeypatch):
    import json

    from seqtag.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bare.txt").write_text("a O\n\nb B-\n")
    (tmp_path / "ner.jsonl").write_text('{"tokens": ["a", "b"], "ner_tags": ["B-X", "O"]}\n')
    (tmp_path / "latin.txt").write_bytes("Z\u00fcrich B-LOC\n".encode("latin-1"))
    (tmp_path / "dir").mkdir()
    assert main(["stats", "bare.txt"]) == 2
    assert capsys.readouterr().err.startswith("seqtag stats: error: bare.txt:3: malformed tag 'B-'")
    assert main(["stats", "dir"]) == 2
    assert capsys.readouterr().err.startswith("seqtag stats: error: dir is a directory, not a file (it is empty)")
    assert main(["stats", "latin.txt", "--encoding", "latin-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entities"]["LOC"]["count"] == 1
    assert main(["stats", "ner.jsonl", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels"]["B-X"]["count"] == 1


@pytest.mark.parametrize("share, says", [(0.70, "keep loss.name=cross_entropy"), (0.8328, "keep loss.name=cross_entropy"),
                                         (0.9004, "keep loss.name=cross_entropy"), (0.9006, "lies between 90 %"),
                                         (0.925, "try loss.name=lstar_logodds"), (0.9449, "lies between 90 %"), (0.9496, "try loss.name=focal"),
                                         (0.99, "train longer too")])
def test_loss_advice_follows_the_measured_shares(share, says):
    from seqtag.data.stats import loss_advice

    text = loss_advice(share)
    assert says in text and f"{100 * share:.1f} % O" in text
    assert ("train longer" in text) == (share >= 0.9895)
    assert text.endswith("Measured on CoNLL-2003 subsets with MiniLM (docs/study/imbalance/README.md); run "
                         "`seqtag sweep` on your data to be sure.")


def test_stats_command_prints_the_advice_for_the_file(tmp_path, capsys):
    from seqtag.cli import main

    path = tmp_path / "rare.txt"
    path.write_text("".join(f"w{i}\tO\n" for i in range(19)) + "Paris\tB-LOC\n\n")  # 95 % O
    assert main(["stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert "O share: 0.9500" in out and "try loss.name=focal loss.gamma=2" in out
    assert main(["stats", str(path), "--json"]) == 0
    assert "loss:" not in capsys.readouterr().out  # JSON stays JSON


def test_the_advice_quotes_the_committed_imbalance_results():
    """Every Δ the advice prints recomputes from docs/study/imbalance/results.csv (paired by seed, lr 2e-4)."""
    import csv
    import statistics

    from seqtag.data.stats import MEASURED_DELTAS, MEASURED_O_SHARES

    rows = list(csv.DictReader(open(Path(__file__).parents[2] / "docs/study/imbalance/results.csv")))
    f1 = {(r["level"], r["setting"], r["seed"]): 100 * float(r["test_f1"]) for r in rows if float(r["lr"]) == 2e-4}

    def delta(level: str, setting: str) -> str:
        d = [f1[(level, setting, s)] - f1[(level, "cross_entropy", s)] for s in "123"]
        return f"{statistics.mean(d):+.1f} ± {statistics.stdev(d):.1f}"

    assert MEASURED_DELTAS["tie"] == f"{delta('o82.3', 'focal_gamma2')} at 82 %, {delta('o90.0', 'focal_gamma2')} at 90 %"
    assert MEASURED_DELTAS["between"] == (f"lstar_logodds k=2 {delta('o92.5', 'lstar_logodds_k2')} and focal γ=1 "
                                          f"{delta('o92.5', 'focal_gamma1')} on every seed, focal γ=2 "
                                          f"{delta('o92.5', 'focal_gamma2')}")
    assert MEASURED_DELTAS["gain"] == (f"{delta('o95.0', 'focal_gamma2')} at 95 %, "
                                       f"{delta('o97.5', 'focal_gamma2')} at 97.5 %")
    for level in ("o90.0", "o92.5", "o95.0", "o99.0"):
        assert float(level[1:]) / 100 in MEASURED_O_SHARES.values()
    wins = [f1[("o92.5", s, seed)] > f1[("o92.5", "cross_entropy", seed)]
            for s in ("lstar_logodds_k2", "focal_gamma1") for seed in "123"]
    assert all(wins)  # "on every seed"
