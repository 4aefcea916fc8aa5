"""Byte counts as a person reads them: one formatting for the renter's page and the console.

The figures themselves (each plan rule's used / cap / left, when it resets, when it will
throttle) are agent/plans/shown.py's rows, from the tracker the swap policy acts on; this
module only says how a count of bytes is written, so the page's "2.1 GB" and the console's
are the same string.
"""

from __future__ import annotations


def human_bytes(n: int | None) -> str:
    """Decimal units as carriers write plans ("3 GB" is 3,000,000,000 bytes): one decimal
    below 10 of a unit, none above; the page and the console print the same string."""
    if n is None:
        return "-"
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} B"
