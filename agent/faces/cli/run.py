"""``pocket-agent run --config FILE``: the daemon.

Around the supervisor, what a service manager needs: one instance per state directory
(agent/pidlock.py), an exit code that says whether a restart can help
(agent/core/exitcodes.py), and systemd's notify protocol with a watchdog that pings
only while the main loop makes progress (agent/sdnotify.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import TYPE_CHECKING

from agent import config as config_mod
from agent import hardening, store, testhooks
from agent.clock import OffsetFileClock
from agent.core.exitcodes import ExitCode
from agent.errors import AlreadyRunning, ConfigError
from agent.pidlock import PidLock
from agent.sdnotify import Notifier, ProgressWatchdog, watchdog_interval

if TYPE_CHECKING:
    from agent.core.supervisor import Supervisor

LOGGER = logging.getLogger(__name__)

CLOCK_OFFSET_ENV = "POCKET_AGENT_CLOCK_OFFSET_FILE"
"""Set by the virtual board only: a file with the offset added to the agent's wall clock.
A test hook (agent/testhooks.py): ignored by a packaged build."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the agent's TOML config (docs/configuration.md)")


def main(args: argparse.Namespace) -> int:
    hardening.no_core_dumps()  # before any key is read (issue 20): a crash must not dump Ki/OPc
    from agent.core.supervisor import Supervisor

    try:
        cfg = config_mod.load(args.config)
        supervisor = Supervisor.from_config(cfg)
        lab_clock = lab_clock_hook()
        if lab_clock is not None:  # the lab steps the agent's clock, never the host's (pocket-lab fault clock)
            supervisor.clock = lab_clock
    except ConfigError as exc:
        LOGGER.error("configuration: %s", exc)
        return ExitCode.CONFIG_INVALID
    try:
        store.ensure_private_dir(cfg.state_dir)
        lock = PidLock.in_dir(cfg.state_dir)
        lock.acquire()
    except AlreadyRunning as exc:
        LOGGER.error("%s", exc)
        return ExitCode.ALREADY_RUNNING
    except OSError as exc:
        LOGGER.error("state directory %s is not writable: %s", cfg.state_dir, exc)
        return ExitCode.STATE_UNWRITABLE
    notifier = Notifier.from_env()
    supervisor.watchdog = ProgressWatchdog(notifier, watchdog_interval())
    try:
        return asyncio.run(_serve(supervisor))
    finally:
        notifier.close()
        lock.release()


def lab_clock_hook() -> OffsetFileClock | None:
    """The virtual board's clock offset file, if this is a source tree and it asks for one."""
    offset_file = testhooks.get(CLOCK_OFFSET_ENV)
    return OffsetFileClock(offset_file) if offset_file else None


async def _serve(supervisor: Supervisor) -> int:
    """The supervisor's run, with the watchdog pinger beside it on the same loop (so a
    blocked loop also silences the pinger)."""
    pinger = asyncio.get_running_loop().create_task(supervisor.watchdog.run(), name="watchdog")
    try:
        return int(await supervisor.run())
    finally:
        pinger.cancel()
