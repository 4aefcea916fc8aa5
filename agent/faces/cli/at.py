"""``pocket-agent at --port PORT 'AT+CSQ'``: one command, its raw answer and its meaning.

For the technician at the router: it prints the lines exactly as the modem sent them
(stdout), then what the parsers make of them as JSON (``agent/modem/answer.py``, the same
vocabulary as ``pocket-agent decode``). Commands the table marks with a refusal are
refused, by the same table the technician's console reads (``commands.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from agent.boardprofile import load_profile
from agent.errors import AgentError, AtCommandError, ConfigError
from agent.modem.answer import decode, describe_error
from agent.modem.at import open_channel
from agent.modem.commands import KNOWN
from agent.modem.dialects import Dialect, get_dialect

LOGGER = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("command", help="the AT command, e.g. 'AT+CSQ'")
    parser.add_argument("--port", help="tty path or pyserial URL (default: the board profile's)")
    parser.add_argument("--board", default="virtual", help="board profile name or path")
    parser.add_argument("--baud", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=None, help="seconds (default: per command)")


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
