"""``pocket-agent at --port PORT 'AT+CSQ'``: one command, its raw answer and its meaning.

For the technician at the router: it prints the lines exactly as the modem sent them
(stdout), then what the parsers make of them as JSON, in the same vocabulary as
``pocket-agent decode`` (``vocabulary.py``), so "what does +CEREG: 2,3,... mean" needs no
27.007 at hand. Commands the table marks with a refusal (the vSIM load carries keys, and a
command line ends up in shell history; SIM lock changes) are refused here, by the same
predicate the technician's console uses (``commands.technician_allowed``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

from agent.boardprofile import load_profile
from agent.errors import AgentError, AtCommandError, ConfigError, ParseError
from agent.modem import codes
from agent.modem.at import AtResponse, open_channel
from agent.modem.commands import KNOWN, CommandTable, technician_allowed
from agent.modem.dialects import Dialect, get_dialect
from agent.modem.vocabulary import error as error_fields

LOGGER = logging.getLogger(__name__)

__all__ = ["REFUSED", "configure", "decode", "describe_error", "main", "run", "technician_allowed"]

REFUSED = tuple(f"AT{name}" for name, definition in KNOWN.items() if not definition.technician)
"""Commands refused here (derived from the command table: those with a ``refusal``)."""

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


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("command", help="the AT command, e.g. 'AT+CSQ'")
    parser.add_argument("--port", help="tty path or pyserial URL (default: the board profile's)")
    parser.add_argument("--board", default="virtual", help="board profile name or path")
    parser.add_argument("--baud", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=None, help="seconds (default: per command)")


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


async def run(port: str, baud: int, command: str, timeout: float | None, dialect: Dialect | None = None) -> int:
    channel = await open_channel(port, baud)
    if dialect is not None:
        channel.commands = dialect.commands
    try:
        resp = await channel.command(command, timeout=timeout)
    except AtCommandError as exc:
        print(exc.raw or str(exc))
        err = describe_error((exc.raw or "").splitlines()[-1]) if exc.raw else None
        print(json.dumps({"error": err or str(exc)}))
        return 1
    finally:
        channel.close()
    for line in resp.lines:
        print(line)
    print(resp.final)
    print(json.dumps(decode(resp, dialect, channel.commands), ensure_ascii=False))
    return 0


def main(args: argparse.Namespace) -> int:
    command = args.command.strip()
    if not command.upper().startswith("AT"):
        command = "AT" + command
    refusal = KNOWN.refusal(command)
    if refusal is not None:
        LOGGER.error("refused: %s (use the agent, not the command line)", refusal)
        return 2
    try:
        port, baud, dialect = args.port, args.baud, None
        if port is None or baud is None:
            profile = load_profile(args.board)
            port, baud, dialect = port or profile.at_port, baud or profile.baud, get_dialect(profile.dialect)
        return asyncio.run(run(port, baud, command, args.timeout, dialect))
    except ConfigError as exc:
        LOGGER.error("%s", exc)
        return 2
    except AgentError as exc:
        LOGGER.error("%s: %s", type(exc).__name__, exc)
        return 1
