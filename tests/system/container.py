"""A Debian root booted with ``systemd-nspawn --boot``: systemd is PID 1 inside.

How it is started, and why each option (docs/system-test.md has the whole picture):

- ``--register=no``, and ``--keep-unit`` when the host's PID 1 is not systemd (this
  machine, many CI containers): nspawn must then neither ask machined to register the
  machine nor ask a systemd that is not there for a scope; the container stays in the
  cgroup of whoever started it. Where the host runs systemd, nspawn asks it for its own
  (delegated) scope as usual, and the unit's cgroup limits are real.
- ``--volatile=overlay``: the cached root is the lower layer of an overlay whose upper
  layer is a tmpfs; everything the run writes (the package, the keys, the journal) is
  gone when the container stops and the cache stays pristine.
- nspawn is *started inside* an existing network namespace (``nsenter --net=PATH``, the
  lab's device namespace) and shares it, as a container sharing its host's network: the
  router's interfaces are the lab's. Not ``--network-namespace-path=``: with it, nspawn
  252 mounts the container's /sys from the host's namespace, so /sys/class/net lists the
  host's interfaces, and the agent's counters (/sys/class/net/wwan0/statistics) are
  missing. Sharing the namespace drops CAP_NET_ADMIN from nspawn's default set, so it is
  given back (``--capability=``): the agent moves the WAN address and route.
- ``--bind=HOST:PATH``: a host file (a pty) appears at PATH inside.
- ``--notify-ready=yes`` with ``NOTIFY_SOCKET`` set: nspawn tells us the leader's PID
  (``X_NSPAWN_LEADER_PID``) at once and ``READY=1`` when the container's systemd says it
  finished starting up: the boot is awaited as an event, never with a sleep.

Commands run inside through ``nsenter -t LEADER -a`` (every namespace of PID 1, its root
and working directory), with a clean environment: machinectl and ``systemd-run -M`` need
machined, which ``--register=no`` leaves out.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BOOT_TIMEOUT_S = 60.0
"""systemd reaches multi-user.target in about 0.3 s here; a loaded 2-core machine is
slower, and a failing boot must still fail in bounded time."""
STOP_TIMEOUT_S = 30.0
"""poweroff stops every unit (the agent's TimeoutStopSec= is 20 s) and exits."""
ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "TERM=dumb",
       "HOME=/root", "DEBIAN_FRONTEND=noninteractive")
"""An operator's root shell, not the test runner's environment (no venv, no PYTHONPATH)."""


def host_runs_systemd() -> bool:
    """sd_booted(3): systemd is PID 1 when /run/systemd/system exists."""
    return Path("/run/systemd/system").is_dir()


class ContainerError(RuntimeError):
    """The container did not boot or stop; the message carries nspawn's output."""


@dataclass
class Container:
    root: Path
    """The root directory (left untouched: --volatile=overlay)."""
    workdir: Path
    """Where the notify socket and nspawn's log live (the test's own directory)."""
    name: str = "pocket-sys"
    """nspawn's --machine= (tests/system/rig.py gives one per lab prefix)."""
    netns: Path | None = None
    """A network namespace to share (/run/netns/NAME), or None for a private one."""
    binds: dict[str, str] = field(default_factory=dict)
    """Host path -> path inside (read-write)."""
    leader: int | None = None
    boot_seconds: float | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def nspawn_pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log(self) -> Path:
        return self.workdir / "nspawn.log"

    def argv(self) -> list[str]:
        keep_unit = [] if host_runs_systemd() else ["--keep-unit"]
        argv = ["systemd-nspawn", "--boot", "--register=no", *keep_unit, "--volatile=overlay",
                "--notify-ready=yes", "--console=pipe", "--link-journal=no", "--quiet",
                f"--directory={self.root}", f"--machine={self.name}", "--capability=CAP_NET_ADMIN"]
        argv += [f"--bind={host}:{inside}" for host, inside in self.binds.items()]
        return ["nsenter", f"--net={self.netns}", *argv] if self.netns else [*argv, "--private-network"]

    def boot(self, timeout: float = BOOT_TIMEOUT_S) -> float:
        """Start the container and return once its systemd reported start-up finished
        (READY=1 through nspawn); returns the seconds it took."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        sock_path = self.workdir / "notify"
        sock_path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(sock_path))
        start = time.monotonic()
        try:
            with open(self.log, "wb") as log:
                self._proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True,
                                              env=dict(os.environ, NOTIFY_SOCKET=str(sock_path)))
            ready = False
            while not ready:
                left = timeout - (time.monotonic() - start)
                if left <= 0 or self._proc.poll() is not None:
                    raise ContainerError(f"the container did not finish booting within {timeout:.0f} s "
                                         f"(nspawn {'exited ' + str(self._proc.returncode) if self._proc.poll() is not None else 'still running'}):\n"
                                         f"{self.log.read_text(errors='replace')[-3000:]}")
                sock.settimeout(min(left, 1.0))
                try:
                    message = sock.recv(4096).decode(errors="replace")
                except TimeoutError:
                    continue
                fields = dict(line.split("=", 1) for line in message.splitlines() if "=" in line)
                if "X_NSPAWN_LEADER_PID" in fields:
                    self.leader = int(fields["X_NSPAWN_LEADER_PID"])
                ready = fields.get("READY") == "1"
        finally:
            sock.close()
            sock_path.unlink(missing_ok=True)
        if self.leader is None:
            raise ContainerError("nspawn said READY=1 without naming the leader's PID")
        self.boot_seconds = time.monotonic() - start
        return self.boot_seconds

    def run(self, script: str, *, timeout: float = 120, check: bool = False,
            what: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a shell script inside as root, the way an operator types it; ``check``
        raises with ``what``, the exit code and the output when it fails."""
        if self.leader is None:
            raise ContainerError("the container is not running")
        argv = ["nsenter", "-t", str(self.leader), "-a", "env", "-i", *ENV, "sh", "-c", script]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{what or script}: exit {done.returncode}\n--- stdout\n{done.stdout[-4000:]}"
                                 f"\n--- stderr\n{done.stderr[-4000:]}")
        return done

    def path(self, inside: str) -> Path:
        """A path inside the running container, reachable from the host (its root through
        the leader's /proc entry: the overlay the container sees). Symbolic links are
        followed as the container sees them (an absolute target is inside its root)."""
        if self.leader is None:
            raise ContainerError("the container is not running")
        root = Path(f"/proc/{self.leader}/root")
        parts = [p for p in inside.split("/") if p]
        done: list[str] = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                done = done[:-1]
                continue
            here = root.joinpath(*done, part)
            if not here.is_symlink():
                done.append(part)
                continue
            links += 1
            if links > 40:  # the kernel's ELOOP bound
                raise ContainerError(f"{inside}: too many symbolic links")
            target = os.readlink(here)
            parts = [p for p in target.split("/") if p] + parts
            if target.startswith("/"):
                done = []
        return root.joinpath(*done)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Power the container off (SIGTERM to nspawn: it asks systemd to halt), then
        kill what is left. Harmless when it is not running."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            self.leader = None
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in (proc.pid, self.leader):
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            proc.wait(10)
        self.leader = None
