"""What an AT answer means, and what a technician may not send.

``decode()`` names each family in an answer in the one JSON vocabulary
(``vocabulary.py``) that ``pocket-agent decode`` prints too, so "what does +CEREG: 2,3,...
mean" needs no 27.007 at hand; ``describe_error()`` does the same for a failure. Commands
the table marks with a refusal (the vSIM load carries keys, and a command line ends up in
shell history; SIM lock changes) are refused by ``pocket-agent at``
(``agent/faces/cli/at.py``); ``refusal()`` is what the technician's console refuses.
Pure: no port, no printing, so the command line and the console share it.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.errors import ParseError
from agent.modem import codes
from agent.modem.at import AtResponse
from agent.modem.commands import KNOWN, CommandTable, technician_allowed
from agent.modem.dialects import Dialect, get_dialect
from agent.modem.vocabulary import error as error_fields

LOGGER = logging.getLogger(__name__)

__all__ = ["REFUSED", "decode", "describe_error", "refusal", "technician_allowed"]

REFUSED = tuple(f"AT{name}" for name, definition in KNOWN.items() if not definition.technician)
"""Commands ``pocket-agent at`` refuses (derived from the command table: those with a
``refusal``)."""

TECHNICIAN_REFUSED: dict[str, str] = {
    "AT+VSIMLOAD": "loads a SIM profile: it carries keys, only the agent may send it",
    "AT+VSIMDEL": "deletes a SIM profile: use swap",
    "AT+VSIMSEL": "switches the SIM behind the agent's back: use swap",
    "AT+EGMR": "writes the modem's identity (IMEI)",
    "AT+QNVW": "writes modem NV items (identity, calibration)",
    "AT+QNVFW": "writes modem NV files (identity, calibration)",
    "AT^NVWR": "writes modem NV items (identity, calibration)",
    "AT+QFOTADL": "downloads and flashes modem firmware",
    "AT+UFWUPD": "flashes modem firmware",
    "AT+QPOWD": "powers the modem off until the router is power-cycled",
}
"""Prefix -> why: what a technician's ``at`` pass-through refuses (identity and firmware
writes, profile loads and SIM switches). One place; the console asks ``refusal()``."""


def refusal(command: str) -> str | None:
    """Why ``command`` may not be passed through for a technician, or None if it may."""
    head = command.strip().upper().replace(" ", "")
    for prefix, why in TECHNICIAN_REFUSED.items():
        if head.startswith(prefix):
            return f"{prefix} refused: {why}"
    return None


def decode(resp: AtResponse, dialect: Dialect | None = None, table: CommandTable = KNOWN) -> dict[str, Any]:
    """What each family in the answer means, in the vocabulary ``decode`` prints too."""
    reading = dialect or get_dialect("generic")
    text = "\n".join(resp.lines)
    out: dict[str, Any] = {"final": resp.final}
    families = {f for f in (table.family_of(line) for line in resp.lines) if f}
    if not families and resp.lines:
        bare = table.bare_family(resp.command)
        families = {bare} if bare else set()
    for family in sorted(families):
        definition = table[family]
        try:
            out[family] = definition.describe(definition.read(text), reading)
        except ParseError as exc:
            out[family] = {"error": str(exc), "raw": exc.raw}
    return out


def describe_error(final: str) -> dict[str, Any] | None:
    """A failure final code in the vocabulary: its family, code and name."""
    found = codes.classify_line(final)
    if found.error is None:
        return None
    return {"family": found.family, **error_fields(found.error)}
