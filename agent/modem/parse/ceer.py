"""+CEER: the extended error report, the modem's free text for the last failure (27.007 §6.10).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.modem.lex import body_lines, fail, payload_after


@dataclass(frozen=True)
class Ceer:
    """+CEER extended error report: the vendor's free text (may be empty)."""

    reason: str


def parse_ceer(text: str) -> Ceer:
    """+CEER: <report>; an empty body or a bare prefix means "no reason"."""
    lines = body_lines(text)
    if not lines:
        return Ceer("")
    payload = payload_after(lines[0], "+CEER:")
    if payload is None:
        raise fail("no +CEER line", text)
    return Ceer(payload.strip().strip('"'))
