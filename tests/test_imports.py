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

# Low to high: a unit may import its own layer or lower ones, never a higher one. A unit is a top-level module or
# a whole subpackage (every module under seqtag.data is the unit seqtag.data); inside a subpackage, modules import
# each other freely, as long as there is no cycle.
LAYERS = [
    ["seqtag", "seqtag.constants", "seqtag.errors", "seqtag.paths"],
    ["seqtag.losses", "seqtag.runs", "seqtag.metrics", "seqtag.hf"],
    ["seqtag.config"],
    ["seqtag.data"],
    ["seqtag.modeling"],
    ["seqtag.inference"],
    ["seqtag.tasks"],
    ["seqtag.publish"],
    ["seqtag.training"],
    ["seqtag.study"],
    ["seqtag.cli", "seqtag.__main__"],
]
LAYER = {m: i for i, mods in enumerate(LAYERS) for m in mods}
DEFERRED_SEQTAG_IMPORTS_ALLOWED = {"seqtag.cli.commands"}
MAX_LINES = 450  # STYLE.md: split a module when it passes about 400 lines or gains a second concern


def unit(module: str) -> str | None:
    """The layer unit of ``module``: the longest entry of :data:`LAYERS` that is it or a package above it.

    >>> unit("seqtag.data.conll"), unit("seqtag.errors"), unit("seqtag.cli.main"), unit("seqtag.nowhere")
    ('seqtag.data', 'seqtag.errors', 'seqtag.cli', None)
    """
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYER and (n > 1 or len(parts) == 1):
            return ".".join(parts[:n])
    return None


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
    missing = sorted(m for m in modules() if unit(m) is None)
    assert not missing, f"add these modules (or their subpackage) to LAYERS in tests/test_imports.py: {missing}"


def test_no_import_cycle():
    assert find_cycle(graph()) is None, " -> ".join(find_cycle(graph()))


def test_imports_follow_the_layers():
    against = [f"{src} ({unit(src)}, layer {LAYER[unit(src)]}) imports {dst} ({unit(dst)}, layer {LAYER[unit(dst)]})"
               for src, targets in graph().items() for dst in targets
               if unit(src) and unit(dst) and LAYER[unit(dst)] > LAYER[unit(src)]]
    assert not against, "\n".join(against)


def test_a_subpackage_module_imports_its_siblings_not_its_package():
    """``seqtag.losses.module`` imports ``seqtag.losses.registry``, never ``seqtag.losses`` itself: the package's
    ``__init__`` imports its modules, so importing it from one of them reads a half-initialised package."""
    mods = modules()
    back = [f"{m} imports its own package {pkg}" for m in mods
            for pkg in [m.rsplit(".", 1)[0]] if pkg in mods and pkg != "seqtag" and pkg in graph()[m]]
    assert not back, "\n".join(back)


def test_each_subpackage_says_what_it_holds_and_may_import():
    for init in sorted(PACKAGE.rglob("__init__.py")):
        if init.parent in (PACKAGE, PACKAGE / "data" / "bundled"):
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "Imports:" in doc, f"{init}: its docstring says what the subpackage holds and, after 'Imports:', " \
                                  "what it may import"


def test_no_module_is_longer_than_the_style_allows():
    long = {m: n for m, p in modules().items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these modules by concern (STYLE.md): {long}"


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
