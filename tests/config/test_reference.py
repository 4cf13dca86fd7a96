"""docs/config.md is generated from the config dataclasses: it must be what seqtag.config.reference writes."""

import dataclasses

from seqtag.config import RANGES, SECTIONS, Config
from seqtag.config import reference as config_reference
from seqtag.config.reference import DOC, field_comments
from seqtag.config.reference import config_reference as reference


def test_docs_config_md_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == reference(), "run: python -m seqtag.config.reference"


def test_every_key_has_a_meaning_and_appears_once():
    text = reference()
    for prefix, cls in [("", Config), *((f"{s}.", c) for s, c in SECTIONS.items() if s != "loss")]:
        comments = field_comments(cls)
        for f in dataclasses.fields(cls):
            if prefix == "" and f.name in SECTIONS:
                continue
            assert comments[f.name], f"{prefix}{f.name} needs a trailing comment in seqtag/config/schema.py"
            assert text.count(f"| `{prefix}{f.name}` |") == 1
    assert all(f"`{key}`" in text for key in RANGES)


def test_rows_carry_type_default_range_and_the_section_comment():
    text = reference()
    assert ("| `data.max_train_examples` | int \\| None | `null` | at least 1 (the number of training "
            "sentences/questions kept; leave it unset (null) for no limit) | keep the first N training") in text
    assert "| `train.learning_rate` | float | `5.0e-05` | in (0, 1] (typical fine-tuning rates" in text
    assert "| `data.doc_stride` | int | `128` | at least 0 (and, for task qa, below data.max_length) | QA only: " in text
    assert "| `focal` | `gamma: 2.0`, `alpha: null` |" in text
    assert field_comments(Config)["task"] == "ner | qa"


def test_check_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config_reference, "DOC", tmp_path / "config.md")
    assert config_reference.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert config_reference.main([]) == 0
    assert config_reference.main(["--check"]) == 0
    assert (tmp_path / "config.md").read_text() == reference()
