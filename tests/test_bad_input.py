"""Bad input through the CLI: every case exits non-zero with one paragraph naming the file:line or key and what
to do, prints no traceback, and leaves no run directory or output file behind; the cases that must work, work.

The CoNLL reader's property tests (any text is read or raises DataError; write_conll then read_conll gives the
same sentences) live in tests/data/test_conll.py; here the round trip goes through ``seqtag predict``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqtag.cli import main
from seqtag.config import from_dict
from seqtag.data.conll import read_conll
from seqtag.errors import DataError
from tests.tiny import sentences, tiny_config, write_config

REPO = Path(__file__).resolve().parents[1]
GOOD = "".join(f"{w}\t{t}\n" for w, t in sentences(1, seed=0)[0]) + "\n"  # 6 token lines, then a blank line


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def user_error(rc: int, err: str, command: str = "train") -> str:
    """Check the CLI's answer to a user error and return its message (one line, no traceback)."""
    assert rc == 2, err
    assert "Traceback" not in err
    head = f"seqtag {command}: error: "
    lines = [line[line.index(head):] for line in err.splitlines() if head in line]  # after any progress bar
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny model and data shared by the module (built once)."""
    root = tmp_path_factory.mktemp("bad")
    return root, tiny_config(root)


@pytest.fixture(scope="module")
def finished_run(base):
    from seqtag.training.loop import train

    root, cfg = base
    cfg = copy.deepcopy(cfg)
    cfg["train"]["output_dir"] = str(root / "finished")
    cfg["train"]["epochs"] = 1
    return train(from_dict(cfg))


def experiment(base, tmp_path, train_text: str | bytes | None = None, dev_text: str | None = None) -> tuple[Path, Path]:
    """Write a config (and train/dev files when given) into tmp_path; return (config path, output_dir)."""
    _, cfg = base
    cfg = copy.deepcopy(cfg)
    cfg["train"]["output_dir"] = str(tmp_path / "run")
    cfg["data"]["cache_dir"] = str(tmp_path / "cache")
    for split, text in (("train", train_text), ("dev", dev_text)):
        if text is not None:
            p = tmp_path / f"{split}.txt"
            p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
            cfg["data"][split] = str(p)
    return write_config(tmp_path / "config.yaml", cfg), tmp_path / "run"


# ----------------------------------------------------------------------------------------------- bad data


@pytest.mark.parametrize(
    "name, text, pattern",
    [
        ("empty", "", r"no sentences in \S+train\.txt \(it is empty"),
        ("docstart only", "-DOCSTART- -X- O O\n\n-DOCSTART- -X- O O\n", r"no sentences in \S+train\.txt"),
        ("missing tag column", GOOD + "John\tB-PER\nlives\nin\tO\n\n",
         r"train\.txt:9: 1 column\(s\) here but 2 on line 1.*a column \(the tag\?\) is missing"),
        ("B_PER", GOOD + "John\tB_PER\n\n", r"train\.txt:8: malformed tag 'B_PER'.*Fix the tag in the file"),
        ("X-LOC", GOOD + "Paris\tX-LOC\n\n", r"train\.txt:8: .*malformed tag 'X-LOC'"),
        ("I- after O", GOOD + "lives\tO\nParis\tI-LOC\n\n",
         r"train\.txt:9: invalid IOB2 tag sequence: I-LOC follows O.*set data\.on_invalid=repair"),
        ("mixed TAB and space", GOOD + "New York\tB-LOC\n\n",
         r"train\.txt:8: 3 column\(s\) here but 2 .*mixes TAB and space separators.*Use one separator"),
        ("non-UTF-8", GOOD.encode() + b"Z\xfcrich\tB-LOC\n\n",
         r"train\.txt:8: byte 0xfc at byte offset 52 .*not valid utf-8\. If the file is in another encoding, name it: "
         r"data\.encoding=latin-1"),
    ],
)
def test_bad_training_file(base, tmp_path, capsys, name, text, pattern):
    config, run = experiment(base, tmp_path, train_text=text)
    msg = user_error(*cli(capsys, "train", config)[::2])
    assert re.search(pattern, msg), msg
    assert not run.exists()


def test_malformed_tag_with_auto_scheme_names_the_line(base, tmp_path, capsys):
    config, run = experiment(base, tmp_path, train_text=GOOD + "John\tB_PER\n\n")
    msg = user_error(*cli(capsys, "train", config, "data.scheme=auto")[::2])
    assert "train.txt:8: malformed tag 'B_PER'" in msg and "Fix the tag" in msg
    assert not run.exists()


def test_invalid_continuation_repaired_and_counted(base, tmp_path, capsys):
    # two IOB2 violations: I-LOC after O, and I-PER after B-LOC
    config, run = experiment(base, tmp_path, train_text=GOOD + "lives\tO\nParis\tI-LOC\n\nRome\tB-LOC\nAnna\tI-PER\n\n")
    rc, _, err = cli(capsys, "train", config, "data.on_invalid=repair", "train.epochs=1")
    assert rc == 0, err
    info = json.loads((run / "run_info.json").read_text())
    assert info["status"] == "finished"
    assert info["data_notes"]["repaired_tokens"] == {"train": 2, "dev": 0, "test": 0}


def test_dev_label_unseen_in_training(base, tmp_path, capsys):
    dev = GOOD + "Acme\tB-ORG\nCorp\tI-ORG\nlives\tO\n\n"
    config, run = experiment(base, tmp_path, dev_text=dev)
    msg = user_error(*cli(capsys, "train", config)[::2])
    assert "dev.txt:8: the dev label 'B-ORG' has an entity type never seen in training (known: LOC, PER)" in msg
    assert "data.unseen_labels=map_to_o" in msg
    assert not run.exists()
    rc, _, err = cli(capsys, "train", config, "data.unseen_labels=map_to_o", "train.epochs=1")
    assert rc == 0, err
    info = json.loads((run / "run_info.json").read_text())
    assert info["data_notes"]["unseen_mapped_to_o"] == {"dev": 2, "test": 0}
    assert info["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_missing_data_file(base, tmp_path, capsys):
    config, run = experiment(base, tmp_path)
    msg = user_error(*cli(capsys, "train", config, f"data.dev={tmp_path / 'nope.txt'}")[::2])
    assert "data.dev: file" in msg and "nope.txt does not exist" in msg and "data.dev=PATH" in msg
    assert not run.exists()


# ------------------------------------------------------------------------------------------- data that works


def long_sentence(n: int) -> str:
    words = ["John", "lives", "in", "Paris", "and", "Mary", "visited", "Rome", "."]
    tags = ["B-PER", "O", "O", "B-LOC", "O", "B-PER", "O", "B-LOC", "O"]
    return "".join(f"{words[i % 9]}\t{tags[i % 9]}\n" for i in range(n)) + "\n"


def test_5000_token_sentence_trains_and_predicts_through_windows(base, tmp_path, capsys):
    config, run = experiment(base, tmp_path, train_text=GOOD + long_sentence(5000))
    rc, _, err = cli(capsys, "train", config, "train.epochs=1", "data.max_length=64", "train.batch_size=32")
    assert rc == 0, err
    info = json.loads((run / "run_info.json").read_text())
    # max_length 64 = 62 word pieces per window ([CLS], [SEP]); every word is one piece; consecutive windows
    # share stride=8 words, so each new window advances 54 words
    n_windows = 1 + -(-(5000 - 62) // 54)
    assert info["windows"]["train"] == {"examples": 2, "windowed": 1, "windows": 1 + n_windows}
    text = " ".join(["Mary visited Paris ."] * 1250)  # 5,000 words
    (tmp_path / "long.txt").write_text(text + "\n")
    rc, _, err = cli(capsys, "predict", run, "--input", tmp_path / "long.txt", "--output", tmp_path / "out.jsonl")
    assert rc == 0, err
    (rec,) = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rec["words"]) == len(rec["tags"]) == len(rec["scores"]) == 5000
    assert set(rec["tags"]) <= {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}


def test_punctuation_and_emoji_sentences_work(base, tmp_path, capsys):
    odd = "!\tO\n?\tO\n...\tO\n\n\U0001f600\tO\n\U0001f389\tO\n\nAnna\tB-PER\n\U0001f600\tO\n\n"
    config, run = experiment(base, tmp_path, train_text=GOOD + odd, dev_text=GOOD + odd)
    rc, _, err = cli(capsys, "train", config, "train.epochs=1")
    assert rc == 0, err
    rc, out, err = cli(capsys, "predict", run, "--text", "\U0001f600\U0001f389 !! ?")
    assert rc == 0, err
    rec = json.loads(out)
    assert "".join(rec["words"]) == "\U0001f600\U0001f389!!?" and len(rec["tags"]) == len(rec["words"]) >= 3


def test_crlf_file_trains_exactly_like_lf(base, tmp_path, capsys):
    from safetensors.torch import load_file

    lf = "".join("".join(f"{w}\t{t}\n" for w, t in s) + "\n" for s in sentences(24, seed=1))
    results = []
    for name, text in (("lf", lf), ("crlf", lf.replace("\n", "\r\n"))):
        d = tmp_path / name
        d.mkdir()
        config, run = experiment(base, d, train_text=text)
        rc, _, err = cli(capsys, "train", config, "train.epochs=1")
        assert rc == 0, err
        results.append((json.loads((run / "metrics.json").read_text()), load_file(run / "model.safetensors")))
    (m_lf, w_lf), (m_crlf, w_crlf) = results
    assert m_lf == m_crlf
    assert all((w_lf[k] == w_crlf[k]).all() for k in w_lf)


# --------------------------------------------------------------------------------------------------- SQuAD


def test_squad_answer_start_that_does_not_match_its_text(tmp_path):
    from seqtag.data.squad import read_qa

    ctx = "Ada Lovelace wrote the first program in London."
    data = {"version": "1.1", "data": [{"title": "Ada", "paragraphs": [{"context": ctx, "qas": [
        {"id": "q7", "question": "Where?", "answers": [{"text": "London", "answer_start": 12}]}]}]}]}
    p = tmp_path / "bad-squad.json"
    p.write_text(json.dumps(data))
    with pytest.raises(DataError) as e:
        read_qa(p)
    msg = str(e.value)
    assert "bad-squad.json" in msg and "'q7'" in msg and "answer_start=12" in msg
    assert f"The text occurs at offset {ctx.index('London')}" in msg and "\n" not in msg


# -------------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["train.epoch=2"], "unknown config key 'train.epoch' in section 'train'; valid keys: output_dir,"),
        (["train.epochs=two"], "config key 'train.epochs' must be int, got 'two' (str)"),
        (["loss.name=nope"], "unknown loss 'nope'; valid names: cross_entropy,"),
        (["loss.name=focal", "loss.gamma=-1"], "loss 'focal': gamma=-1 is invalid; accepted: a finite number >= 0"),
        (["loss.name=focal", "loss.gama=1"], "loss 'focal' has no parameter 'gama'; accepted: gamma"),
        (["train.nan_policy=ignore"], "config key 'train.nan_policy' is 'ignore'; valid values: stop, skip"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "train"])
def test_bad_config(base, tmp_path, capsys, command, overrides, expected):
    """The config file is good: the override is named as the error's source, not the file."""
    config, run = experiment(base, tmp_path)
    msg = user_error(*cli(capsys, command, config, *overrides)[::2], command=command)
    assert f"error: override {overrides[-1]!r}: {expected}" in msg and "config.yaml" not in msg
    assert not run.exists()


