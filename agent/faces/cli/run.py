"""``pocket-agent run --config FILE``: the daemon.

Around the supervisor, what a service manager needs: start-up checks before anything
else, each refusal one line in ``systemctl status`` (agent/preflight.py), one instance per
state directory (agent/pidlock.py), an exit code that says whether a restart can help
(agent/core/exitcodes.py), a growing delay before a restartable exit (agent/respawn.py),
and systemd's notify protocol with a watchdog that pings only while the main loop makes
progress (agent/sdnotify.py).

``--check`` runs the start-up checks alone (the OpenWrt init script does, so procd, which
cannot tell exit codes apart, never loops on a configuration error).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import pwd
import signal
import sys
import time
from typing import TYPE_CHECKING, NoReturn

from agent import config as config_mod
from agent import hardening, preflight, respawn, testhooks
from agent.clock import OffsetFileClock
from agent.core.exitcodes import ExitCode
from agent.errors import AlreadyRunning, ConfigError
from agent.pidlock import PidLock
from agent.sdnotify import Notifier, ProgressWatchdog, watchdog_interval
from agent.update import boot

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from agent.boardprofile import BoardProfile
    from agent.core.supervisor import Supervisor

LOGGER = logging.getLogger(__name__)

CLOCK_OFFSET_ENV = "POCKET_AGENT_CLOCK_OFFSET_FILE"
"""Set by the virtual board only: a file with the offset added to the agent's wall clock.
A test hook (agent/testhooks.py): ignored by a packaged build."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="the agent's TOML config (docs/configuration.md)")
    parser.add_argument("--check", action="store_true",
                        help="run the start-up checks only and exit with their code (agent/preflight.py)")
    parser.add_argument("--user", default=None,
                        help="with --check as root: whose the private keys must be (default: this process's)")


def refuse(notifier: Notifier, code: int, reason: str) -> int:
    """Say why once, where an operator looks: the last log line (stderr: the journal, logread)
    and systemd's STATUS= (``systemctl status``); then exit ``code``."""
    LOGGER.error("cannot start: %s", reason)
    notifier.status(f"cannot start: {reason}")
    return code


class EarlyStop:
    """A stop signal that arrives before the supervisor's loop handles them.

    Until ``Supervisor.run`` installs its handlers, the default action of SIGTERM kills
    the process (imports, the configuration and the start-up checks take a noticeable part
    of a second on a router's CPU). From the first line of ``main`` this remembers the
    request instead, and the supervisor, once it runs, stops at once through its ordinary
    shutdown (exit 0, STOPPING=1). After the loop is gone the signals are ignored: the
    agent is on its way out with its journal flushed (agent/respawn.py installs its own
    handlers for the retry delay)."""

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
    hardening.no_core_dumps()  # before any key is read (issue 20): a crash must not dump Ki/OPc
    notifier = Notifier.from_env()
    try:
        return _main(args, notifier, early)
    finally:
        notifier.close()


def _main(args: argparse.Namespace, notifier: Notifier, early: EarlyStop) -> int:
    try:
        cfg = config_mod.load(args.config)
        uid = pwd.getpwnam(args.user).pw_uid if args.user else None
        profile = preflight.check(cfg, uid)
    except ConfigError as exc:
        return refuse(notifier, ExitCode.CONFIG_INVALID, f"configuration: {exc}")
    except KeyError:
        return refuse(notifier, ExitCode.CONFIG_INVALID, f"--user: no user {args.user!r}")
    except preflight.Refusal as exc:
        return refuse(notifier, exc.exit_code, str(exc))
    if args.check:
        LOGGER.info("start-up checks passed (board %s)", profile.name)
        return ExitCode.OK
    # Issue 26: the package's code chooses the tree that runs (a release, or a trial of one
    # under its guard); returns when that is this code (agent/update/boot.py).
    boot.start(cfg.state_dir, ["-v"] * int(getattr(args, "verbose", 0) or 0) + ["run", "--config", args.config],
               cfg.status_file, cfg.update_trial_s)
    return _run(cfg, profile, notifier, early)


