"""``pocket-agent at --port PORT 'AT+CSQ'``: one command, its raw answer and its meaning.

For the technician at the router: it prints the lines exactly as the modem sent them
(stdout), then what parse.py makes of them as JSON, so "what does +CEREG: 2,3,... mean"
needs no 27.007 at hand. vSIM loads are refused here: they carry keys, and a command
line ends up in shell history.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
from typing import Any

from agent.boardprofile import load_profile
from agent.errors import AgentError, AtCommandError, ConfigError, ParseError
from agent.modem import parse
from agent.modem.at import AtResponse, open_channel

LOGGER = logging.getLogger(__name__)

REFUSED = ("AT+VSIMLOAD",)
"""Commands that carry secrets; never typed on a command line."""

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


def decode(resp: AtResponse) -> dict[str, Any]:
    """What each family in the answer means, via parse.FAMILIES."""
    text = "\n".join(resp.lines)
    out: dict[str, Any] = {"final": resp.final}
    families = {f for f in (parse.family_of(line) for line in resp.lines) if f}
    if not families and resp.lines:
        bare = _bare_family(resp.command)
        families = {bare} if bare else set()
    for family in sorted(families):
        try:
            out[family] = _jsonable(parse.FAMILIES[family](text))
        except ParseError as exc:
            out[family] = {"error": str(exc), "raw": exc.raw}
    return out


def _bare_family(command: str) -> str | None:
    """+CIMI and +CGSN answer without a prefix: name the family from the command."""
    head = command.upper().removeprefix("AT").split("=")[0].split("?")[0]
    return head if head in parse.FAMILIES else None


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


async def run(port: str, baud: int, command: str, timeout: float | None) -> int:
    channel = await open_channel(port, baud)
    try:
        resp = await channel.command(command, timeout=timeout)
    except AtCommandError as exc:
        print(exc.raw or str(exc))
        err = parse.parse_error((exc.raw or "").splitlines()[-1]) if exc.raw else None
        print(json.dumps({"error": _jsonable(err) if err else str(exc)}))
        return 1
    finally:
        channel.close()
    for line in resp.lines:
        print(line)
    print(resp.final)
    print(json.dumps(decode(resp), ensure_ascii=False))
    return 0


def main(args: argparse.Namespace) -> int:
    command = args.command.strip()
    if not command.upper().startswith("AT"):
        command = "AT" + command
    if command.upper().startswith(REFUSED):
        LOGGER.error("%s carries SIM keys: use the agent, not the command line", REFUSED[0])
        return 2
    try:
        port, baud = args.port, args.baud
        if port is None or baud is None:
            profile = load_profile(args.board)
            port, baud = port or profile.at_port, baud or profile.baud
        return asyncio.run(run(port, baud, command, args.timeout))
    except ConfigError as exc:
        LOGGER.error("%s", exc)
        return 2
    except AgentError as exc:
        LOGGER.error("%s: %s", type(exc).__name__, exc)
        return 1
