"""``pocket-agent uci2toml --out FILE [--base FILE] OPTION=VALUE...``: the init script's config step.

Writes the TOML that ``agent/uciconf.py`` derives from provisioning's configuration
(``--base``, /etc/pocket-agent/agent.toml on a router) and the validated UCI options, then
loads it as the daemon will, so a bad value is refused now, in the init script's log,
with the exit code a service manager does not retry.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from agent import store
from agent.boardprofile import load_profile
from agent.config import load
from agent.core import page_settings
from agent.core.exitcodes import ExitCode
from agent.errors import ConfigError
from agent.uciconf import page_table, read_base, read_uci, to_toml

LOGGER = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="the TOML file to write")
    parser.add_argument("--base", type=Path, default=None,
                        help="provisioning's configuration, which the options override (docs/layout.md)")
    parser.add_argument("--uci", type=Path, default=None,
                        help="the UCI file whose 'page' section gives the [page] table (/etc/config/pocket-agent)")
    parser.add_argument("options", nargs="*", metavar="OPTION=VALUE", help="validated UCI options")


def main(args: argparse.Namespace) -> int:
    try:
        options = dict(_split(item) for item in args.options)
        base = read_base(args.base) if args.base else None
        page = page_table(read_uci(args.uci)) if args.uci else None
        store.atomic_write(args.out, to_toml(options, base, page).encode(), mode=store.PUBLIC_MODE)
        cfg = load(args.out)  # the daemon will read it: refuse now, in the init script's log
        # the daemon would log a bad [page] and serve without the page: say it here instead
        page_settings.settings(cfg.page, load_profile(cfg.board_profile))
    except ConfigError as exc:
        LOGGER.error("%s", exc)
        return ExitCode.CONFIG_INVALID
    return ExitCode.OK


def _split(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep:
        raise ConfigError(f"expected OPTION=VALUE, got {item!r}")
    return name, value
