"""A run directory is a function of the command: the same command gives the same bytes, whatever the
tokenisation cache holds, apart from the fields that record time.

transformers sets the fast tokenizer's backend truncation/padding at every call (a plain call switches both off,
``truncation=``/``padding=`` switch them on) and ``save_pretrained`` writes whatever the last call left. A base
model that ships a truncation/padding in its tokenizer.json (all-MiniLM-L6-v2: max_length 128, Fixed 128) kept it
only in runs where every split hit the cache (no tokenizer call at all); a cache miss cleared it. The run
directory saves the one state seqtag tokenises with: truncation and padding off (null).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from seqtag import runs
from seqtag.config import DataConfig, ModelConfig, from_dict
from seqtag.data.ner import _cache_key
from seqtag.training.loop import train
from tests.test_reliability import train_here
from tests.tiny import sentences, tiny_config, write_config

pytestmark = pytest.mark.usefixtures("one_thread")

TIME_FIELDS = {
    runs.INFO_FILE: ("wall_time_s",),
    runs.HISTORY_FILE: ("time_s", "tokens_per_s"),
    "checkpoints/last/seqtag_state.json": ("elapsed_s",),
}
"""The fields that record time, per file; README.md (the model card) shows the wall time in its table."""


def _base_with_call_state(model_dir: Path) -> None:
    """Give the tiny model's tokenizer.json the kind of truncation/padding all-MiniLM-L6-v2 ships with."""
    path = model_dir / "tokenizer.json"
    state = json.loads(path.read_text(encoding="utf-8"))
    state["truncation"] = {"direction": "Right", "max_length": 16, "strategy": "LongestFirst", "stride": 0}
    state["padding"] = {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 0,
                        "pad_type_id": 0, "pad_token": "[PAD]"}
    path.write_text(json.dumps(state), encoding="utf-8")


def test_identical_commands_save_identical_tokenizer_json(tmp_path):
    # train + dev, one cache for all runs. Before the fix: run 1 missed both splits; run 2 hit train but missed dev
    # (dev's key hashes the backend state, which run 1 computed after train's tokenisation had cleared it); run 3
    # hit both, never called the tokenizer and saved the base model's truncation/padding
    saved = []
    for i in range(3):
        raw = tiny_config(tmp_path, n_test=0, train={"epochs": 1, "output_dir": str(tmp_path / f"run{i}")})
        if i == 0:
            _base_with_call_state(tmp_path / "model")
        run = train(from_dict(raw))
        saved.append((run / "tokenizer.json").read_bytes())
    states = [json.loads(b) for b in saved]
    assert [(s["truncation"], s["padding"]) for s in states] == [(None, None)] * 3
    assert saved[0] == saved[1] == saved[2]


def test_loaded_tokenizer_has_no_call_state_and_cache_keys_do_not_depend_on_call_order(tmp_path):
    from seqtag.data.sentence import Sentence
    from seqtag.modeling.loading import load_tokenizer

    tiny_config(tmp_path)  # writes tmp_path/model
    _base_with_call_state(tmp_path / "model")
    tok = load_tokenizer(ModelConfig(name_or_path=str(tmp_path / "model")))
    assert tok.backend_tokenizer.truncation is None and tok.backend_tokenizer.padding is None
    dev = [Sentence(tokens=tuple(w for w, _ in s), tags=tuple(t for _, t in s), source="dev", line=1)
           for s in sentences(3, seed=2)]
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    data = DataConfig(train="unused", max_length=32, stride=8)
    before = _cache_key(dev, tok, labels, data)
    tok(["john", "lives"], is_split_into_words=True, add_special_tokens=False)  # what a cache miss does
    assert _cache_key(dev, tok, labels, data) == before


def without_time(name: str, data: bytes) -> bytes:
    """``data`` of the run file ``name`` with the fields of :data:`TIME_FIELDS` (and the card's wall-time row)
    blanked; every other byte is kept."""
    fields = TIME_FIELDS.get(name)
    if fields and name.endswith(".jsonl"):
        lines = [json.loads(line) for line in data.decode().splitlines()]
        return "".join(json.dumps({k: v for k, v in r.items() if k not in fields}) + "\n" for r in lines).encode()
    if fields:
        return json.dumps({k: v for k, v in json.loads(data).items() if k not in fields}).encode()
    if name == "README.md":
        return re.sub(rb"\| wall time \|[^\n]*\n", b"", data)
    return data


def test_three_identical_commands_give_byte_identical_run_directories(tmp_path, monkeypatch):
    """The same ``seqtag train`` command three times with one shared tokenisation cache (run 1 fills it, runs 2
    and 3 hit it) on a base model that ships a truncation/padding state: every file of the run directory is the
    same bytes, apart from :data:`TIME_FIELDS` (the lock file holds the PID of the process; it is no record).
    The training curves PNG carries no time and no library version, so it is compared whole."""
    monkeypatch.setenv("SEQTAG_CACHE", str(tmp_path / "cache"))
    raw = tiny_config(tmp_path, n_test=0, train={"epochs": 2, "plot": True})  # train + dev: run 3 hits every split
    raw["data"].pop("cache_dir")
    _base_with_call_state(tmp_path / "model")
    config = write_config(tmp_path / "c.yaml", raw)
    run = Path(raw["train"]["output_dir"])
    snapshots = []
    for _ in range(3):
        rc, err = train_here(config, "train.overwrite=true")
        assert rc == 0, err
        snapshots.append({str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
                          if p.is_file() and p.name != runs.LOCK_FILE})
    assert len(list((tmp_path / "cache").rglob("*.arrow"))) > 0  # the shared cache was used
    names = sorted(snapshots[0])
    for snap in snapshots[1:]:
        assert sorted(snap) == names
        for name in names:
            assert without_time(name, snap[name]) == without_time(name, snapshots[0][name]), name
    assert {"README.md", runs.CURVES_FILE, "tokenizer.json", "model.safetensors",
            "checkpoints/last/optimizer.bin"} <= set(names)
