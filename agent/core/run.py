"""``pocket-agent run --config FILE``: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging

from agent import config as config_mod
from agent.core import exitcodes
from agent.errors import ConfigError

LOGGER = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the agent's TOML config (docs/configuration.md)")


def main(args: argparse.Namespace) -> int:
    from agent.core.supervisor import Supervisor

    try:
        cfg = config_mod.load(args.config)
        supervisor = Supervisor.from_config(cfg)
    except ConfigError as exc:
        LOGGER.error("configuration: %s", exc)
        return exitcodes.CONFIG_INVALID
    return asyncio.run(supervisor.run())
