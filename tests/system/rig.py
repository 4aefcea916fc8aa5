"""The system test's rig: its own lab, a booted Debian root in the device's place, and the
factory station's side of provisioning (signing, enrolment).

The lab is brought up without its agent (``pocket-lab up --no-agent``) under its own
names (``POCKET_LAB_PREFIX=pwsy``, ``POCKET_LAB_DIR=/run/pocket-lab-sy``), so it never
meets the lab tests' or a demo's. The container sits where the lab's agent would:

- it joins the device namespace (``/run/netns/pwsy-dev``): ``wwan0`` towards the carrier,
  ``lan0`` towards the LAN host, the router's nftables;
- the modem's pty is bound in at the AT port the board profile names, and the console
  cable's device end at the profile's ``console_port``, each given the group and mode
  udev gives a real modem's ttys (root:dialout 0660).

Processes the lab spawns import from this checkout (``PYTHONPATH``), not from whatever
the virtual environment's editable install points at.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.boardprofile import BoardProfile, load_profile
from tests.system import image as image_mod
from tests.system.container import Container

REPO = Path(__file__).resolve().parents[2]
LAB_PREFIX = os.environ.get("POCKET_SYSTEST_LAB_PREFIX", "pwsy")
LAB_DIR = Path(os.environ.get("POCKET_SYSTEST_LAB_DIR", "/run/pocket-lab-sy"))
"""Not the default lab's names (pw, /run/pocket-lab) nor the lab tests' (/run/pocket-lab-test)."""
MACHINE = os.environ.get("POCKET_SYSTEST_MACHINE", f"pocket-sys-{LAB_PREFIX}")
"""The container's machine name (nspawn's --machine=: its hostname, and its directories
under /run/systemd/nspawn, which nspawn removes when that container stops): one per lab
prefix, so two system tests running at once (another worktree's) never share them."""
DIALOUT_GID = 20
"""Debian's static dialout group (base-passwd), the modem ttys' group on host and router."""
FACTORY_INSIDE = "/root/factory"
"""The station's files on the unit (the .deb, the pins, the signed certificate)."""
PROVISION = ("pocket-agent provision --broker {broker} --ca platform-ca.pem --platform-key platform.pub "
             "--label-imei {imei} --device-id {device}")
"""docs/provisioning.md, "The line's sequence", step 2, with the lab's values."""
SERVE_TIMEOUT_S = 150.0
"""systemd waits TimeoutStartSec=300 for READY=1; the lab's agent serves in 10-20 s
(attach, cloud, assignment, swap): 150 s before calling a start failed."""


def lab(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, POCKET_LAB_DIR=str(LAB_DIR), POCKET_LAB_PREFIX=LAB_PREFIX,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-m", "board.virtual.lab", *args], text=True, capture_output=True,
                          env=env, timeout=timeout, check=False, cwd=REPO)
    if check and done.returncode != 0:
        raise AssertionError(f"pocket-lab {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def lab_json(*args: str) -> Any:
    return json.loads(lab(*args, "--json").stdout)


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll another process's observable state (across processes there is no event to
    await); fails naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")


def cloud_events(kind: str | None = None, device: str | None = None) -> list[dict[str, Any]]:
    path = LAB_DIR / "cloud" / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in events if (kind is None or e.get("kind") == kind) and (device is None or e.get("device") == device)]


