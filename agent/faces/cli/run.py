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
import os
import signal
from typing import TYPE_CHECKING

from agent import config as config_mod
from agent import store
from agent.clock import OffsetFileClock
from agent.core.exitcodes import ExitCode
from agent.errors import AlreadyRunning, ConfigError
from agent.pidlock import PidLock
from agent.sdnotify import Notifier, ProgressWatchdog, watchdog_interval

if TYPE_CHECKING:
    from agent.core.supervisor import Supervisor

LOGGER = logging.getLogger(__name__)

CLOCK_OFFSET_ENV = "POCKET_AGENT_CLOCK_OFFSET_FILE"
"""Set by the virtual board only: a file with the offset added to the agent's wall clock."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the agent's TOML config (docs/configuration.md)")


class EarlyStop:
    """A stop signal that arrives before the supervisor's loop handles them.

    Until ``Supervisor.run`` installs its handlers, the default action of SIGTERM kills
    the process (imports and the configuration take a noticeable part of a second on a
    router's CPU). From the first line of ``main`` this remembers the request instead,
    and the supervisor, once it runs, stops at once through its ordinary shutdown (exit
    0, STOPPING=1). After the loop is gone the signals are ignored: the agent is already
    on its way out, with its journal flushed."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal = signal.Signals(signum).name

    @staticmethod
    def ignore() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)


def main(args: argparse.Namespace) -> int:
    early = EarlyStop()
    early.install()
    from agent.core.supervisor import Supervisor

    try:
        cfg = config_mod.load(args.config)
        supervisor = Supervisor.from_config(cfg)
        offset_file = os.environ.get(CLOCK_OFFSET_ENV)
        if offset_file:  # the lab steps the agent's clock, never the host's (pocket-lab fault clock)
            supervisor.clock = OffsetFileClock(offset_file)
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
        return asyncio.run(_serve(supervisor, early))
    finally:
        EarlyStop.ignore()
        notifier.close()
        lock.release()


async def _serve(supervisor: Supervisor, early: EarlyStop) -> int:
    """The supervisor's run, with the watchdog pinger beside it on the same loop (so a
    blocked loop also silences the pinger)."""
    pinger = asyncio.get_running_loop().create_task(supervisor.watchdog.run(), name="watchdog")
    try:
        return int(await supervisor.run(stopped_before=lambda: early.signal))
    finally:
        pinger.cancel()
