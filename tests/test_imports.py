"""The import structure: no cycle between the project's modules, no import inside a function
of the virtual board (the way the modem and its command set used to hide a cycle), and
``agent`` never imports ``board``.

The graph is read with ``ast`` from the source (module-level imports, ``TYPE_CHECKING``
blocks left out since they never run), so a cycle is caught whichever module a user
happens to import first; one fresh interpreter then imports every module for real.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("agent", "board")
VIRTUAL = REPO / "board" / "virtual"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for root in ROOTS for p in sorted((REPO / root).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (module level, also inside if/try)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node):
                yield from _runtime_imports(node.body)
            yield from _runtime_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _runtime_imports(block)


def _targets(node: ast.Import | ast.ImportFrom, here: str, is_package: bool, known: set[str]) -> set[str]:
    """Project modules an import statement loads."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    base = node.module or ""
    if node.level:
        anchor = here.split(".") if is_package else here.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    out = {base} if base in known else set()
    out |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        edges: set[str] = set()
        for node in _runtime_imports(tree.body):
            edges |= _targets(node, name, path.name == "__init__.py", known)
        graph[name] = edges - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check below can fail: a two-module cycle is reported as one."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_project_modules() -> None:
    assert _cycle(_graph()) is None


def test_agent_never_imports_board() -> None:
    graph = _graph()
    upward = {m: sorted(t for t in ts if t.startswith("board")) for m, ts in graph.items() if m.startswith("agent")}
    assert {m: ts for m, ts in upward.items() if ts} == {}


def test_the_virtual_board_imports_nothing_inside_a_function() -> None:
    """A function-level import is how a cycle hides: every import of board/virtual sits at
    the top of its module."""
    hidden = []
    for path in sorted(VIRTUAL.rglob("*.py")):
        for func in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                hidden += [
                    f"{path.relative_to(REPO)}:{node.lineno}"
                    for node in ast.walk(func)
                    if isinstance(node, ast.Import | ast.ImportFrom)
                ]
    assert hidden == []


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """Each module imported for real (not only parsed), the virtual board's first so none
    can lean on another having been loaded before it."""
    names = sorted(_modules(), key=lambda m: (not m.startswith("board.virtual"), m))
    names = [n for n in names if not n.endswith("__main__")]  # running one is its job
    script = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    done = subprocess.run([sys.executable, "-c", script, *names], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


INDEPENDENT = ("board.virtual.cloud.sealer", "board.virtual.cloud.signer", "board.virtual.cloud.canonical",
               "board.virtual.cloud.contract", "board.virtual.cloud.rules")
"""The reference cloud's own reading of the contract (issue 21): its sealer, signer and
schema validator were written from docs/protocol.md so that the lab does not check the
agent against itself; importing any of the agent (agent.cloud.sealing and platformsig
above all) would undo that."""


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen - {start}


def test_the_reachability_walk_follows_imports_of_imports() -> None:
    """The check below can fail: a module reached through another is found."""
    assert _reachable({"a": {"b"}, "b": {"c"}, "c": set()}, "a") == {"b", "c"}


def test_the_clouds_sealer_and_schemas_import_nothing_of_the_agent() -> None:
    graph = _graph()
    for module in INDEPENDENT:
        assert module in graph, module
        reached = _reachable(graph, module)
        assert "agent.cloud.sealing" not in reached, module
        assert "agent.cloud.platformsig" not in reached, module
        assert sorted(m for m in reached if m == "agent" or m.startswith("agent.")) == [], module


def _third_party(path: Path) -> set[str]:
    """Top-level names of every import in a file, at any depth (a function's too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_agent_never_imports_a_json_schema_library() -> None:
    """The device keeps its own validators (agent/cloud/protocol.py): jsonschema is a test
    and lab dependency, not one of the package's."""
    assert "jsonschema" in _third_party(REPO / "board" / "virtual" / "cloud" / "contract.py")  # the check can fail
    found = {str(p.relative_to(REPO)): sorted(_third_party(p) & {"jsonschema", "referencing"})
             for p in sorted((REPO / "agent").rglob("*.py"))}
    assert {p: names for p, names in found.items() if names} == {}
