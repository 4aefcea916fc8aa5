"""Secrets out of the log lines a failed update reports (pure).

The report of a rolled-back release carries the new version's last log lines, so the
release's authors see why it failed. The agent's own logging never writes a key (the AT
layer redacts sensitive commands, ``SimProfile`` redacts Ki and OPc), but a crashing new
version is exactly the code that may have broken that rule: every line is scrubbed here
again before it leaves the device or reaches its journal. What looks like a key is
replaced, whatever it is: a PEM block, a 128-bit or longer hex string (Ki, OPc, K), a
long base64 run with upper and lower case and digits in it (keys, sealed envelopes,
signatures; a file path in a traceback has no capitals and digits together, and stays),
and any ``ki=`` / ``opc=`` value.
"""

from __future__ import annotations

import re

TAIL_LINES = 20
"""Lines kept: a Python traceback of a start-up crash is 10-20 lines."""
LINE_CHARS = 200
"""Characters kept per line: the report is one MQTT event (docs/protocol.md size limits)."""
REDACTED = "[redacted]"

_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)"),
    re.compile(r"(?i)\b(ki|opc|op|k|key|secret|password|token)\s*[=:]\s*\S+"),
    re.compile(r"\b[0-9A-Fa-f]{32,}\b"),
    re.compile(r"(?=[A-Za-z0-9+/_-]*[A-Z])(?=[A-Za-z0-9+/_-]*[a-z])(?=[A-Za-z0-9+/_-]*[0-9])"
               r"[A-Za-z0-9+/_-]{40,}={0,2}"),
)


def scrub_line(line: str) -> str:
    """One line with everything that looks like a secret replaced, cut to LINE_CHARS."""
    for pattern in _PATTERNS:
        line = pattern.sub(REDACTED, line)
    return line[:LINE_CHARS]


def tail(lines: list[str], keep: int = TAIL_LINES) -> tuple[str, ...]:
    """The last ``keep`` non-empty lines, scrubbed."""
    kept = [line.rstrip("\n") for line in lines if line.strip()][-keep:]
    return tuple(scrub_line(line) for line in kept)
