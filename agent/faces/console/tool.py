"""``pocket-agent console serve|sign|keygen``: the console apart from the daemon, and the
technician's support tool.

* ``[serve] --port TTY [--port TTY2] --control SOCK``: run the console as its own process
  against a running daemon's control socket (for boards that set ``[console] in_daemon =
  false``; the default is to run inside the daemon, see agent/core/consoled.py).
* ``keygen --out FILE``: a technician's new Ed25519 key (0600, encrypted with a passphrase
  asked twice on the terminal unless ``--no-passphrase``); prints the public key that the
  platform pins on devices (``technicians.json``, or the cloud policy).
* ``sign --key FILE [--device ID] "CHALLENGE"``: the signature to paste at the console's
  prompt; says on stderr which device the challenge is for, and with ``--device`` refuses
  one for any other.

A passphrase comes from the terminal (``getpass``), or from the first line of
``--passphrase-file`` for scripts; never from the command line, where ``ps`` shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
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
    sign.add_argument("--device", help="the id of the router in front of you: refuse a challenge for another")
    sign.add_argument("--passphrase-file", type=Path, help="read the key's passphrase from this file's first line")
    sign.add_argument("challenge", help="the challenge exactly as the console printed it")
    keygen = sub.add_parser("keygen", help="create a technician key; prints the public key to pin")
    keygen.add_argument("--out", required=True, type=Path)
    keygen.add_argument("--passphrase-file", type=Path, help="read the passphrase from this file's first line")
    keygen.add_argument("--no-passphrase", action="store_true",
                        help="write the key unencrypted (only where the disk itself is encrypted, or in a lab)")


def main(args: argparse.Namespace) -> int:
    from agent.faces.console import auth

    try:
        if args.action == "sign":
            return _sign(args)
        elif args.action == "keygen":
            passphrase = None if args.no_passphrase else _passphrase(args.passphrase_file, confirm=True)
            print(auth.generate_key(args.out, passphrase))
        elif args.port and args.control:
            return asyncio.run(serve(args.port, args.control, args.idle_logout))
        else:
            LOGGER.error("console: give --port and --control to serve, or an action (serve, sign, keygen)")
            return 2
    except (ConfigError, FileExistsError) as exc:
        LOGGER.error("%s", exc)
        return 2
    return 0


def _sign(args: argparse.Namespace) -> int:
    from agent.core.logins import parse_challenge
    from agent.faces.console import auth

    challenge = parse_challenge(args.challenge)  # refuse a text that names no device before asking anything
    print(auth.describe(challenge) + (" (the router you named)" if args.device == challenge.device else ""),
          file=sys.stderr)
    passphrase = _passphrase(args.passphrase_file) if auth.is_encrypted(args.key) or args.passphrase_file else None
    print(auth.sign(auth.load_private_key(args.key, passphrase), args.challenge, device=args.device))
    return 0


def _passphrase(path: Path | None, *, confirm: bool = False) -> bytes:
    """From ``path``'s first line, else asked on the terminal (twice when ``confirm``)."""
    if path is not None:
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ConfigError(f"{path}: not readable ({type(exc).__name__})") from None
        return lines[0].encode() if lines else b""
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask the passphrase on: give --passphrase-file"
                          + (" or --no-passphrase" if confirm else ""))
    first = getpass.getpass("key passphrase: ")
    if confirm and getpass.getpass("again: ") != first:
        raise ConfigError("the two passphrases differ")
    return first.encode()


async def serve(ports: list[str], control: str, idle_logout: float | None) -> int:
    from agent.core.control import ControlClient
    from agent.faces.console.ports import ConsoleServer

    server = ConsoleServer(ports, lambda: ControlClient(control), idle_logout=idle_logout)
    try:
        await server.run()
    except asyncio.CancelledError:
        pass
    return 0
