"""The command line on a tiny run: help texts, stats, predict, evaluate."""

import json

import pytest

from seqtag.cli import main
from seqtag.cli.main import COMMANDS
from tests.tiny import tiny_config, write_config


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"seqtag {command}" in out


def test_stats_reports_o_share_and_weights(tmp_path, capsys):
    f = tmp_path / "t.txt"
    f.write_text("John B-PER\nSmith I-PER\nlives O\nhere O\n\nParis B-LOC\nO O\n")
    assert main(["stats", str(f), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["tokens"] == 6 and stats["o_share"] == pytest.approx(3 / 6)
    assert stats["entities"]["PER"]["count"] == 1 and stats["entities"]["PER"]["mean_length"] == 2
    # N / (C * n_c): 6 tokens, 4 labels (O, B-PER, I-PER, B-LOC)
    assert stats["inverse_frequency_weights"]["O"] == pytest.approx(6 / (4 * 3))
    assert stats["inverse_frequency_weights"]["B-LOC"] == pytest.approx(6 / (4 * 1))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    cfg = write_config(tmp / "c.yaml", tiny_config(tmp, n_train=64, train={"epochs": 6, "batch_size": 8,
                                                                         "learning_rate": 3e-3}))
    assert main(["train", str(cfg)]) == 0
    return tmp / "run", tmp


def word_offsets(text: str, words: list[str]) -> list[tuple[int, int]]:
    """Where each word of ``words`` is in ``text``, found left to right."""
    out, pos = [], 0
    for w in words:
        start = text.index(w, pos)
        out.append((start, start + len(w)))
        pos = start + len(w)
    return out


def assert_entities_follow_the_tags(rec: dict) -> None:
    """A predicted record's entities are the spans of its own tags, at the character offsets of its words."""
    from seqtag.data.schemes import spans

    offsets = word_offsets(rec["text"], rec["words"])
    expected = [(t, a, b, offsets[a][0], offsets[b - 1][1]) for t, a, b in spans(rec["tags"], "IOB2")]
    assert [(e["type"], e["start_token"], e["end_token"], e["start"], e["end"]) for e in rec["entities"]] == expected
    assert all(rec["text"][e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1 for e in rec["entities"])


def test_predict_text_jsonl_and_conll(tiny_run, tmp_path, capsys):
    """The three ways to read predictions agree, whatever the tiny model decides; the one decision asserted is
    on a sentence of the training distribution that the model tags with a margin (its least sure word: top-1
    minus top-2 probability 0.54, measured 2026-12-07)."""
    run, _ = tiny_run
    assert main(["predict", str(run), "--text", "Mary lives in Berlin ."]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["line"] == 1 and rec["words"] == ["Mary", "lives", "in", "Berlin", "."]
    assert [(e["type"], e["text"], e["start"], e["end"]) for e in rec["entities"]] == [
        ("PER", "Mary", 0, 4), ("LOC", "Berlin", 14, 20)]
    assert_entities_follow_the_tags(rec)

    src = tmp_path / "in.txt"
    src.write_text("John Smith works at Paris .\n\nAnna visited New York .\n")
    out = tmp_path / "out.jsonl"
    assert main(["predict", str(run), "--input", str(src), "--output", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["line"] for r in lines] == [1, 2, 3] and lines[1]["words"] == [] and lines[1]["entities"] == []
    assert [r["words"] for r in lines] == [["John", "Smith", "works", "at", "Paris", "."], [],
                                           ["Anna", "visited", "New", "York", "."]]
    for r in lines:
        assert_entities_follow_the_tags(r)

    conll_out = tmp_path / "out.conll"
    assert main(["predict", str(run), "--input", str(src), "--output", str(conll_out), "--output-format", "conll"]) == 0
    rows = [row.split("\t") for row in conll_out.read_text().splitlines() if row]
    assert rows == [[w, t] for r in lines for w, t in zip(r["words"], r["tags"])]  # the tags of the JSON records


def test_evaluate_matches_training_and_writes_conlleval_rows(tiny_run, tmp_path, capsys):
    run, tmp = tiny_run
    out, pred = tmp_path / "m.json", tmp_path / "pred.txt"
    assert main(["evaluate", str(run), "--data", str(tmp / "dev.txt"), "--output", str(out),
                 "--predictions", str(pred)]) == 0
    assert json.loads(out.read_text()) == json.loads((run / "metrics.json").read_text())["dev"]
    rows = [r.split() for r in pred.read_text().splitlines() if r]  # word gold pred
    gold = [r.split() for r in (tmp / "dev.txt").read_text().splitlines() if r]
    assert [r[:2] for r in rows] == gold and {r[2] for r in rows} <= {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}
    assert "micro avg" in capsys.readouterr().out


def test_evaluate_split_test_scores_the_runs_test_file(tiny_run, tmp_path, capsys):
    run, tmp = tiny_run
    out = tmp_path / "m.json"
    assert main(["evaluate", str(run), "--split", "test", "--output", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads((run / "metrics.json").read_text())["test"]
    assert capsys.readouterr().out.startswith("== data.test\n")
    # no output may replace the split's file
    assert main(["evaluate", str(run), "--split", "test", "--predictions", str(tmp / "test.txt")]) == 2
    assert f"error: --predictions {tmp / 'test.txt'} is the --split test file {tmp / 'test.txt'}" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "RUN"], "error: one of the arguments --data --split is required"),
    (["evaluate", "RUN", "--data", "d.txt", "--split", "test"], "error: argument --split: not allowed with argument --data"),
    (["evaluate", "RUN", "--split", "train"], "error: argument --split: invalid choice: 'train'"),
])
def test_evaluate_takes_a_file_or_a_split(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_version_and_top_level_help(capsys):
    from seqtag import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"seqtag {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "seqtag train configs/quickstart.yaml" in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_argument_has_help_and_examples_run_from_a_clone(command):
    from seqtag.cli.parser import EXAMPLES, build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    undocumented = [a.dest for a in sub._actions if a.dest != "help" and not a.help]
    assert not undocumented
    assert "../shared" not in EXAMPLES[command] and "lstar:k" not in EXAMPLES[command]  # fresh-clone paths only


def test_text_and_input_together_are_refused(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    (tmp_path / "in.txt").write_text("Mary\n")
    assert main(["predict", str(run), "--text", "Mary", "--input", str(tmp_path / "in.txt")]) == 2
    assert "not both" in capsys.readouterr().err


def test_outputs_into_a_missing_directory_fail_before_the_work(tiny_run, tmp_path, capsys, monkeypatch):
    import seqtag.tasks.evaluate

    run, tmp = tiny_run
    monkeypatch.setattr(seqtag.tasks.evaluate, "evaluate_run", lambda *a, **k: pytest.fail("evaluated anyway"))
    for flag in ("--output", "--predictions"):
        assert main(["evaluate", str(run), "--data", str(tmp / "dev.txt"), flag, str(tmp_path / "no" / "m.json")]) == 2
        assert "does not exist" in capsys.readouterr().err
    assert main(["predict", str(run), "--text", "Mary", "--output", str(tmp_path / "no" / "o.jsonl")]) == 2


def test_evaluate_takes_data_overrides_only(tiny_run, capsys):
    run, tmp = tiny_run
    assert main(["evaluate", str(run), "--data", str(tmp / "dev.txt"), "data.unseen_labels=map_to_o"]) == 0
    assert main(["evaluate", str(run), "--data", str(tmp / "dev.txt"), "train.epochs=2"]) == 2
    assert "data.* overrides only" in capsys.readouterr().err


def test_stats_into_a_closed_pipe_is_quiet(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    f = tmp_path / "t.txt"
    f.write_text("".join(f"w{i} B-PER\nx O\n\n" for i in range(3000)))
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(f"{sys.executable} -m seqtag stats {f} --json | head -1", shell=True, capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.stdout.strip() == "{" and "Broken pipe" not in res.stderr and "Traceback" not in res.stderr


def test_written_files_respect_the_umask(tiny_run):
    import os
    import stat

    run, _ = tiny_run
    mask = os.umask(0)
    os.umask(mask)
    for name in ("metrics.json", "run_info.json", "seqtag_config.yaml", "model.safetensors", "config.json"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~mask, name


def test_predict_bf16_on_a_gpu_without_bf16_is_a_clear_error(tiny_run, monkeypatch, capsys):
    import torch

    run, _ = tiny_run
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100-SXM2-16GB")
    assert main(["predict", str(run), "--text", "Mary lives in Berlin .", "--bf16"]) == 2
    assert capsys.readouterr().err == ("seqtag predict: error: --bf16 asks for bf16, which this GPU (Tesla "
                                       "V100-SXM2-16GB) does not support; run without --bf16 (fp32)\n")


def test_predict_bf16_on_a_cpu_that_emulates_it_warns(tiny_run, monkeypatch, caplog, capsys):
    import seqtag.modeling.accel

    run, _ = tiny_run
    monkeypatch.setattr(seqtag.modeling.accel, "bf16_is_emulated", lambda: True)
    assert main(["predict", str(run), "--text", "Mary lives in Berlin .", "--bf16"]) == 0
    assert json.loads(capsys.readouterr().out)["words"] == ["Mary", "lives", "in", "Berlin", "."]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and warnings[0].startswith("bf16 on this CPU is emulated")
    assert "seqtag predict without --bf16" in warnings[0]


def test_each_text_is_a_record_with_its_line(tiny_run, capsys):
    run, _ = tiny_run
    assert main(["predict", str(run), "--text", "Mary lives in Berlin .", "--text", "", "--text", "John ."]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["line"], r["text"], r["words"]) for r in records] == [
        (1, "Mary lives in Berlin .", ["Mary", "lives", "in", "Berlin", "."]), (2, "", []), (3, "John .", ["John", "."])]
    assert list(records[0]) == ["line", "text", "words", "tags", "scores", "entities"]  # as --input records


def test_a_control_character_in_prediction_input_is_an_error(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    assert main(["predict", str(run), "--text", "Mary", "--text", "telan\x01giectasia"]) == 2
    assert capsys.readouterr().err.startswith("seqtag predict: error: --text number 2: the text 'telan\\x01giectasia' "
                                              "holds U+0001, a control character, at character 5.")
    src, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text("Mary lives in Berlin .\ntelan\x00giectasia\n")
    assert main(["predict", str(run), "--input", str(src), "--output", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"seqtag predict: error: {src}:2: the line 'telan\\x00giectasia' holds "
                                              "U+0000, a control character")
    assert not out.exists()


def test_an_output_that_is_the_input_is_refused(tiny_run, tmp_path, capsys):
    """The same file under another name, a symlink or a hard link would be replaced by the output."""
    import os

    run, tmp = tiny_run
    src = tmp_path / "in.txt"
    src.write_text("Mary lives in Berlin .\n")
    (tmp_path / "sub").mkdir()
    os.symlink(src, tmp_path / "link.txt")
    os.link(src, tmp_path / "hard.txt")
    for out in (src, tmp_path / "sub" / ".." / "in.txt", tmp_path / "link.txt", tmp_path / "hard.txt"):
        assert main(["predict", str(run), "--input", str(src), "--output", str(out)]) == 2
        assert capsys.readouterr().err == (f"seqtag predict: error: --output {out} is the --input file {src}; writing "
                                           "it would replace the input. Write to another file\n")
    assert src.read_text() == "Mary lives in Berlin .\n" and (tmp_path / "link.txt").is_symlink()
    dev = tmp_path / "dev.txt"
    dev.write_bytes((tmp / "dev.txt").read_bytes())
    for flag in ("--output", "--predictions"):
        assert main(["evaluate", str(run), "--data", str(dev), flag, str(dev)]) == 2
        assert f"error: {flag} {dev} is the --data file {dev}" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--data", str(dev), "--output", str(tmp_path / "m.json"), "--predictions",
                 str(tmp_path / "sub" / ".." / "m.json")]) == 2
    assert "error: --output and --predictions are the same file" in capsys.readouterr().err
    assert dev.read_bytes() == (tmp / "dev.txt").read_bytes() and not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["predict", "RUN", "--text", "x", "--batch-size", "0"], "argument --batch-size: --batch-size must be at least 1, got 0"),
    (["predict", "RUN", "--text", "x", "--batch-size", "-5"], "--batch-size must be at least 1, got -5"),
    (["predict", "RUN", "--text", "x", "--max-tokens", "0"], "--max-tokens must be at least 1, got 0"),
    (["predict", "RUN", "--text", "x", "--threads", "0"], "--threads must be at least 1, got 0"),
    (["predict", "RUN", "--text", "x", "--batch-size", "many"], "--batch-size must be a whole number, got 'many'"),
    (["evaluate", "RUN", "--data", "d.txt", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["evaluate", "RUN", "--data", "d.txt", "--max-tokens", "-1"], "--max-tokens must be at least 1, got -1"),
])
def test_counts_below_one_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