@dataclass
class System:
    """The lab and the booted root, with what the steps learn on the way."""

    container: Container
    status: dict[str, Any]
    """``pocket-lab status --json``."""
    profile: BoardProfile
    factory: Path
    """The station's directory, bound in at FACTORY_INSIDE."""
    deb: Path
    passed: set[str] = field(default_factory=set)
    facts: dict[str, Any] = field(default_factory=dict)
    """What a step found and a later one needs (record, device id, SIM, timings)."""

    @property
    def device_id(self) -> str:
        return str(self.status["device_id"])

    def require(self, *steps: str) -> None:
        """Fail (not skip) a step whose earlier steps did not pass, naming them."""
        missing = [s for s in steps if s not in self.passed]
        if missing:
            raise AssertionError(f"cannot run: earlier journey step(s) failed: {', '.join(missing)}")

    # ---- inside the router --------------------------------------------------------
    def sh(self, script: str, what: str, timeout: float = 120) -> str:
        return self.container.run(script, timeout=timeout, check=True, what=what).stdout

    def unit(self, *props: str) -> dict[str, str]:
        out = self.sh(f"systemctl show pocket-agent -p {','.join(props)}", "systemctl show")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, args: str = "") -> str:
        return self.sh(f"journalctl -u pocket-agent --no-pager -o cat {args}", "journalctl")

    def main_pid(self) -> int:
        return int(self.unit("MainPID")["MainPID"])

    def serving(self) -> bool:
        """Active, and the STATUS= it sent with READY=1 says it serves."""
        props = self.unit("ActiveState", "StatusText")
        return props["ActiveState"] == "active" and props["StatusText"].startswith("serving on SIM ")

    # ---- the operator's and the factory's steps (docs/provisioning.md, packaging/README.md)
    def install(self, deb: str = "./pocket-agent_*.deb") -> str:
        return self.sh(f"cd {FACTORY_INSIDE} && apt install -y {deb}", f"apt install {deb}")

    def provision(self, *extra: str) -> dict[str, Any]:
        """One pass of the line's command; its record (failing with the record and the log
        when the exit code is not 0)."""
        command = PROVISION.format(broker=self.status["broker"]["url"].removeprefix("mqtts://"),
                                   imei=modem_imei(), device=self.device_id)
        command = " ".join([command, *extra])
        done = self.container.run(f"cd {FACTORY_INSIDE} && {command}", timeout=180)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise AssertionError(f"{command}: exit {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n"
                                 f"--- stderr\n{done.stderr[-3000:]}")
        record: dict[str, Any] = json.loads(lines[-1])
        assert record["ok"] and record["exit_code"] == 0, record
        return record

    def commission(self) -> None:
        """The factory's and the operator's steps in order (install, the two passes with
        the station signing and enrolling between them), then ``systemctl start``."""
        self.install()
        record = self.provision("--offline")
        self.enrol(record)
        self.sign(record["csr"])
        self.provision("--cert cert.pem")
        self.start()

    def start(self) -> float:
        """``systemctl start pocket-agent``: returns once systemd saw READY=1 (Type=notify);
        fails with ``systemctl status`` when it did not come."""
        t0 = time.monotonic()
        done = self.container.run("systemctl start pocket-agent", timeout=SERVE_TIMEOUT_S + 30)
        took = time.monotonic() - t0
        if done.returncode != 0:
            raise AssertionError(f"systemctl start pocket-agent: exit {done.returncode} after {took:.0f} s\n"
                                 + self.container.run("systemctl status pocket-agent --no-pager -n 40").stdout)
        return took

    def start_to_ready(self) -> float:
        """Seconds from the main process's exec to READY=1, as systemd timed them."""
        props = self.unit("ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
        return (int(props["ActiveEnterTimestampMonotonic"]) - int(props["ExecMainStartTimestampMonotonic"])) / 1e6

    # ---- the station --------------------------------------------------------------
    def sign(self, csr_pem: str, days: int = 365) -> Path:
        """Step 3 of docs/provisioning.md, literally: the factory CA (the lab's) signs the CSR."""
        csr = self.factory / "csr.pem"
        csr.write_text(csr_pem)
        pki = LAB_DIR / "pki"
        subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.pem"), "-CAkey",
                        str(pki / "ca.key"), "-days", str(days), "-copy_extensions", "none", "-out",
                        str(self.factory / "cert.pem")], check=True, capture_output=True, timeout=30)
        return self.factory / "cert.pem"

    def cloud_command(self, action: str) -> None:
        """The reference cloud commands the device (docs/protocol.md 3.7) through its
        control spool (docs/virtual-board.md), as ``pocket-lab swap`` does."""
        from agent import store
        from board.virtual.cloud.reference import SPOOL_DIR

        body = {"command_id": f"systest-{action}-{time.time_ns()}", "action": action}
        spool = LAB_DIR / "cloud" / SPOOL_DIR
        store.atomic_write_json(spool / f"{time.time_ns()}-command.json",
                                {"op": "command", "device": self.device_id, "body": body})

    def enrol(self, record: dict[str, Any]) -> None:
        """The factory database hands the unit's record to the platform: the reference
        cloud seals profiles to the sealing public key it carries
        (``<lab>/pki/devices/<id>/sealing.pub``, read per request)."""
        target = LAB_DIR / "pki" / "devices" / record["device_id"] / "sealing.pub"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(record["sealing_public_key"])
        tmp.rename(target)


PIDFILE = REPO / "build" / "system" / "nspawn.pid"
"""The running container's nspawn, so a run that was killed (Ctrl-C, a timeout) has its
container stopped by the next run rather than left beside a deleted lab."""


