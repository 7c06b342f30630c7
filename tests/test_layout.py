"""The house keeps its shape: no import cycle inside `rubrics2tokens`, imports point down the layers the
README's Architecture section lists, and no source file is over 400 lines.

The import graph is read from the source (``ast``), not from ``sys.modules``: every ``import`` statement
counts, also one inside a function (a lazy import that closes a circle is still a circle). An edge goes to
each module an import names: ``from a.b import c`` is an edge to ``a.b`` and, when ``a.b.c`` is a module,
to ``a.b.c`` too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests_paths import REPO

PACKAGE_ROOT = REPO / "src" / "rubrics2tokens"
MAX_LINES = 400

OVERSIZED_ALLOWED: dict[str, str] = {
    # "rubrics2tokens/some/module.py": "why it cannot be split",
}
"""Files allowed past `MAX_LINES`, each with the reason it cannot be split. Empty: every file fits."""

LAYERS = [
    ("cli",),
    ("report",),  # reads run folders, and the trainer's config defaults for a run's settings; only the CLI uses it
    ("builder", "study"),
    ("config",),
    ("config_checks",),
    ("trainer",),
    ("relevance",),
    ("scoring", "evaluation", "rubrics"),
    ("data",),
    ("verifiers", "judge", "models", "generation", "advantages", "yaml_config", "checkpoints"),
    ("resources",),  # shipped data files and where they are unpacked: imports nothing of ours
]
"""Top-level units of `rubrics2tokens`, highest first. A module imports its own unit or a lower layer."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def import_graph() -> dict[str, set[str]]:
    """module -> the `rubrics2tokens` modules its import statements name (itself left out)."""
    modules = {module_name(path): path for path in source_files()}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        named = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                named.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolved against this module's package
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                named.add(source)
                named.update(f"{source}.{alias.name}" for alias in node.names)
        graph[name] = {target for target in named if target in modules and target != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                lowlink[node] = min(lowlink[node], lowlink[target])
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def layer_of(module: str) -> int:
    unit = module.split(".")[1] if "." in module else ""
    for depth, units in enumerate(LAYERS):
        if unit in units:
            return depth
    raise AssertionError(f"{module} is in no layer: add its top-level unit {unit!r} to LAYERS")


def unit_of(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_the_graph_reader_sees_lazy_relative_and_submodule_imports(tmp_path, monkeypatch):
    package = tmp_path / "rubrics2tokens"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("from . import leaf\n")
    (package / "inner" / "leaf.py").write_text("def f():\n    from rubrics2tokens import top\n")
    (package / "top.py").write_text("from rubrics2tokens.inner import leaf\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_ROOT", package)
    graph = import_graph()
    assert graph["rubrics2tokens.inner"] == {"rubrics2tokens.inner.leaf"}
    assert graph["rubrics2tokens.inner.leaf"] == {"rubrics2tokens", "rubrics2tokens.top"}
    assert graph["rubrics2tokens.top"] == {"rubrics2tokens.inner", "rubrics2tokens.inner.leaf"}
    assert find_cycles(graph) == [["rubrics2tokens.inner", "rubrics2tokens.inner.leaf", "rubrics2tokens.top"]]


def test_no_import_cycle_inside_the_package():
    graph = import_graph()
    assert len(graph) > 50, "the graph covers the package"
    assert find_cycles(graph) == []


def test_imports_point_down_the_layers():
    wrong_way = sorted(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
                       for module, targets in import_graph().items() if module != "rubrics2tokens"
                       for target in targets if target != "rubrics2tokens"
                       if unit_of(target) != unit_of(module) and layer_of(target) <= layer_of(module))
    assert wrong_way == []


def test_no_source_file_is_over_400_lines():
    lengths = {str(path.relative_to(PACKAGE_ROOT.parent)): len(path.read_text(encoding="utf-8").splitlines())
               for path in source_files()}
    oversized = {name: lines for name, lines in lengths.items() if lines > MAX_LINES and name not in OVERSIZED_ALLOWED}
    assert oversized == {}, "split these along their seams (or, if one truly cannot be, say why in OVERSIZED_ALLOWED)"
    assert lengths and max(lengths.values()) > MAX_LINES // 2, "the line counts are read"
