"""The modules of singer/ import each other without a cycle.

Every ``import`` counts, at module level or inside a function: a deferred import that only hides a cycle from the
interpreter still ties the two modules together. Imports under ``if TYPE_CHECKING:`` do not run and do not count.
Importing ``singer.x.y`` runs ``singer/x/__init__.py`` first; that implicit parent edge is not counted (a package
that re-exports its submodules would otherwise be in a cycle with each of them), but ``from singer.x import name``
of a name that is not a submodule is an edge to the package, whose ``__init__`` defines it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "singer"

# Imports known to close a cycle outside the jobs/HTTP part of the refactor, as (importer, imported); they are left
# out of the graph. The lead empties this list once the branches that remove them are merged.
KNOWN_EDGES: set[tuple[str, str]] = set()  # edges a cycle may pass through: none


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("singer", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that runs when its code runs (not those under ``if TYPE_CHECKING:``)."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node):
            children = node.orelse
        todo.extend(children)
    return found


def _targets(name: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: dict) -> set[str]:
    """The singer modules one import statement of module ``name`` loads (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if node.level:
        package = name.split(".") if is_package else name.split(".")[:-1]
        base_parts = package[: len(package) - (node.level - 1)]
        base = ".".join([*base_parts, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    found = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in modules:  # a submodule: the package's __init__ is the implicit parent edge, not counted
            found.add(sub)
        elif base in modules:
            found.add(base)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        edges: set[str] = set()
        for node in _imports(tree):
            edges |= _targets(name, path.name == "__init__.py", node, modules)
        graph[name] = edges - {name}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def a_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete import loop inside ``component`` (a -> b -> ... -> a), for the failure message."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    todo = [start]
    while todo:  # breadth first from start until an edge leads back to it
        node = todo.pop(0)
        for child in sorted(graph[node] & members):
            if child == start:
                return [*paths[node], start]
            if child not in paths:
                paths[child] = [*paths[node], child]
                todo.append(child)
    return component


def test_graph_counts_module_and_function_level_imports():
    graph = import_graph()
    assert "singer.jobs.db" in graph["singer.jobs.store"]  # from .db import ... (module level, relative)
    assert "singer.api" in graph["singer.jobs.execute"]  # from ..api import CoverRequest (inside a function)
    assert "singer.jobs" not in graph["singer.http.app"]  # from ..jobs.store import ...: no implicit parent edge


def test_cycle_finder_finds_a_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d"]]
    assert a_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    graph = {name: {t for t in edges if (name, t) not in KNOWN_EDGES} for name, edges in import_graph().items()}
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    loops = "\n".join(" -> ".join(a_cycle(graph, c)) + f"   (component: {', '.join(c)})" for c in cycles)
    assert not cycles, f"import cycles in singer/:\n{loops}"
