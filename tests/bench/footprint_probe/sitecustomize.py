"""Measurement probe, never shipped: on the agent's ``PYTHONPATH`` (with ``PYTHONTRACEMALLOC``
set so tracing starts with the interpreter) it writes a tracemalloc snapshot to
``$POCKET_FOOTPRINT_SNAPSHOT.<n>`` each time the process gets SIGUSR2, and the list of
loaded modules beside it. docs/footprint.md says how to read them.
"""

from __future__ import annotations

import os
import signal
import sys
import tracemalloc

_TARGET = os.environ.get("POCKET_FOOTPRINT_SNAPSHOT")
_COUNT = [0]


def _dump(signum: int, frame: object) -> None:
    if not tracemalloc.is_tracing():
        return
    path = f"{_TARGET}.{_COUNT[0]}"
    _COUNT[0] += 1
    tracemalloc.take_snapshot().dump(path)
    with open(path + ".modules", "w") as out:
        out.write("\n".join(sorted(sys.modules)))


if _TARGET:
    signal.signal(signal.SIGUSR2, _dump)
