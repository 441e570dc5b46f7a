"""No import circles in the package (STYLE.md §13): defaults sit at the bottom, callbacks and
deadlines import config, never the other way round.

The graph is read from the source with ``ast``, so an import inside a function counts as much as
one at the top of the module: both run, and a circle through either is a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import include.analytics_ops

PACKAGE = "include.analytics_ops"
ROOT = Path(include.analytics_ops.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source.

    ``from X import Y`` names the module ``X.Y`` when that is a module, else ``X``; importing a
    submodule is an edge to it alone (its parent package's ``__init__`` is not a dependency of
    the importer)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (as a path that ends where it starts), or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph[start])))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, todo = stack[-1]
            nxt = next(todo, None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
                done.add(node)
            elif nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in done:
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
                on_path.add(nxt)
    return None


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    # both imported inside functions only (record_failure, record_deadline_miss)
    assert f"{PACKAGE}.alerts" in graph[f"{PACKAGE}.callbacks"]
    assert f"{PACKAGE}.db" in graph[f"{PACKAGE}.deadlines"]


def test_find_cycle_reports_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_circle():
    assert find_cycle(import_graph()) is None


def test_config_imports_nothing_of_the_package():
    assert import_graph()[f"{PACKAGE}.config"] == set()


def test_the_package_never_imports_the_dev_only_sandbox():
    """include/sandbox (stand-ins, sample data, devenv, demo) is for tests and the demo: nothing
    the DAGs, the plugin or the production CLIs load may depend on it."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.startswith("include.sandbox")
            ]
    assert offenders == []