def _run(cfg: config_mod.AgentConfig, profile: BoardProfile, notifier: Notifier, early: EarlyStop) -> int:
    from agent.core.supervisor import Supervisor

    supervisor = Supervisor(cfg, profile)
    lab_clock = lab_clock_hook()
    if lab_clock is not None:  # the lab steps the agent's clock, never the host's (pocket-lab fault clock)
        supervisor.clock = lab_clock
    try:
        lock = PidLock.in_dir(cfg.state_dir)
        lock.acquire()
    except AlreadyRunning as exc:
        return respawn.wait_before_exit(refuse(notifier, ExitCode.ALREADY_RUNNING, str(exc)), str(exc),
                                        state_dir=cfg.state_dir, served_s=None, notifier=notifier)
    except OSError as exc:
        return refuse(notifier, ExitCode.STATE_UNWRITABLE, f"state directory {cfg.state_dir} is not writable: {exc}")
    supervisor.watchdog = ProgressWatchdog(notifier, watchdog_interval())
    try:
        code = asyncio.run(_serve(supervisor, early))
    finally:
        EarlyStop.ignore()  # respawn's wait below takes the stop signals back while it waits
        lock.release()
    if supervisor.restart_for_update:  # an update is installed: start afresh into its trial
        LOGGER.warning("restarting into the installed update")
        notifier.close()
        boot.restart()
    served_at = supervisor.watchdog.served_at
    code = respawn.wait_before_exit(code, supervisor.give_up.reason, state_dir=cfg.state_dir, notifier=notifier,
                                    served_s=None if served_at is None else time.monotonic() - served_at)
    notifier.close()
    _exit_now(code)


def lab_clock_hook() -> OffsetFileClock | None:
    """The virtual board's clock offset file, if this is a source tree and it asks for one."""
    offset_file = testhooks.get(CLOCK_OFFSET_ENV)
    return OffsetFileClock(offset_file) if offset_file else None


def _exit_now(code: int) -> NoReturn:
    """End the process once everything durable is closed (the journal, the status file, the
    modem, the lock, the restart count): logs flushed, then ``os._exit``.

    Not the interpreter's own exit: its finalization (tearing down every module the agent
    imported, collecting their objects, joining the executor's threads) does nothing
    durable, and took 0.3-1.8 s of the 3 s stop budget on a loaded 2-core machine
    (measured; the shutdown itself takes about 0.4 s)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _abandoning_executor() -> Executor:
    """The loop's executor for blocking calls (netlink, socket probes, file syncs), which
    the loop's close does not wait for.

    ``asyncio.run`` waits for the default executor's threads before it returns. After the
    supervisor's shutdown, a thread still busy holds only a call whose result nobody wants
    any more, bounded but not interruptible: an active health check's download (up to
    6 s), a join of paho's thread stuck in a connect. Waiting for it would break the stop
    contract; ``_exit_now`` ends it with the process. (Imported here, not with the module:
    ``--check`` and the refusals never need it.)"""
    from concurrent.futures import ThreadPoolExecutor

    class AbandoningExecutor(ThreadPoolExecutor):
        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            super().shutdown(wait=False, cancel_futures=True)

    return AbandoningExecutor(thread_name_prefix="agent-io")


async def _serve(supervisor: Supervisor, early: EarlyStop) -> int:
    """The supervisor's run, with the watchdog pinger beside it on the same loop (so a
    blocked loop also silences the pinger)."""
    asyncio.get_running_loop().set_default_executor(_abandoning_executor())
    pinger = asyncio.get_running_loop().create_task(supervisor.watchdog.run(), name="watchdog")
    try:
        return int(await supervisor.run(stopped_before=lambda: early.signal))
    finally:
        pinger.cancel()
