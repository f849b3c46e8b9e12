"""Import circles in the host (issue #16): the graph of every ``import`` in ``benchtool/``,
function-level ones included, and its strongly connected components.

A ratchet: a new circle fails this test; the circles still known are listed with why they
remain, and a listed circle that is gone fails it too (so the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Circles that remain, each a sorted list of modules; see issue #16 for the plan to cut them.
KNOWN = [
    # the kernels package re-exports its backends, which import the shared array helpers through it
    ["benchtool.kernels", "benchtool.kernels._arrays", "benchtool.kernels._backends", "benchtool.kernels.calibration",
     "benchtool.kernels.predictive", "benchtool.kernels.regression"],
]


def import_graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for path in (ROOT / "benchtool").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_new_import_circles_and_the_known_ones_only_shrink() -> None:
    assert circles(import_graph()) == sorted(KNOWN)


def test_the_cli_and_the_modules_that_add_commands_are_no_circle() -> None:
    graph = import_graph()
    for module in ("benchtool.store.commands", "benchtool.report.commands", "benchtool.benchmarking"):
        assert "benchtool.cli" not in graph[module], f"{module} imports the CLI back"
    assert not any("benchtool.cli" in circle for circle in circles(graph))


def test_a_circle_is_found() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
