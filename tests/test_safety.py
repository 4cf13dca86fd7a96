"""Untrusted files: pickle weights only on request, no remote code unless asked, YAML through the safe loader,
and no token in the logs or in any file of the run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqtag.cli import main
from seqtag.config import ModelConfig, load_config
from seqtag.errors import ConfigError
from tests.tiny import make_tiny_model_dir, tiny_config, write_config

REPO = Path(__file__).resolve().parents[1]


def cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def error_line(err: str, command: str = "train") -> str:
    head = f"seqtag {command}: error: "
    (line,) = [x[x.index(head):] for x in err.splitlines() if head in x]
    assert "Traceback" not in err
    return line


# -------------------------------------------------------------------------------------------------- pickle


@pytest.fixture
def pickle_only_model(tmp_path) -> Path:
    """A model directory whose weights exist only as pytorch_model.bin (a pickle)."""
    import torch
    from safetensors.torch import load_file

    d = make_tiny_model_dir(tmp_path / "model")
    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    return d


def test_pickle_weights_are_refused_unless_allowed(pickle_only_model, tmp_path, capsys):
    cfg = tiny_config(tmp_path, train={"epochs": 1})
    config = write_config(tmp_path / "c.yaml", cfg)
    rc, _, err = cli(capsys, "train", config)
    assert rc == 2
    msg = error_line(err)
    assert f"'{pickle_only_model}' has no safetensors weights" in msg and "model.allow_pickle=true" in msg
    assert not (tmp_path / "run").exists()
    rc, _, err = cli(capsys, "train", config, "model.allow_pickle=true")
    assert rc == 0, err


def test_allow_pickle_loads_the_pickled_weights(pickle_only_model):
    import torch
    from transformers import AutoModelForTokenClassification

    from seqtag.modeling.loading import load_model

    expected = torch.load(pickle_only_model / "pytorch_model.bin", weights_only=True)
    model = load_model(ModelConfig(str(pickle_only_model), allow_pickle=True), AutoModelForTokenClassification,
                       num_labels=3)
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, expected["embeddings.word_embeddings.weight"])


def test_predict_refuses_a_run_with_pickle_weights_only(tmp_path, capsys):
    """A run directory whose model.safetensors was replaced by a pickle is not loaded by predict."""
    from tests.fake_run import make_run

    run = make_run(tmp_path, junk=False)
    (run / "model.safetensors").rename(run / "pytorch_model.bin")
    rc, _, err = cli(capsys, "predict", run, "--text", "John lives in Paris")
    assert rc == 2 and f"{run} has no model.safetensors" in error_line(err, "predict")


# ----------------------------------------------------------------------------------------------- remote code


def model_with_remote_code(tmp_path: Path) -> tuple[Path, Path]:
    """A model directory whose config and tokenizer config point (auto_map) at evil.py, which writes a marker."""
    d = make_tiny_model_dir(tmp_path / "model")
    marker = tmp_path / "REMOTE_CODE_RAN"
    (d / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast\n"
        "class EvilConfig(BertConfig):\n    pass\n"
        "class EvilModel(BertForTokenClassification):\n    config_class = EvilConfig\n"
        "class EvilTokenizer(BertTokenizerFast):\n    pass\n"
    )
    for name, auto_map in (("config.json", {"AutoConfig": "evil.EvilConfig",
                                            "AutoModelForTokenClassification": "evil.EvilModel"}),
                           ("tokenizer_config.json", {"AutoTokenizer": [None, "evil.EvilTokenizer"]})):
        cfg = json.loads((d / name).read_text())
        (d / name).write_text(json.dumps({**cfg, "auto_map": auto_map}))
    return d, marker


def test_remote_code_is_not_run_by_default(tmp_path, capsys):
    d, marker = model_with_remote_code(tmp_path)
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, train={"epochs": 1}))
    rc, _, err = cli(capsys, "train", config)
    assert rc == 0, err
    assert not marker.exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["architectures"] == ["BertForTokenClassification"]


def test_remote_code_runs_only_with_trust_remote_code(tmp_path):
    """The control: the same directory does run its code when model.trust_remote_code=true (in a subprocess,
    with its own module cache), so the test above would notice if it did."""
    d, marker = model_with_remote_code(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_MODULES_CACHE": str(tmp_path / "mods")}
    code = ("import sys; from transformers import AutoModelForTokenClassification; from seqtag.config import "
            "ModelConfig; from seqtag.modeling.loading import load_model; load_model(ModelConfig(sys.argv[1], "
            "trust_remote_code=True), AutoModelForTokenClassification, num_labels=3)")
    subprocess.run([sys.executable, "-c", code, str(d)], env=env, capture_output=True, timeout=120)
    assert marker.read_text() == "ran"


# ------------------------------------------------------------------------------------------------------ YAML


def test_python_tags_in_a_config_file_are_refused(tmp_path, capsys):
    marker = tmp_path / "YAML_CODE_RAN"
    cfg = tiny_config(tmp_path)
    text = write_config(tmp_path / "c.yaml", cfg).read_text()
    evil = tmp_path / "evil.yaml"
    evil.write_text(text.replace("task: ner", f"task: !!python/object/apply:os.system ['touch {marker}']"))
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(evil)
    for command in ("validate", "train"):
        rc, _, err = cli(capsys, command, evil)
        msg = error_line(err, command)
        assert rc == 2 and f"config file {evil} is not valid YAML" in msg
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_python_tags_in_an_override_are_refused(tmp_path):
    marker = tmp_path / "OVERRIDE_CODE_RAN"
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path))
    try:
        with pytest.raises(ConfigError, match="train.output_dir"):
            load_config(config, [f"train.output_dir=!!python/object/apply:os.system ['touch {marker}']"])
    finally:
        assert not marker.exists()


# ----------------------------------------------------------------------------------------------------- tokens


def test_hf_token_never_reaches_logs_or_the_run_directory(tmp_path):
    secret = "hf_SeqtagTestSecret0123456789abcdefXYZ"
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, train={"epochs": 1}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_TOKEN": secret,
           "HUGGING_FACE_HUB_TOKEN": secret}
    res = subprocess.run([sys.executable, "-m", "seqtag", "-v", "train", str(config)], env=env, capture_output=True,
                         text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert len(files) > 10 and any(p.name == "run_info.json" for p in files)
    for needle in (secret, secret[3:20]):
        assert needle not in res.stdout and needle not in res.stderr
        leaked = [p for p in files if needle.encode() in p.read_bytes()]
        assert leaked == []
