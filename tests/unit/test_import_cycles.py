"""No import cycle in ``agent/``: every module can be imported on its own, and the arrows
point one way (docs/architecture.md). Imports inside functions count too: a cycle held
together by a late import is still a cycle (issue 11)."""

from __future__ import annotations

import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"


def module_name(path: Path) -> str:
    parts = path.relative_to(AGENT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The agent modules ``path`` imports (``from agent.x import y`` counts ``agent.x.y``
    when that is a module, else ``agent.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {name for name in found if name in modules}


def graph() -> dict[str, set[str]]:
    """Module -> the agent modules its code imports."""
    paths = {module_name(p): p for p in AGENT.rglob("*.py")}
    return {name: imports_of(path, set(paths)) for name, path in paths.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path, or None (depth-first search with colours).

    Importing ``a.b.c`` first runs ``a/b/__init__``: that implicit step is followed too, but
    only when the package is not already being imported (then Python hands the half-made
    package over and no code of it runs again). So ``codes -> parse.lex`` would be a cycle if
    ``parse/__init__`` imported ``codes``; a package re-exporting its own submodules is not.
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        parent = node.rpartition(".")[0]
        implicit = [parent] if parent in edges and colour[parent] == white else []
        for nxt in [*implicit, *sorted(edges[node])]:
            if colour[nxt] == grey:
                return stack[stack.index(nxt):] + [nxt]
            if colour[nxt] == white and (found := visit(nxt)):
                return found
        stack.pop()
        colour[node] = black
        return None

    for start in sorted(edges):
        if colour[start] == white and (found := visit(start)):
            return found
    return None


def test_the_checker_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    # a package re-exporting its submodules, which import each other: no cycle
    assert find_cycle({"p": {"p.x", "p.y"}, "p.x": {"p.y"}, "p.y": set()}) is None
    # a module below a package that the package itself needs: a cycle through p/__init__
    assert find_cycle({"c": {"p.lex"}, "p": {"p.r"}, "p.r": {"c"}, "p.lex": set()}) == ["c", "p.lex", "p", "p.r", "c"]


def test_no_import_cycle_in_agent() -> None:
    assert find_cycle(graph()) is None
