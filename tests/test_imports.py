"""Dependencies inside mdesign point one way: the import graph of its modules has no cycle.

The graph is read from the source with :mod:`ast`, so it holds every import, at module level and
inside functions alike (a function-level import hides a cycle from the interpreter until the
function runs, not from the reader). A module depends on

* the module it names: ``import mdesign.a.b``, ``from mdesign.a.b import f`` and
  ``from mdesign.a import b`` (``b`` a submodule) depend on ``mdesign.a.b``; naming a package
  means its ``__init__.py``, so ``from mdesign.a import f`` depends on ``mdesign.a``;
* the packages Python runs on the way there (``mdesign.a`` for ``mdesign.a.b``), except the
  importer's own enclosing packages: those are already being imported when it runs, so a
  submodule importing a sibling by its full name does not depend on their ``__init__.py``.

Relative imports are resolved against the importing module's package (``from . import y``
inside ``mdesign/a/x.py`` names ``mdesign.a.y``).
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import mdesign

PACKAGE_DIR = Path(mdesign.__file__).parent

# Edges that exist on this branch and are removed elsewhere; each with the reason. An exception
# that no longer exists fails the test, so the list cannot go stale.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def _modules(package_dir: Path) -> dict[str, Path]:
    """Dotted name -> source file of every module of the package (a package is its __init__)."""
    root = package_dir.parent
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, dict[str, int]]:
    """``{module: {dependency: line of its first import}}`` over the modules of the package."""
    modules = _modules(package_dir)
    top = package_dir.name
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name.split(".") if is_package else name.split(".")[:-1]
        enclosing = {*_ancestors(name), name}
        deps: dict[str, int] = {}

        def depend(target: str, line: int, *, enclosing=enclosing, deps=deps, name=name) -> None:
            if target in modules and target != name:
                deps.setdefault(target, line)
            for parent in _ancestors(target):
                if parent in modules and parent not in enclosing:
                    deps.setdefault(parent, line)

        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        depend(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.split(".")[0] != top:
                    continue
                names_an_attribute = False
                for alias in node.names:
                    if f"{module}.{alias.name}" in modules:
                        depend(f"{module}.{alias.name}", node.lineno)
                    else:
                        names_an_attribute = True
                if names_an_attribute or module not in enclosing:
                    depend(module, node.lineno)
                else:  # `from . import sibling`: only the packages on the way
                    for parent in _ancestors(module):
                        if parent not in enclosing:
                            depend(parent, node.lineno)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of the graph, or None (iterative depth-first search)."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    for start in sorted(graph):
        if color[start] != white:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        color[start] = grey
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                color[path.pop()] = black
                stack.pop()
            elif color.get(nxt, black) == grey:
                return [*path[path.index(nxt) :], nxt]
            elif color.get(nxt, black) == white:
                color[nxt] = grey
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def _describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    steps = [f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(cycle)]
    return " -> ".join([*steps, cycle[-1]])


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    for a, b in KNOWN_EXCEPTIONS:
        assert b in graph[a], f"known exception {a} -> {b} no longer exists: remove it"
        del graph[a][b]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + _describe(cycle, graph)


def test_the_graph_sees_function_level_relative_and_package_imports(tmp_path):
    # a miniature package with each kind of import, and the cycles they make
    pkg = tmp_path / "mdesign"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from mdesign.sub import helper\n")
    (pkg / "sub" / "__init__.py").write_text("from .x import helper\n")
    (pkg / "sub" / "x.py").write_text("from . import y\nhelper = 1\n")
    (pkg / "sub" / "y.py").write_text("from mdesign.sub.x import helper\n")
    (pkg / "b.py").write_text("import mdesign.sub.y\n")
    graph = import_graph(pkg)
    assert graph["mdesign.a"] == {"mdesign.sub": 2}  # function level, a package's attribute
    assert graph["mdesign.sub"] == {"mdesign.sub.x": 1}
    assert graph["mdesign.sub.x"] == {"mdesign.sub.y": 1}  # `from . import y`
    assert graph["mdesign.sub.y"] == {"mdesign.sub.x": 1}  # not its own package's __init__
    assert graph["mdesign.b"] == {"mdesign.sub.y": 1, "mdesign.sub": 1}  # runs sub/__init__
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"mdesign.sub.x", "mdesign.sub.y"}
    (pkg / "sub" / "y.py").write_text("def g():\n    from mdesign.a import f\n")
    graph = import_graph(pkg)
    # y -> a -> sub -> x -> y: the cycle runs through a function-level import and a package
    assert set(find_cycle(graph)) == {"mdesign.sub.y", "mdesign.a", "mdesign.sub", "mdesign.sub.x"}
    (pkg / "sub" / "y.py").write_text("VALUE = 2\n")
    assert find_cycle(import_graph(pkg)) is None
