"""The daemon's side of the technician console: the control socket and, by default, the
console's serial ports, started for a supervisor with one call.

Why the console runs inside the daemon by default (``[console] in_daemon = true``): the
board profile names the port, there is one process to package and supervise, and it is
still isolated where it matters. It reaches the supervisor only through the control
socket (the same client a separate process would use); it reads its port at most at the
line's own rate and never waits to write (``agent/faces/console/ports.py``), so a flood
or a stalled terminal costs the event loop a bounded few milliseconds a second (measured
by tests/bench/bench_console.py); and each terminal is restarted on its own if it fails,
never taking the daemon with it. A board that wants the console under another user or
cgroup sets ``in_daemon = false`` and runs ``pocket-agent console serve`` apart: the
daemon then serves only the socket.

[console] keys (all optional; docs/console.md):
``ports`` (list of tty paths; default ``[profile.console_port]``), ``control_socket``,
``technicians`` (pinned keys file), ``idle_logout_s``, ``reboot_command`` (argv list),
``in_daemon``, ``enabled``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import AgentError, ConfigError

LOGGER = logging.getLogger(__name__)

CONTROL_SOCKET = "control.sock"
TECHNICIANS_FILE = "technicians.json"
IDLE_LOGOUT_S = 300.0
"""agent.faces.console.session.IDLE_LOGOUT (kept equal; the session module says why)."""


@dataclass(frozen=True)
class ConsoleSettings:
    enabled: bool
    in_daemon: bool
    ports: list[str]
    control_socket: Path
    technicians: Path
    idle_logout_s: float
    reboot_command: list[str] = field(default_factory=list)


def settings(table: dict[str, Any], state_dir: Path, profile_port: str) -> ConsoleSettings:
    """Validate the [console] table; ConfigError names the bad key."""
    known = {"enabled", "in_daemon", "ports", "control_socket", "technicians", "idle_logout_s", "reboot_command"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[console]: unknown key {unknown[0]!r}")

    def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = table.get(key, default)
        if not isinstance(value, kind):
            raise ConfigError(f"[console]: {key!r} has the wrong type ({type(value).__name__})")
        return value

    ports = get("ports", list, [profile_port] if profile_port else [])
    reboot = get("reboot_command", list, [])
    if not all(isinstance(p, str) and p for p in ports) or not all(isinstance(a, str) for a in reboot):
        raise ConfigError("[console]: 'ports' and 'reboot_command' are lists of strings")
    idle = float(get("idle_logout_s", (int, float), IDLE_LOGOUT_S))
    if idle <= 0:
        raise ConfigError("[console]: 'idle_logout_s' must be positive")
    return ConsoleSettings(
        enabled=get("enabled", bool, True), in_daemon=get("in_daemon", bool, True), ports=ports,
        control_socket=Path(get("control_socket", str, str(state_dir / CONTROL_SOCKET))),
        technicians=Path(get("technicians", str, str(state_dir / "console" / TECHNICIANS_FILE))),
        idle_logout_s=idle, reboot_command=reboot)


class Consoled:
    """Owns the control server and the view; the console task belongs to the supervisor."""

    def __init__(self, sup: Any):
        from agent.core.audit import AuditLog
        from agent.core.control import ControlServer
        from agent.core.view import SupervisorView

        self.settings = settings(sup.cfg.console, Path(sup.cfg.state_dir), sup.profile.console_port)
        self.view = SupervisorView(sup, audit=AuditLog(Path(sup.cfg.state_dir) / "console", sup.clock),
                                   technicians_file=self.settings.technicians,
                                   reboot_command=self.settings.reboot_command or None)
        self.server = ControlServer(self.settings.control_socket, self.view)

    async def start(self, sup: Any) -> None:
        await self.server.start()
        sup.spawn(self.view.run(), "console view")
        if self.settings.in_daemon and self.settings.ports:
            from agent.core.control import ControlClient
            from agent.faces.console.ports import ConsoleServer

            console = ConsoleServer(self.settings.ports, lambda: ControlClient(self.settings.control_socket),
                                    idle_logout=self.settings.idle_logout_s)
            sup.spawn(console.run(), "console")
            LOGGER.info("technician console on %s", ", ".join(self.settings.ports))

    def attach_cloud(self, cloud: Any) -> None:
        """Technician keys rotate with the cloud's retained policy (agent/core/technicians.py)."""
        from agent.core import technicians

        path = self.settings.technicians
        cloud.on_policy(lambda policy: technicians.on_policy(path, policy))

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.server.stop()
        self.view.close()


async def start(sup: Any) -> Consoled | None:
    """The supervisor's one call. A bad [console] table is logged and the daemon serves
    without a console rather than not at all (a technician can still read the logs)."""
    consoled: Consoled | None = None
    try:
        consoled = Consoled(sup)
        if consoled.settings.enabled:
            await consoled.start(sup)
            return consoled
    except (AgentError, OSError) as exc:  # a bad table, an unwritable audit log, a socket path in use
        LOGGER.error("technician console not started: %s: %s", type(exc).__name__, exc)
    if consoled is not None:
        consoled.view.close()
    return None
