"""Memory per import, as ``python -X importtime`` gives time: for each module imported by
the statements given, the Python heap it retains (tracemalloc's current traced bytes after
its loader ran, minus what its own imports retained), and its cumulative figure.

A full garbage collection runs as each import starts and ends, so what one module's
import leaves as garbage is freed inside its own window and never shows up as a negative
figure in another's. A shared table that grows shows up in the module whose import made it
grow: the interned-strings dict doubles now and then as the process interns more names
(about 1 MB at once, seen under ``agent.modem.codes`` in the serving set); sum over a
subtree (``--under``) or compare the RSS stages before blaming one module. Native memory (an extension module's pages, OpenSSL's tables) is not traced: the fresh-process
RSS stages of bench_footprint.py cover it. Run from the repository root, as
``python tests/bench/importmem.py "import agent.core.supervisor" [--top 40] [--under NAME]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from typing import Any


class _Loader:
    """Proxy around a module's real loader that measures what ``exec_module`` retains."""

    def __init__(self, real: Any, name: str, tree: ImportTree):
        self._real, self._name, self._tree = real, name, tree

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._real, attr)

    def create_module(self, spec: Any) -> Any:
        return self._real.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._tree.enter(self._name)
        try:
            self._real.exec_module(module)
        finally:
            self._tree.leave(self._name)


class ImportTree:
    """A meta-path finder that wraps every other finder's loader with ``_Loader``."""

    def __init__(self) -> None:
        self.stack: list[tuple[str, int, list[int]]] = []
        self.self_bytes: dict[str, int] = {}
        self.cumulative: dict[str, int] = {}
        self.parent: dict[str, str | None] = {}

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, name, self)
                return spec
        return None

    def enter(self, name: str) -> None:
        gc.collect()  # garbage from before this import is not freed inside its window
        self.parent[name] = self.stack[-1][0] if self.stack else None
        self.stack.append((name, tracemalloc.get_traced_memory()[0], [0]))

    def leave(self, name: str) -> None:
        _, before, children = self.stack.pop()
        gc.collect()  # nor is this import's own garbage counted as retained
        total = tracemalloc.get_traced_memory()[0] - before
        self.cumulative[name] = total
        self.self_bytes[name] = total - children[0]
        if self.stack:
            self.stack[-1][2][0] += total

    def under(self, root: str) -> dict[str, int]:
        """Self bytes of every module first imported beneath ``root`` (``root`` included)."""
        out = {}
        for name, size in self.self_bytes.items():
            node: str | None = name
            while node is not None and node != root:
                node = self.parent.get(node)
            if node == root:
                out[name] = size
        return out


def measure(code: str) -> ImportTree:
    tree = ImportTree()
    tracemalloc.start()
    sys.meta_path.insert(0, tree)
    try:
        exec(compile(code, "<importmem>", "exec"), {})  # noqa: S102 - the statements to measure
    finally:
        sys.meta_path.remove(tree)
        tracemalloc.stop()
    return tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("code", help='statements to run, e.g. "import agent.core.supervisor"')
    parser.add_argument("--top", type=int, default=30, help="modules to list by self bytes")
    parser.add_argument("--under", action="append", default=[],
                        help="also sum what was imported beneath this module (repeatable)")
    args = parser.parse_args()
    sys.path.insert(0, ".")
    tree = measure(args.code)
    total = sum(tree.self_bytes.values())
    print(f"{len(tree.self_bytes)} modules, {total / 2**20:.2f} MB of Python heap retained by their import")
    print(f"{'self KB':>9} {'cumul KB':>9}  module")
    for name, size in sorted(tree.self_bytes.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"{size / 1024:9.0f} {tree.cumulative[name] / 1024:9.0f}  {name}")
    for root in args.under:
        subtree = tree.under(root)
        print(f"beneath {root}: {len(subtree)} modules first imported there, {sum(subtree.values()) / 2**20:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
