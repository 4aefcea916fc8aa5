"""How the benches measure an event loop's lateness and print a distribution (median, p95
and max on one line), shared so every bench's figures read the same way."""

from __future__ import annotations

import asyncio
import statistics


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile by rank (nearest-rank, no interpolation: a figure that happened)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(name: str, values: list[float], unit: str = "ms", width: int = 34) -> str:
    return (f"  {name:<{width}} median {statistics.median(values):7.2f} {unit}   p95 {pct(values, 0.95):7.2f} {unit}"
            f"   max {max(values):7.2f} {unit}   (n={len(values)})")


async def lateness(seconds: float, tick_s: float) -> list[float]:
    """How late (ms) the running loop wakes from a ``tick_s`` sleep, for ``seconds``: what
    any other task in that loop would wait beyond its own timer."""
    late: list[float] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        due = loop.time() + tick_s
        await asyncio.sleep(tick_s)
        late.append((loop.time() - due) * 1000)
    return late
