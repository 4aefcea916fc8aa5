"""``pocket-agent run --config FILE``: the daemon.

Around the supervisor, what a service manager needs: one instance per state directory
(agent/pidlock.py), an exit code that says whether a restart can help
(agent/core/exitcodes.py), and systemd's notify protocol with a watchdog that pings
only while the main loop makes progress (agent/sdnotify.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, NoReturn

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
        code = asyncio.run(_serve(supervisor, early))
    finally:
        EarlyStop.ignore()
        notifier.close()
        lock.release()
    _exit_now(code)


def _exit_now(code: int) -> NoReturn:
    """End the process once everything durable is closed (the journal, the status file, the
    modem, the lock): logs flushed, then ``os._exit``.

    Not the interpreter's own exit: its finalization (tearing down every module the agent
    imported, collecting their objects, joining the executor's threads) does nothing
    durable, and took 0.3-1.8 s of the 3 s stop budget on a loaded 2-core machine
    (measured; the shutdown itself takes about 0.4 s)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


class AbandoningExecutor(ThreadPoolExecutor):
    """The loop's executor for blocking calls (netlink, socket probes, file syncs), which
    the loop's close does not wait for.

    ``asyncio.run`` waits for the default executor's threads before it returns. After the
    supervisor's shutdown, a thread still busy holds only a call whose result nobody wants
    any more, bounded but not interruptible: an active health check's download (up to
    6 s), a join of paho's thread stuck in a connect. Waiting for it would break the stop
    contract; ``_exit_now`` ends it with the process."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=False, cancel_futures=True)


async def _serve(supervisor: Supervisor, early: EarlyStop) -> int:
    """The supervisor's run, with the watchdog pinger beside it on the same loop (so a
    blocked loop also silences the pinger)."""
    asyncio.get_running_loop().set_default_executor(AbandoningExecutor(thread_name_prefix="agent-io"))
    pinger = asyncio.get_running_loop().create_task(supervisor.watchdog.run(), name="watchdog")
    try:
        return int(await supervisor.run(stopped_before=lambda: early.signal))
    finally:
        pinger.cancel()
