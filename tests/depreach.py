"""Which test files can reach a pinned library through their imports (issue 21, speed).

The oldest-versions run (tests/parts.py, part ``oldest``) exists to run the code that calls
cryptography, paho-mqtt, pyserial and pyroute2 on the oldest versions the packages declare.
A test whose module cannot import any of them, directly or through the project's modules,
runs the same code on both venvs (the interpreter and the test tools are the same), so the
second run of it proves nothing and costs a CPU on a 2-core machine. Reach is found from
the source, statically: every ``import`` and ``from ... import`` anywhere in a file
(function-level, lazy imports included), followed through the project's own modules.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PINNED = frozenset({"cryptography", "paho", "serial", "pyroute2"})
"""Top-level names of packaging/oldest-deps.txt's four libraries."""
PROJECT = frozenset({"agent", "board", "tests"})
"""Top-level packages of this repository, followed into."""


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from agent.cloud import sealing`` imports a submodule, not only a name.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _parents(name: str) -> list[str]:
    """A module's own name and its packages' (importing a.b.c runs a/__init__, a/b/__init__)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _edges(path: Path) -> tuple[bool, list[Path]]:
    """Whether a file imports a pinned library itself, and the project files it imports."""
    direct = False
    files: list[Path] = []
    for name in _imported_names(path):
        top = name.split(".")[0]
        direct = direct or top in PINNED
        if top in PROJECT:
            files.extend(f for f in map(_module_file, _parents(name)) if f is not None)
    return direct, files


@cache
def _reaching_files() -> frozenset[Path]:
    """Every project file that reaches a pinned library: the graph walked once, backwards."""
    graph: dict[Path, list[Path]] = {}
    direct: set[Path] = set()
    todo = [p.resolve() for top in PROJECT for p in (REPO / top).rglob("*.py")]
    for path in todo:
        reaches, files = _edges(path)
        graph[path] = [f.resolve() for f in files]
        if reaches:
            direct.add(path)
    importers: dict[Path, list[Path]] = {}
    for path, files in graph.items():
        for f in files:
            importers.setdefault(f, []).append(path)
    reached, stack = set(direct), list(direct)
    while stack:
        for importer in importers.get(stack.pop(), []):
            if importer not in reached:
                reached.add(importer)
                stack.append(importer)
    return frozenset(reached)


def reaches_pinned(path: Path) -> bool:
    """True when ``path`` can import one of the pinned libraries, directly or transitively,
    or names one anywhere in its text (code run in a subprocess, ``-c`` strings, an
    ``importorskip``: what the import graph cannot see is kept rather than dropped)."""
    direct, files = _edges(path)
    if direct or any(f.resolve() in _reaching_files() for f in files):
        return True
    text = path.read_text()
    return any(re.search(rf"\b{name}\b", text) for name in PINNED)
