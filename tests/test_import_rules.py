"""The import rules of the source tree, checked on the source itself (an AST walk, nothing imported):

* no import cycle between modules (deferred imports count: a cycle is two files that cannot be read apart);
* no module takes a ``_private`` name from another module (``from x import _y`` or ``x._y``);
* only commands (modules with a ``__main__`` block) import ``jsphere.cli``, which formats errors for a command line;
  the library raises the types of ``jsphere.errors``;
* nothing outside ``tests/`` imports ``tests``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("jsphere", "converters", "benchmarks", "configs")  # the packages whose import graph is checked
PACKAGES = ("jsphere", "converters", "benchmarks", "configs", "tests")  # every top-level package of the repository


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(roots: tuple[str, ...]) -> dict[str, Path]:
    return {_module_name(p): p for root in roots for p in sorted((ROOT / root).rglob("*.py"))}


ALL_MODULES = _modules(PACKAGES)
CHECKED = _modules(ROOTS)


class _Imports(ast.NodeVisitor):
    """The in-repository modules a module imports (edges), and the private names it takes from them."""

    def __init__(self, name: str, path: Path):
        self.name = name
        self.package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        self.edges: set[str] = set()
        self.private: list[str] = []
        self.aliases: dict[str, str] = {}  # local name -> in-repository module
        self.is_command = path.name == "__main__.py"

    def _absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")[: len(self.package.split(".")) - node.level + 1]
        return ".".join(base + ([node.module] if node.module else []))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in PACKAGES:
                self.edges.add(alias.name)
                if alias.asname:
                    self.aliases[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._absolute(node)
        if base.split(".")[0] not in PACKAGES:
            return
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self.edges.add(full if full in ALL_MODULES else base)
            if full in ALL_MODULES:
                self.aliases[alias.asname or alias.name] = full
            if alias.name.startswith("_") and not alias.name.startswith("__") and base != self.name:
                self.private.append(f"from {base} import {alias.name} (line {node.lineno})")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain, value = [node.attr], node.value
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = ".".join([self.aliases.get(value.id, value.id), *reversed(chain[1:])])
            if owner in ALL_MODULES and owner != self.name:
                self.private.append(f"{owner}.{node.attr} (line {node.lineno})")
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
                and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)):
            self.is_command = True
        self.generic_visit(node)


def _scan(name: str, path: Path) -> _Imports:
    imports = _Imports(name, path)
    imports.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return imports


SCANNED = {name: _scan(name, path) for name, path in CHECKED.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_rules_see_every_package_they_check():
    assert set(ROOTS) <= set(PACKAGES)
    assert all(any(name.startswith(f"{root}.") for name in CHECKED) for root in ROOTS)


def test_no_import_cycle():
    assert _cycles({name: imports.edges for name, imports in SCANNED.items()}) == []


def test_no_module_takes_a_private_name_from_another():
    assert {name: imports.private for name, imports in SCANNED.items() if imports.private} == {}


def test_only_commands_import_the_command_line_layer():
    library = [name for name, imports in SCANNED.items()
               if "jsphere.cli" in imports.edges and not imports.is_command and name != "jsphere.cli"]
    assert library == []


def test_nothing_outside_the_suite_imports_it():
    assert [name for name, imports in SCANNED.items() if any(e.split(".")[0] == "tests" for e in imports.edges)] == []