def test_validate_accepts_the_good_config(base, tmp_path, capsys):
    config, run = experiment(base, tmp_path)
    rc, out, err = cli(capsys, "validate", config, "loss.name=focal", "loss.gamma=1")
    assert rc == 0 and "valid" in err
    assert "gamma: 1" in out and not run.exists()


def test_model_path_that_does_not_exist(base, tmp_path, capsys):
    config, run = experiment(base, tmp_path)
    msg = user_error(*cli(capsys, "train", config, f"model.name_or_path={tmp_path / 'no-model'}")[::2])
    assert f"model.name_or_path: {tmp_path / 'no-model'} does not exist; give a local model directory" in msg
    assert not run.exists()


def test_unreachable_hub_id_is_one_paragraph(base, tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying
    config, run = experiment(base, tmp_path)
    msg = user_error(*cli(capsys, "train", config, "model.name_or_path=no-such-user/no-such-model")[::2])
    assert "could not load a tokenizer from 'no-such-user/no-such-model'" in msg and "Check model.name_or_path" in msg
    assert not run.exists()


def subprocess_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


# -------------------------------------------------------------------------------------------- output dirs


def test_output_directory_holding_a_different_run(base, tmp_path, capsys):
    config, run = experiment(base, tmp_path)
    assert cli(capsys, "train", config, "train.epochs=1")[0] == 0
    before = (run / "model.safetensors").read_bytes()
    msg = user_error(*cli(capsys, "train", config, "train.seed=8")[::2])
    assert f"output directory {run} already holds a run" in msg and "train.overwrite=true" in msg
    # resume refuses a different config, naming the key
    msg = user_error(*cli(capsys, "train", config, "train.seed=8", "train.resume=true")[::2])
    assert "train.seed: 7 -> 8" in msg and "seqtag_config.yaml train.resume=true" in msg
    # a failed setup under overwrite=true keeps the old run
    msg = user_error(*cli(capsys, "train", config, "train.seed=8", "train.overwrite=true",
                          f"data.dev={tmp_path / 'missing.txt'}")[::2])
    assert (run / "model.safetensors").read_bytes() == before
    assert cli(capsys, "train", config, "train.seed=8", "train.overwrite=true", "train.epochs=1")[0] == 0
    assert (run / "model.safetensors").read_bytes() != before
    assert "seed: 8" in (run / "seqtag_config.yaml").read_text()
    assert "overwrite: false" in (run / "seqtag_config.yaml").read_text()  # saved so re-running never deletes


def test_output_directory_holding_other_files(base, tmp_path, capsys):
    config, run = experiment(base, tmp_path)
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    msg = user_error(*cli(capsys, "train", config)[::2])
    assert "already holds other files" in msg and "choose another train.output_dir" in msg
    assert "train.overwrite=true" not in msg and "train.resume=true" not in msg  # neither would work
    msg = user_error(*cli(capsys, "train", config, "train.overwrite=true")[::2])
    assert "is not a seqtag run directory, so seqtag will neither replace nor continue it" in msg
    assert (run / "notes.txt").read_text() == "mine"
    msg = user_error(*cli(capsys, "train", config, "train.resume=true")[::2])
    assert "holds no checkpoint to resume from" in msg and "drop train.resume" in msg


# ------------------------------------------------------------------------------------ predict and evaluate


def unfinished_dirs(tmp_path, finished_run) -> dict[str, tuple[Path, str]]:
    import shutil

    interrupted = tmp_path / "interrupted"
    shutil.copytree(finished_run, interrupted)
    info = json.loads((interrupted / "run_info.json").read_text())
    (interrupted / "run_info.json").write_text(json.dumps({**info, "status": "interrupted"}))
    plain = tmp_path / "plain"
    plain.mkdir()
    return {
        "missing": (tmp_path / "nowhere", "run directory {d} does not exist"),
        "not a run": (plain, "{d} is not a seqtag run directory (no run_info.json)"),
        "interrupted": (interrupted, "the run in {d} is not finished (status: interrupted); finish it with "
                                     "`seqtag train {d}/seqtag_config.yaml train.resume=true`"),
    }


@pytest.mark.parametrize("kind", ["missing", "not a run", "interrupted"])
def test_predict_and_evaluate_need_a_finished_run(finished_run, base, tmp_path, capsys, kind):
    d, expected = unfinished_dirs(tmp_path, finished_run)[kind]
    root, cfg = base
    out = tmp_path / "out.json"
    msg = user_error(*cli(capsys, "predict", d, "--text", "John lives in Paris", "--output", out)[::2], "predict")
    assert expected.format(d=d) in msg
    msg = user_error(*cli(capsys, "evaluate", d, "--data", cfg["data"]["dev"], "--output", out)[::2], "evaluate")
    assert expected.format(d=d) in msg
    assert not out.exists()


def test_predict_input_that_does_not_exist(finished_run, tmp_path, capsys):
    msg = user_error(*cli(capsys, "predict", finished_run, "--input", tmp_path / "no.txt", "--output",
                          tmp_path / "o.jsonl")[::2], "predict")
    assert f"--input {tmp_path / 'no.txt'} does not exist" in msg
    assert list(tmp_path.iterdir()) == []


def test_evaluate_data_that_does_not_exist_or_is_bad(finished_run, tmp_path, capsys):
    out = tmp_path / "m.json"
    msg = user_error(*cli(capsys, "evaluate", finished_run, "--data", tmp_path / "no.txt", "--output", out)[::2],
                     "evaluate")
    assert f"--data {tmp_path / 'no.txt'} does not exist" in msg
    (tmp_path / "bad.txt").write_text(GOOD + "Paris\tI-LOC\n\n")
    msg = user_error(*cli(capsys, "evaluate", finished_run, "--data", tmp_path / "bad.txt", "--output", out)[::2],
                     "evaluate")
    assert "bad.txt:8: invalid IOB2 tag sequence: I-LOC follows the sentence start" in msg
    assert not out.exists()


@pytest.mark.parametrize("fmt, content, pattern", [
    ("conll", "John\nlives\n\nMary\n\n" * 3000 + "New York\tx\nb\n", "in.txt:15001: 3 column(s) here but 1"),
    ("text", ("John lives in Paris\n" * 3000).encode() + b"Z\xfcrich\n", "in.txt:3001: byte 0xfc at byte offset"),
], ids=["conll", "text"])
def test_predict_failing_midway_leaves_no_output(finished_run, tmp_path, capsys, fmt, content, pattern):
    """The error is found after the first 2,048-record chunk was written: the output stays as it was."""
    src = tmp_path / "in.txt"
    src.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out.jsonl"
    out.write_text("old results\n")
    msg = user_error(*cli(capsys, "predict", finished_run, "--input", src, "--input-format", fmt,
                          "--output", out)[::2], "predict")
    assert pattern in msg
    assert out.read_text() == "old results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]  # no .partial left


def test_predict_interrupted_by_sigterm_leaves_no_output(finished_run, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("John Smith lives in New York and Mary visited Paris .\n" * 200_000)
    out = tmp_path / "out.jsonl"
    env = subprocess_env()
    proc = subprocess.Popen([sys.executable, "-m", "seqtag", "predict", str(finished_run), "--input", str(src),
                             "--output", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path)
    partial = tmp_path / ".out.jsonl.partial"
    deadline = time.time() + 60
    while not (partial.exists() and partial.stat().st_size > 0) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "seqtag predict: interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_bad_data_through_a_subprocess_has_no_traceback(base, tmp_path):
    config, run = experiment(base, tmp_path, train_text=GOOD.encode() + b"Z\xfcrich\tB-LOC\n\n")
    env = subprocess_env()
    res = subprocess.run([sys.executable, "-m", "seqtag", "train", str(config)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    (line,) = [x for x in res.stderr.splitlines() if "error" in x]
    assert line.startswith(f"seqtag train: error: {tmp_path / 'train.txt'}:8: byte 0xfc")
    assert not run.exists()


# --------------------------------------------------------------------------------- predict output round trip


@pytest.fixture(scope="module")
def tagger(finished_run):
    from seqtag.inference.predict import load_tagger

    return load_tagger(finished_run, batch_size=16)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.text(st.sampled_from(" \t\x0b\x0c\xa0\u2028\u200b\u3000ab.,-'\u00e9")
                              | st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=40),
                      min_size=1, max_size=6))
def test_predicted_conll_reads_back_as_the_same_sentences(tagger, tmp_path, lines):
    """Text in, CoNLL out, read_conll back: the same words and tags as the JSONL records say, sentence by sentence."""
    import io

    from seqtag.inference.predict import format_record, predict_stream, read_records

    src = tmp_path / "in.txt"
    src.write_bytes("\n".join(line.replace("\r", " ").replace("\n", " ") for line in lines).encode() + b"\n")
    records = list(predict_stream(tagger, read_records(src, "text", tagger.tokenizer)))  # as the CLI does
    buf = io.StringIO()
    for rec in records:
        buf.write(format_record(rec, "conll"))
    out = tmp_path / "out.conll"
    out.write_text(buf.getvalue(), encoding="utf-8")
    expected = [(tuple(r["words"]), tuple(r["tags"])) for r in records if r["words"]]
    if not expected:
        with pytest.raises(DataError, match="no sentences"):
            read_conll(out)
        return
    assert [(s.tokens, s.tags) for s in read_conll(out)] == expected


def test_predict_cli_conll_output_reads_back(finished_run, base, tmp_path, capsys):
    _, cfg = base
    out = tmp_path / "tagged.conll"
    rc, _, err = cli(capsys, "predict", finished_run, "--input", cfg["data"]["test"], "--input-format", "conll",
                     "--output", out, "--output-format", "conll")
    assert rc == 0, err
    gold = read_conll(cfg["data"]["test"])
    got = read_conll(out)
    assert [s.tokens for s in got] == [s.tokens for s in gold] and len(got) == 5
    assert all(len(s.tags) == len(s.tokens) for s in got)
