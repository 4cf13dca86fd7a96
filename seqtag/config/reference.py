"""The config reference, ``docs/config.md``, generated from the config dataclasses so that it cannot drift.

A key's type and default come from its dataclass field, its meaning from the comment at the end of its line in
``seqtag/config/schema.py`` (the one-line comment every default carries), its allowed values from
:data:`seqtag.RANGES` and the choices the loader enforces, and the loss section from the loss registry.
``tests/config/test_reference.py`` fails when ``docs/config.md`` is not what this module writes.

    python -m seqtag.config.reference            # rewrite docs/config.md
    python -m seqtag.config.reference --check    # exit 1 if docs/config.md is out of date
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import sys
import tokenize
from pathlib import Path
from typing import Any

import yaml

from seqtag.config.rules import RANGES
from seqtag.config.schema import CHOICES, SECTIONS, Config, LossConfig
from seqtag.losses import LOSSES

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"

_HEADER = """\
# Config reference

Every key of a seqtag config, its type, default, allowed values and meaning. A config is one YAML file of
sections (`model`, `data`, `loss`, `train`, `predict`, `hub`; `task` at the top level); any key can be overridden on the
command line as `section.key=value`, e.g. `seqtag train configs/quickstart.yaml train.epochs=5`. Unknown keys,
wrong types and values outside the ranges below fail when the config is loaded; `seqtag validate CONFIG` prints
the resolved config with every default filled in.

This file is generated from `seqtag/config/schema.py` by `python -m seqtag.config.reference`; edit the comments there.
"""


def field_comments(cls: type) -> dict[str, str]:
    """The trailing comment of each field of dataclass ``cls``, read from its source (``#`` and spaces removed).

    A comment on a line of its own applies to the fields below it as a prefix (``# QA only``).

    >>> from seqtag.config.schema import HubConfig
    >>> field_comments(HubConfig)["private"]
    'create the repository as private'
    """
    source = inspect.getsource(cls)
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    lines = source.splitlines()
    out, prefix = {}, ""
    for node in ast.parse(source).body[0].body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        above = [comments[n] for n in range(node.lineno - 1, 0, -1) if n in comments and
                 not lines[n - 1].split("#")[0].strip()][:1]
        if above and not lines[node.lineno - 2].split("#")[0].strip():
            prefix = above[0]
        text = comments.get(node.end_lineno, "")
        out[node.target.id] = f"{prefix}: {text}" if prefix and text else text
    return out


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).removesuffix("\n...\n").strip()


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{_yaml(f.default)}`"
    if f.default_factory is not dataclasses.MISSING:
        return f"`{_yaml(f.default_factory())}`"
    return "required"


# keys checked at load by a rule of their own in seqtag/config/schema.py, not by a range or a list of choices
_RULES = {
    "hub.repo_id": "namespace/name by the Hub's rules (ASCII letters, digits, '-', '_', '.')",
    "data.encoding": "an ASCII-compatible Python codec",
}


def _allowed(key: str) -> str:
    if key in CHOICES:
        return " | ".join(f"`{c}`" for c in CHOICES[key])
    if key in RANGES:
        rng = RANGES[key]
        text = rng.describe() if rng.low is not None or rng.high is not None else "any integer"
        return f"{text} ({rng.hint})" if rng.hint else text
    return _RULES.get(key, "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[list[str]]) -> list[str]:
    head = ["key", "type", "default", "allowed", "meaning"]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def _rows(cls: type, prefix: str) -> list[list[str]]:
    comments = field_comments(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if prefix == "" and f.name in SECTIONS:
            continue
        key = f"{prefix}{f.name}"
        rows.append([f"`{key}`", _cell(str(f.type)), _default(f), _cell(_allowed(key)), _cell(comments[f.name])])
    return rows


def config_reference() -> str:
    """The text of ``docs/config.md``."""
    out = [_HEADER, "## top level", "", *_table(_rows(Config, "")), ""]
    for section, cls in SECTIONS.items():
        if section == "loss":
            out += _loss_section()
            continue
        out += [f"## {section}", "", *_table(_rows(cls, f"{section}.")), ""]
    return "\n".join(out)


def _loss_section() -> list[str]:
    comments = field_comments(LossConfig)
    names = ", ".join(f"`{n}`" for n in LOSSES)
    out = ["## loss", "",
           f"`loss.name` (default `{LossConfig.name}`): {_cell(comments['name'])}; one of {names}. The loss's "
           "parameters sit beside it in the same section (`loss: {name: focal, gamma: 2}`, or `loss.gamma=2` on "
           "the command line); a parameter the loss does not have fails at load. Per-class values (`weight`, "
           "`alpha`) are lists with one number per label, in label-id order (`seqtag validate` prints the label "
           "set). Formulas and advice: [losses.md](losses.md).", "",
           "| loss | parameters (defaults) | what it is |", "|---|---|---|"]
    for name, spec in LOSSES.items():
        params = ", ".join(f"`{k}: {_yaml(v)}`" for k, v in spec.defaults.items())
        out.append(f"| `{name}` | {params} | {_cell(spec.description)} |")
    return out + [""]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = config_reference()
    if argv == ["--check"]:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run python -m seqtag.config.reference", file=sys.stderr)
            return 1
        return 0
    if argv:
        print("usage: python -m seqtag.config.reference [--check]", file=sys.stderr)
        return 2
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
