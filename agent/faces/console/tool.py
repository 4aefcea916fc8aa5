"""``pocket-agent console serve|sign|keygen``: the console apart from the daemon, and the
technician's support tool.

* ``[serve] --port TTY [--port TTY2] --control SOCK``: run the console as its own process
  against a running daemon's control socket (for boards that set ``[console] in_daemon =
  false``; the default is to run inside the daemon, see agent/core/consoled.py).
* ``keygen --out FILE``: a technician's new Ed25519 key (0600); prints the public key
  that the platform pins on devices (``technicians.json``, or the cloud policy).
* ``sign --key FILE "CHALLENGE"``: the signature to paste at the console's prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from agent.errors import ConfigError

LOGGER = logging.getLogger(__name__)


def _serve_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("--port", action="append", required=required, help="tty path (repeat for two terminals)")
    parser.add_argument("--control", required=required, help="the daemon's control socket")
    parser.add_argument("--idle-logout", type=float, default=None, help="seconds (default 300)")


def configure(parser: argparse.ArgumentParser) -> None:
    # ``pocket-agent console --port P --control S`` serves, like ``console serve ...``.
    _serve_options(parser, required=False)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    _serve_options(sub.add_parser("serve", help="serve the console on serial ports, talking to a running daemon"),
                   required=True)
    sign = sub.add_parser("sign", help="sign a console login challenge with your key")
    sign.add_argument("--key", required=True, type=Path, help="your Ed25519 private key (PEM)")
    sign.add_argument("challenge", help="the challenge exactly as the console printed it")
    keygen = sub.add_parser("keygen", help="create a technician key; prints the public key to pin")
    keygen.add_argument("--out", required=True, type=Path)


def main(args: argparse.Namespace) -> int:
    from agent.faces.console import auth

    try:
        if args.action == "sign":
            print(auth.sign(auth.load_private_key(args.key), args.challenge))
        elif args.action == "keygen":
            print(auth.generate_key(args.out))
        elif args.port and args.control:
            return asyncio.run(serve(args.port, args.control, args.idle_logout))
        else:
            LOGGER.error("console: give --port and --control to serve, or an action (serve, sign, keygen)")
            return 2
    except (ConfigError, FileExistsError) as exc:
        LOGGER.error("%s", exc)
        return 2
    return 0


async def serve(ports: list[str], control: str, idle_logout: float | None) -> int:
    from agent.core.control import ControlClient
    from agent.faces.console.ports import ConsoleServer

    server = ConsoleServer(ports, lambda: ControlClient(control), idle_logout=idle_logout)
    try:
        await server.run()
    except asyncio.CancelledError:
        pass
    return 0
