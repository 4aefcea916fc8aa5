"""``pocket-agent run --config FILE``: the daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from agent import config as config_mod
from agent.clock import OffsetFileClock
from agent.core import exitcodes
from agent.errors import ConfigError

LOGGER = logging.getLogger(__name__)

CLOCK_OFFSET_ENV = "POCKET_AGENT_CLOCK_OFFSET_FILE"
"""Set by the virtual board only: a file with the offset added to the agent's wall clock."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the agent's TOML config (docs/configuration.md)")


def main(args: argparse.Namespace) -> int:
    from agent.core.supervisor import Supervisor

    try:
        cfg = config_mod.load(args.config)
        supervisor = Supervisor.from_config(cfg)
        offset_file = os.environ.get(CLOCK_OFFSET_ENV)
        if offset_file:  # the lab steps the agent's clock, never the host's (pocket-lab fault clock)
            supervisor.clock = OffsetFileClock(offset_file)
    except ConfigError as exc:
        LOGGER.error("configuration: %s", exc)
        return exitcodes.CONFIG_INVALID
    return asyncio.run(supervisor.run())
