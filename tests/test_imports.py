"""The import graph of the seqtag package: no cycles, and imports only follow the direction data flows.

Every ``import`` of a seqtag module counts, also those inside functions (a cycle hidden by a deferred import is
still a cycle). Each module has a layer (:data:`LAYERS`); a module may import its own layer or lower ones, never
a higher one. Only ``seqtag.cli`` imports seqtag modules inside functions (so ``seqtag --help`` answers without
loading torch); everywhere else they sit at the top of the file.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "seqtag"

# low to high: what a layer may import is at its level or below
LAYERS = [
    ["seqtag", "seqtag.constants", "seqtag.errors", "seqtag.paths", "seqtag.data.bundled", "seqtag.modeling.encoders"],
    ["seqtag.losses", "seqtag.runs", "seqtag.metrics", "seqtag.data.schemes", "seqtag.modeling.decoding", "seqtag.modeling.crf"],
    ["seqtag.config"],
    ["seqtag.data", "seqtag.data.conll", "seqtag.data.squad", "seqtag.data.align", "seqtag.data.batching",
     "seqtag.data.ner", "seqtag.data.qa_windows", "seqtag.data.stats", "seqtag.training.plots", "seqtag.data.files",
     "seqtag.data.hub_datasets", "seqtag.data.words", "seqtag.data.imbalance"],
    ["seqtag.modeling.loading", "seqtag.modeling.accel", "seqtag.tasks.checks", "seqtag.config.reference", "seqtag.inference.onnx", "seqtag.modeling.heads"],
    ["seqtag.inference.engine"],
    ["seqtag.tasks.common", "seqtag.tasks.ner", "seqtag.tasks.qa", "seqtag.tasks", "seqtag.inference.predict"],
    ["seqtag.training.loop", "seqtag.tasks.evaluate"],
    ["seqtag.publish.card_facts", "seqtag.publish.card", "seqtag.publish.hub", "seqtag.study.report", "seqtag.study.sweep", "seqtag.losses.trainer"],
    ["seqtag.cli", "seqtag.__main__"],
]
LAYER = {m: i for i, mods in enumerate(LAYERS) for m in mods}
DEFERRED_SEQTAG_IMPORTS_ALLOWED = {"seqtag.cli"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def seqtag_imports(path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module top)`` for every import of a seqtag module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from seqtag.x import y` imports seqtag.x.y when y is a module, else seqtag.x
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                     for a in node.names]
        for name in names:
            if name == "seqtag" or name.startswith("seqtag."):
                out.append((name, node.lineno, id(node) in top))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: {target for target, _, _ in seqtag_imports(p, set(mods)) if target != m} for m, p in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle in ``edges`` as a list of modules (first == last), or None.

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    ['a', 'b', 'c', 'a']
    >>> find_cycle({"a": {"b"}, "b": set()}) is None
    True
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_has_a_layer():
    missing = sorted(set(modules()) - set(LAYER))
    assert not missing, f"add these modules to LAYERS in tests/test_imports.py: {missing}"


def test_no_import_cycle():
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()))


def test_imports_follow_the_layers():
    against = [f"{src} (layer {LAYER[src]}) imports {dst} (layer {LAYER[dst]})"
               for src, targets in graph().items() for dst in targets
               if src in LAYER and dst in LAYER and LAYER[dst] > LAYER[src]]
    assert not against, "\n".join(against)


def test_seqtag_imports_sit_at_the_top():
    mods = modules()
    deferred = [f"{m}:{line} imports {target} inside a function" for m, p in mods.items()
                if m not in DEFERRED_SEQTAG_IMPORTS_ALLOWED
                for target, line, at_top in seqtag_imports(p, set(mods)) if not at_top]
    assert not deferred, "\n".join(deferred)


def test_the_checker_sees_a_deferred_cycle(tmp_path):
    """The two checks fail on what they are for: a cycle through an import inside a function."""
    a = tmp_path / "a.py"
    a.write_text("def f():\n    from seqtag.training.loop import train\n")
    assert seqtag_imports(a, {"seqtag.training.loop"}) == [("seqtag.training.loop", 2, False)]
    edges = graph()
    edges["seqtag.runs"] = edges["seqtag.runs"] | {"seqtag.training.loop"}
    assert find_cycle(edges) is not None