def stop_leftover() -> None:
    """Stop the nspawn a previous, interrupted run left (its pid, if it still is nspawn)."""
    try:
        pid = int(PIDFILE.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if b"systemd-nspawn" not in cmdline or not any(a.startswith(b"--directory=" + str(image_mod.CACHE_DIR).encode())
                                                   for a in cmdline):
        return
    os.kill(pid, 15)  # nspawn halts the container on SIGTERM
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, 9)


def give_to_dialout(path: str) -> str:
    """What udev does for a modem's tty (Debian: ttyUSB*, ttyACM*, ttyGS* -> dialout 0660):
    the pty behind the lab's symlink, so the service user's group may open it."""
    real = os.path.realpath(path)
    os.chown(real, 0, DIALOUT_GID)
    os.chmod(real, 0o660)
    return real


def build_deb(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(REPO / "packaging" / "build.py"), "--out", str(out), "deb"], check=True,
                   capture_output=True, timeout=120)
    return next(out.glob("pocket-agent_*_all.deb"))


def next_version(deb: Path, out: Path, release: str) -> Path:
    """The same package with a higher Debian revision (version N+1): unpacked with
    dpkg-deb, its Version bumped, built again. What an upgrade exercises is the package's
    side (prerm upgrade, conffiles, postinst with the old version), which this is."""
    work = out / f"repack-{release}"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-R", str(deb), str(work)], check=True, capture_output=True, timeout=60)
    control = work / "DEBIAN" / "control"
    lines = control.read_text().splitlines()
    version = ""
    for i, line in enumerate(lines):
        if line.startswith("Version: "):
            upstream = line.split(": ", 1)[1].rsplit("-", 1)[0]
            version = f"{upstream}-{release}"
            lines[i] = f"Version: {version}"
    control.write_text("\n".join(lines) + "\n")
    target = out / f"pocket-agent_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(work), str(target)], check=True,
                   capture_output=True, timeout=60)
    shutil.rmtree(work, ignore_errors=True)
    return target


def modem_imei() -> str:
    """The IMEI the lab's virtual modem reports: what the unit's label says."""
    from board.virtual.modem.model import ModemConfig

    return ModemConfig().imei


def default_profile_name() -> str:
    """The board profile ``pocket-agent provision`` uses when the line gives none."""
    from agent.faces.provision.command import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    return str(parser.get_default("profile"))


@contextlib.contextmanager
def open_system(work: Path) -> Iterator[System]:
    """The rig: the cached image, a .deb of this tree, this lab (without its agent) and the
    root booted in the device's place; torn down (journal kept in ``work``) on exit."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    image = image_mod.ensure()
    timings["image_s"] = image.seconds
    timings["image_cold"] = float(image.built)
    factory = work / "factory"
    deb = build_deb(factory)
    lab("down", check=False)
    t = time.monotonic()
    up = lab("up", "--no-agent", check=False, timeout=240)
    if up.returncode != 0:
        lab("down", check=False)
        raise AssertionError(f"pocket-lab up --no-agent failed:\n{up.stdout}\n{up.stderr}")
    timings["lab_up_s"] = time.monotonic() - t
    container: Container | None = None
    try:
        status = lab_json("status")
        pki = LAB_DIR / "pki"
        # The station's copies of the platform's pins, named as docs/provisioning.md names them.
        (factory / "platform-ca.pem").write_bytes((pki / "ca.pem").read_bytes())
        (factory / "platform.pub").write_bytes((pki / "platform.pub").read_bytes())
        profile = load_profile(default_profile_name())
        modem = give_to_dialout(str(LAB_DIR / "modem.pty"))
        console = give_to_dialout(status["console"]["device_pty"])
        container = Container(image.root, work / "container", name=MACHINE, netns=Path("/run/netns") / status["namespaces"]["device"],
                              binds={modem: profile.at_port, console: profile.console_port,
                                     str(factory): FACTORY_INSIDE})
        stop_leftover()
        timings["boot_s"] = container.boot()
        PIDFILE.write_text(str(container.nspawn_pid))
        system = System(container, status, profile, factory, deb)
        system.facts["timings"] = timings
        yield system
    finally:
        timings["total_s"] = time.monotonic() - started
        if container is not None and container.leader is not None:
            dump = container.run("journalctl --no-pager -o short-monotonic", timeout=60)
            (work / "journal.txt").write_text(dump.stdout)
            container.stop()
        PIDFILE.unlink(missing_ok=True)
        lab("down", check=False)
