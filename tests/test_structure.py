"""The shape of the package, kept by tests: no import circles between its modules (type-only
and in-function imports included), no module importing another's private names, and no
file past the size a reader can hold.

``python tests/test_structure.py`` prints the import graph.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the magics live in magics/ and install as rayparallel.magics
SOURCES = {"rayparallel": ROOT / "rayparallel", "rayparallel.magics": ROOT / "magics"}
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str]]]:
    """``(module imported, names taken from it)`` for each import of a package module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            for sub in submodules:
                found.append((sub, []))
            if target in modules and len(submodules) < len(names):
                found.append((target, [n for n in names if f"{target}.{n}" not in modules]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name in modules]
    return [(target, names) for target, names in found if target != name]


def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for t, _ in _imports(name, path, modules)} - {"rayparallel"}
            for name, path in modules.items()}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_no_import_circles():
    assert _cycles(graph()) == []


def test_no_module_imports_private_names_of_another():
    modules = _modules()
    private = [f"{name} imports {target}.{n}"
               for name, path in modules.items()
               for target, names in _imports(name, path, modules)
               for n in names if n.startswith("_") and not n.startswith("__")]
    assert private == []


def test_files_stay_readable():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


if __name__ == "__main__":
    edges = graph()
    for module in sorted(edges):
        if edges[module]:
            short = sorted(m.removeprefix("rayparallel.") for m in edges[module])
            print(f"{module.removeprefix('rayparallel.'):22s} -> {', '.join(short)}")
    print("cycles:", _cycles(edges) or "none", file=sys.stderr)
