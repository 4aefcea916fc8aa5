"""``pocket-agent``: the daemon and the technician's one-shot tools, by name.

This file only maps names to the modules that implement them and imports them lazily, so
``pocket-agent decode`` does not pay for paho or pyroute2. The command-line tools live
beside it in ``agent/faces/cli/``; the console's and provisioning's commands live in their
own faces (``agent/faces/console/tool.py``, ``agent/faces/provision/``). What a tool
reads or computes (parsers, the classifier, the vocabulary) stays with its logic, so the
daemon and the console use the same code. A subcommand module exposes::

    def configure(parser: argparse.ArgumentParser) -> None   # add its arguments
    def main(args: argparse.Namespace) -> int                 # run; return exit code
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

from agent.logs import TRACE  # issue 11: the level is defined once, in agent/logs.py
from agent.version import VersionAction, describe

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("agent.faces.cli.run", "run the daemon (modem, cloud, data path, metering)"),
    "at": ("agent.faces.cli.at", "send one AT command and print the raw and decoded answer"),
    "decode": ("agent.faces.cli.decode", "decode modem output on stdin to one JSON object per line"),
    "replay": ("agent.faces.cli.replay", "run the low-speed classifier over a recorded trace"),
    "record": ("agent.faces.cli.record", "record a health trace CSV from the live data path"),
    "provision": ("agent.faces.provision.command", "factory provisioning: keys, CSR, certificate, self-test"),
    "identity": ("agent.faces.provision.show", "show this device's identity and certificate expiry"),
    "uci2toml": ("agent.faces.cli.uci2toml", "write the agent's TOML config from OpenWrt UCI options (init script)"),
    "own-state": ("agent.faces.cli.ownstate", "give the state directory to the agent's user, following no link (init script)"),
    "console": ("agent.faces.console.tool", "technician console: serve apart from the daemon, keygen, sign"),
}
"""name -> (module, one-line help). Keep this table the single place a name is added."""


def build_parser(prog: str, version: str | Callable[[], str], table: dict[str, tuple[str, str]]) -> argparse.ArgumentParser:
    """An argparse parser whose subcommands come from ``table`` (module imported lazily)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--version", action=VersionAction, text=version)  # version and build, lazily
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: raw bytes)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in table.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_name)
        # Only the chosen subcommand's module is imported (see dispatch()).
        sp.set_defaults(_configure_pending=True)
    return parser


def dispatch(prog: str, version: str | Callable[[], str], table: dict[str, tuple[str, str]], argv: Sequence[str] | None) -> int:
    """Parse ``argv`` in two passes: find the subcommand, then let its module add arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog, version, table)
    # First pass: which subcommand? (unknown options belong to it; --help waits for the
    # second pass, so that `pocket-agent record --help` lists record's own options)
    if not any(a in table for a in argv):
        parser.parse_args(argv)  # no subcommand: argparse prints the help or the usage error
    known, _ = parser.parse_known_args([a for a in argv if a not in ("-h", "--help")])
    module = importlib.import_module(known._module)
    sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    module.configure(sub_action.choices[known.command])
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    return int(module.main(args) or 0)


def setup_logging(verbosity: int) -> None:
    """-v: DEBUG; -vv: TRACE (raw bytes). Logs go to stderr; stdout is for results."""
    logging.addLevelName(TRACE, "TRACE")
    level = logging.INFO if verbosity <= 0 else logging.DEBUG if verbosity == 1 else TRACE
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pocket-agent`` console script."""
    return dispatch("pocket-agent", describe, SUBCOMMANDS, argv)


if __name__ == "__main__":
    raise SystemExit(main())
