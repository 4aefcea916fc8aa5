"""Faults the lab injects on demand: ``pocket-lab fault KIND [options]`` and ``fault clear``.

Every fault a rental router meets in the field, made to happen in the lab so that tests,
soaks and the cloud team can watch the agent heal (docs/virtual-board.md, "Faults").
The board process (``labd``) owns a ``FaultRunner``: it applies a fault at once, keeps
it for its ``seconds`` and undoes it by itself when they are up (or on ``fault clear``).
Faults that are one event (a reboot, garbage on the line, a network-side deactivation)
have nothing to undo: the agent's recovery is what ends them.

Where each fault acts:
- modem faults go through the virtual modem's own fault hooks (``board/virtual/modem/device.py``);
- network faults through the radio conditions the modem sees, a ``FaultyCarrier`` that
  wraps the carrier's hooks (rejects, authentication; the carrier takes the cell link
  down with the last data context, ``cell0`` down: the router's ``wwan0`` loses its
  carrier, as a real modem's data interface does) and ``tc`` on the cell's capacity
  shaper;
- platform faults through nftables in the internet namespace (the broker's port) and a
  small file the reference cloud reads before each assignment (``cloud/fault.json``);
- device faults through a clock-offset file the lab's agent reads (never the host's
  clock) and mounts over the agent's state directory (read-only bind, or a ballast file
  that fills the small tmpfs the lab gives it).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import store
from board.virtual.modem.model import COMMAND_LATENCY, CarrierReject
from board.virtual.network import carriers as carriers_mod
from board.virtual.network import labclock, netns
from board.virtual.network.carrier import (
    CELL_CAPACITY_KBIT,
    CELL_QUEUE_MS,
    EMM_ILLEGAL_UE,
    LabLayout,
)

LOGGER = logging.getLogger(__name__)

SOCKET_NAME = "labd.sock"
"""The board process's control socket under the lab directory (one JSON line each way)."""
PORT_LINK_NAME = "modem.pty"
"""The stable path of the modem's AT port under the lab directory: a symlink the board
process keeps pointing at the current pty, as udev keeps /dev/serial/by-id/... pointing
at whichever ttyUSBn the modem re-enumerated as."""
CLOCK_OFFSET_NAME = "clock_offset.json"
"""Under the agent's directory: {"offset_s": S}; the lab's agent adds S to its wall clock."""
CLOUD_FAULT_NAME = "fault.json"
"""Under the cloud's state directory: how the reference cloud should misbehave, until when."""
STATE_TMPFS_SIZE = "16m"
"""The lab agent's state directory is a tmpfs this small, so "state directory full" is a
real ENOSPC; the agent's state is a few hundred kB."""
BALLAST_NAME = ".fault-ballast"

DEFAULT_SECONDS = 10.0
"""How long a fault lasts when ``--seconds`` is not given."""
MAX_SECONDS = 3600.0
"""No fault outlives an hour: the lab must always come back by itself."""
TICK = 0.1
"""How often the runner looks for expired faults (bounds how late an undo can be)."""
CONGESTION_STEP_S = 1.0
"""A congested cell's capacity changes this often (a scheduler reshuffling users)."""
CONGESTION_KBIT = (1_000, 12_000)
"""Capacity range while congested: 1-12 Mbit/s of the cell's 50 Mbit/s."""
CONGESTION_QUEUE_MS = 400
"""Queueing a congested eNodeB shows (bufferbloat of hundreds of ms), against 50 ms normally."""
BROKER_PORT = 8883
OUTAGE_RSRP = -140.0
"""What the antenna measures while the cell is down: 27.007's floor (no usable signal)."""

SOCKET_TIMEOUT = 10.0
"""Seconds ``pocket-lab fault`` waits for the board process to answer."""


class FaultError(RuntimeError):
    """A fault request the lab cannot carry out; the message says why."""


# ---- the carrier side -----------------------------------------------------------------
class FaultyCarrier:
    """The carrier's hooks with faults in between (the modem calls these on its thread).
    The cell link follows the data contexts inside the carrier itself
    (``carrier.admit``/``carrier.drop_bearer``): its order against the billing sets is
    what keeps usage exact at a bearer drop."""

    def __init__(self, inner: Any, seed_imsi: str | None):
        self.inner = inner
        self.seed_imsi = seed_imsi
        self.auth_fail = False
        self.pdn_reject: int | None = None
        self.pdn_reject_plmns: dict[str, int] = {}
        """Per carrier (``pdn-reject --carrier B``): PLMN -> the ESM cause its SIMs get."""
        self.last_esm: int | None = None
        """The ESM cause of the last refused data context (what +CEER reports)."""

    @property
    def auc(self) -> Any:
        """The inner carrier's AuC, which a remote-SIM modem authenticates against."""
        return getattr(self.inner, "auc", None)

    def attach(self, imsi: str, plmn: str, challenge: Callable[[bytes], bytes] | None) -> int | None:
        if self.auth_fail and imsi != self.seed_imsi:
            LOGGER.info("fault: authentication of %s fails (EMM cause #%d)", imsi, EMM_ILLEGAL_UE)
            return EMM_ILLEGAL_UE
        return self.inner.attach(imsi, plmn, challenge)  # type: ignore[no-any-return]

    def activate(self, imsi: str, cid: int, apn: str) -> dict[str, Any]:
        cause = self.pdn_reject
        for plmn, plmn_cause in self.pdn_reject_plmns.items():
            if imsi.startswith(plmn):
                cause = plmn_cause
        if cause is not None:
            self.last_esm = cause
            raise CarrierReject(cause)
        self.last_esm = None
        return self.inner.activate(imsi, cid, apn)  # type: ignore[no-any-return]

    def deactivate(self, imsi: str, cid: int) -> None:
        self.inner.deactivate(imsi, cid)

    def detach(self, imsi: str) -> None:
        self.inner.detach(imsi)


def install_ceer(modem: Any, carrier: FaultyCarrier) -> None:
    """Give the virtual modem +CEER (27.007 §6.10) unless it already has one: the last
    EMM reject cause or ESM cause, in the words Quectel modems use."""

    def ceer(kind: str, args: str) -> tuple[list[str], float]:
        if kind == "test":
            return ["OK"], COMMAND_LATENCY
        cmds = modem.cmds
        if cmds.stat == 3 and cmds.reject_cause is not None:
            text = f'"EMM cause #{cmds.reject_cause}"'
        elif carrier.last_esm is not None:
            text = f'"ESM cause #{carrier.last_esm}"'
        else:
            text = '"No cause information available"'
        return [f"+CEER: {text}", "OK"], COMMAND_LATENCY

    modem.cmds.table.setdefault("+CEER", ceer)


# ---- the faults -------------------------------------------------------------------------
Undo = Callable[[], None]


@dataclass
class Active:
    kind: str
    until: float
    undo: Undo | None
    params: dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """One fault: what it does, whether it lasts, and its options (documented in
    docs/virtual-board.md)."""

    group: str
    summary: str
    lasting: bool = True
    options: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "hang": Kind("modem", "the modem answers nothing for --seconds"),
    "garbage": Kind("modem", "--bytes of line noise on the AT port", lasting=False, options=("bytes",)),
    "reboot": Kind("modem", "spontaneous reboot: state lost, RDY and start-up URCs", lasting=False),
    "usb-gone": Kind("modem", "the AT port vanishes for --seconds and comes back under a new name"),
    "busy": Kind("modem", "the next --count commands get +CME ERROR --code (14 or 515)", lasting=False,
                 options=("count", "code")),
    "outage": Kind("network", "no service for --seconds (+CEREG: 2, contexts dropped, wwan0 loses carrier)"),
    "reject": Kind("network", "registration rejected with EMM --cause for --seconds", options=("cause",)),
    "pdn-deact": Kind("network", "the network deactivates the data context (+CGEV: NW PDN DEACT <cid>)",
                      lasting=False),
    "pdn-reject": Kind("network", "the data context is deactivated and re-activation is rejected with ESM "
                       "--cause for --seconds (+CEER names it)", options=("cause",)),
    "radio": Kind("network", "radio degraded to --rsrp/--sinr for --seconds", options=("rsrp", "sinr")),
    "congestion": Kind("network", "the cell's capacity wanders (1-12 Mbit/s, 400 ms queue) for --seconds"),
    "blackhole": Kind("network", "registered and the data context up, but the carrier's core drops every "
                      "user-plane packet behind its billing counters for --seconds"),
    "broker-down": Kind("platform", "the broker refuses every connection (TCP reset) for --seconds"),
    "cloud-busy": Kind("platform", "the cloud answers assignments 'retry after --retry-after' (or, with "
                       "--refuse, 'no capacity') for --seconds", options=("retry_after", "refuse")),
    "auth-fail": Kind("platform", "sealed profiles fail authentication at the carrier (EMM #3) for --seconds; "
                      "the network detaches the router so it must authenticate again"),
    "clock": Kind("device", "the agent's wall clock is stepped by --step seconds for --seconds",
                  options=("step",)),
    "state-ro": Kind("device", "the agent's state directory is read-only for --seconds"),
    "state-full": Kind("device", "the agent's state directory is full (ENOSPC) for --seconds"),
}


PER_CARRIER = ("outage", "blackhole", "pdn-reject", "congestion")
"""The faults that take ``--carrier X`` in a lab with several carriers (issue 23): they hit
only that carrier's SIMs, core or cell."""


class FaultRunner:
    """Applies and undoes faults; owned by the board process. Thread-safe."""

    def __init__(self, modem: Any, carrier: FaultyCarrier, layout: LabLayout, lab_dir: Path,
                 *, on_port: Callable[[str], None] | None = None, rng: random.Random | None = None,
                 sites: list[carriers_mod.Site] | None = None):
        self.sites = sites or []
        """The lab's carriers (board/virtual/network/carriers.py); empty: one carrier."""
        self.modem = modem
        self.carrier = carrier
        self.layout = layout
        self.lab_dir = lab_dir
        self.on_port = on_port or (lambda path: None)
        self.rng = rng or random.Random()
        self.active: dict[str, Active] = {}
        self._lock = threading.Lock()
        self._congestion_next = 0.0
        self.history: list[dict[str, Any]] = []

    # -- requests ---------------------------------------------------------------------
    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        """One control request: {"kind": K, ...options} or {"kind": "clear"} or {"kind": "list"}."""
        kind = str(req.get("kind", ""))
        with self._lock:
            if kind == "clear":
                cleared = sorted(self.active)
                for name in cleared:
                    self._undo(name)
                return {"ok": True, "cleared": cleared}
            if kind == "list":
                return {"ok": True, "active": self._describe()}
            if kind not in KINDS:
                raise FaultError(f"unknown fault {kind!r}; known: {', '.join(sorted(KINDS))}")
            seconds = float(req.get("seconds") or DEFAULT_SECONDS)
            if not 0 < seconds <= MAX_SECONDS:
                raise FaultError(f"--seconds must be in (0, {MAX_SECONDS:.0f}]")
            site = self._site(kind, req)
            key = kind if site is None else f"{kind}@{site.letter}"
            if key in self.active:
                self._undo(key)
            undo = getattr(self, "_" + kind.replace("-", "_"))(req, seconds)
            now = time.time()
            self.history.append({"kind": kind, "at": now, "seconds": seconds if KINDS[kind].lasting else 0,
                                 "carrier": site.letter if site else None})
            if KINDS[kind].lasting:
                self.active[key] = Active(kind, time.monotonic() + seconds, undo, dict(req))
            LOGGER.warning("fault %s applied (%s)", kind, f"for {seconds:.1f} s" if KINDS[kind].lasting else "once")
            return {"ok": True, "kind": kind, "at": now,
                    "until": now + seconds if KINDS[kind].lasting else now}

    def _site(self, kind: str, req: dict[str, Any]) -> carriers_mod.Site | None:
        """The carrier a ``--carrier`` names (None without one); FaultError if the fault
        does not take one or the lab has no such carrier."""
        name = req.get("carrier")
        if not name:
            return None
        if kind not in PER_CARRIER:
            raise FaultError(f"{kind} does not take --carrier (only {', '.join(PER_CARRIER)})")
        try:
            return carriers_mod.find_site(self.sites, str(name))
        except ValueError as exc:
            raise FaultError(str(exc)) from exc

    def _layout(self, req: dict[str, Any]) -> LabLayout:
        site = self._site(str(req.get("kind", "")), req)
        return site.layout if site else self.layout

    def tick(self) -> None:
        """Undo expired faults; move a congested cell's capacity. Called every ``TICK``."""
        now = time.monotonic()
        with self._lock:
            for name in [n for n, a in self.active.items() if a.until <= now]:
                self._undo(name)
            congested = [a for a in self.active.values() if a.kind == "congestion"]
            if congested and now >= self._congestion_next:
                self._congestion_next = now + CONGESTION_STEP_S
                for fault in congested:
                    self._shape(self.rng.randint(*CONGESTION_KBIT), CONGESTION_QUEUE_MS, self._layout(fault.params))

    def clear_all(self) -> None:
        self.request({"kind": "clear"})

    def _undo(self, name: str) -> None:
        active = self.active.pop(name)
        try:
            if active.undo is not None:
                active.undo()
            LOGGER.warning("fault %s undone", name)
        except Exception:  # one failed undo must not leave the others in place
            LOGGER.exception("undoing fault %s failed", name)

    def _describe(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [{"kind": a.kind, "remaining_s": round(a.until - now, 1),
                 **({"carrier": a.params["carrier"]} if a.params.get("carrier") else {})}
                for a in self.active.values()]

    # -- modem ------------------------------------------------------------------------
    def _hang(self, req: dict[str, Any], seconds: float) -> Undo:
        self.modem.inject_hang(seconds)
        return lambda: self.modem.inject_hang(0)

    def _garbage(self, req: dict[str, Any], seconds: float) -> None:
        self.modem.inject_garbage(int(req.get("bytes") or 64))

    def _reboot(self, req: dict[str, Any], seconds: float) -> None:
        self.modem.reboot()

    def _busy(self, req: dict[str, Any], seconds: float) -> None:
        code = int(req.get("code") or 14)
        if code not in (14, 515):
            raise FaultError("--code must be 14 (SIM busy) or 515 (init in progress)")
        self.modem.inject_busy(int(req.get("count") or 3), code)

    def _usb_gone(self, req: dict[str, Any], seconds: float) -> Undo:
        self.modem.lose_port()
        link = self.lab_dir / PORT_LINK_NAME
        link.unlink(missing_ok=True)  # udev removes the by-id link with the device

        def back() -> None:
            # Hold the lowest free pty while the modem re-enumerates, so it comes back
            # under a new name, as a re-plugged USB modem often does (ttyUSB2 -> ttyUSB5).
            hold = os.openpty()
            try:
                path = self.modem.restore_port()
            finally:
                for fd in hold:
                    os.close(fd)
            self.on_port(path)

        return back

    # -- network ------------------------------------------------------------------------
    def _conditions(self, **changes: Any) -> None:
        c = self.modem.conditions
        values = {"rsrp_dbm": c.rsrp_dbm, "rsrq_db": c.rsrq_db, "sinr_db": c.sinr_db,
                  "registered": c.registered, "reject_cause": c.reject_cause, "down_plmns": c.down_plmns}
        values.update(changes)
        self.modem.set_radio_conditions(**values)

    def _outage(self, req: dict[str, Any], seconds: float) -> Undo:
        site = self._site("outage", req)
        if site is not None:
            # One carrier's cells are gone: its SIMs find nothing to register on, another
            # carrier's SIM is served (the modem's ``down_plmns``).
            self._conditions(down_plmns=self.modem.conditions.down_plmns | {site.plmn})
            return lambda: self._conditions(down_plmns=self.modem.conditions.down_plmns - {site.plmn})
        rsrp = self.modem.conditions.rsrp_dbm
        # The detach drops the data context, and with it the cell link (FaultyCarrier).
        self._conditions(registered=False, rsrp_dbm=OUTAGE_RSRP)

        def back() -> None:
            self._conditions(registered=True, rsrp_dbm=rsrp)

        return back

    def _reject(self, req: dict[str, Any], seconds: float) -> Undo:
        cause = int(req.get("cause") or 15)
        self._conditions(reject_cause=cause)
        return lambda: self._conditions(reject_cause=None)

    def _deactivate_contexts(self, plmn: str | None = None) -> None:
        """The network tears the data contexts down (24.301 §6.4.4), with the 27.007 URC;
        with ``plmn``, only if the SIM in use is of that carrier."""

        def run() -> None:
            cmds = self.modem.cmds
            sim = cmds.sim
            if plmn is not None and (sim is None or not sim.imsi.startswith(plmn)):
                return
            for cid, ctx in sorted(cmds.contexts.items()):
                if ctx.params is not None:
                    ctx.params = None
                    if sim is not None:
                        self.modem.carrier.deactivate(sim.imsi, cid)
                    self.modem.urc(f"+CGEV: NW PDN DEACT {cid}")

        self.modem.call_wait(run)

    def _pdn_deact(self, req: dict[str, Any], seconds: float) -> None:
        self._deactivate_contexts()

    def _pdn_reject(self, req: dict[str, Any], seconds: float) -> Undo:
        cause = int(req.get("cause") or 33)
        site = self._site("pdn-reject", req)
        if site is not None:
            self.carrier.pdn_reject_plmns[site.plmn] = cause
            self._deactivate_contexts(site.plmn)
            return lambda: self.carrier.pdn_reject_plmns.pop(site.plmn, None) and None
        self.carrier.pdn_reject = cause
        self._deactivate_contexts()

        def back() -> None:
            self.carrier.pdn_reject = None

        return back

    def _radio(self, req: dict[str, Any], seconds: float) -> Undo:
        cfg = self.modem.config
        rsrp = float(req["rsrp"]) if req.get("rsrp") is not None else -115.0
        sinr = float(req["sinr"]) if req.get("sinr") is not None else -3.0
        self._conditions(rsrp_dbm=rsrp, sinr_db=sinr, rsrq_db=-16.0)
        return lambda: self._conditions(rsrp_dbm=cfg.rsrp_dbm, sinr_db=cfg.sinr_db, rsrq_db=cfg.rsrq_db)

    def _shape(self, kbit: int, queue_ms: int, layout: LabLayout | None = None) -> None:
        lay = layout or self.layout
        netns.run(["tc", "qdisc", "replace", "dev", lay.inet_if, "root", "tbf", "rate", f"{kbit}kbit",
                   "burst", "64kb", "latency", f"{queue_ms}ms"], netns=lay.inet)

    def _congestion(self, req: dict[str, Any], seconds: float) -> Undo:
        layout = self._layout(req)
        self._congestion_next = 0.0
        self._shape(self.rng.randint(*CONGESTION_KBIT), CONGESTION_QUEUE_MS, layout)
        return lambda: self._shape(CELL_CAPACITY_KBIT, CELL_QUEUE_MS, layout)

    def _blackhole(self, req: dict[str, Any], seconds: float) -> Undo:
        """A carrier's core fails behind a healthy radio: registration and the data context
        stay up, and every user-plane packet dies in the core. Uplink packets are dropped
        *after* the billing counters (forward hook, priority 10 > the counters' 0: the PGW
        received and billed them), downlink ones before them (prerouting on the uplink from
        the internet: never delivered, never billed), so the device's meter and the
        carrier's counters still agree to the byte."""
        layout = self._layout(req)
        rules = f"""
table ip labfault_blackhole {{
  chain uplink {{
    type filter hook forward priority 10; policy accept;
    iifname "{layout.cell_if}" drop
  }}
  chain downlink {{
    type filter hook prerouting priority -150; policy accept;
    iifname "{layout.core_up_if}" drop
  }}
}}
"""
        netns.run(["nft", "-f", "-"], netns=layout.core, input_text=rules)
        return lambda: netns.run(["nft", "delete", "table", "ip", "labfault_blackhole"], netns=layout.core,
                                 check=False) and None

    # -- platform ---------------------------------------------------------------------
    def _broker_down(self, req: dict[str, Any], seconds: float) -> Undo:
        rules = f"""
table inet labfault_broker {{
  chain input {{
    type filter hook input priority -10; policy accept;
    tcp dport {BROKER_PORT} reject with tcp reset
  }}
}}
"""
        netns.run(["nft", "-f", "-"], netns=self.layout.inet, input_text=rules)
        return lambda: netns.run(["nft", "delete", "table", "inet", "labfault_broker"], netns=self.layout.inet,
                                 check=False)

    def _cloud_busy(self, req: dict[str, Any], seconds: float) -> Undo:
        path = self.lab_dir / "cloud" / CLOUD_FAULT_NAME
        body = {"mode": "refuse" if req.get("refuse") else "retry",
                "retry_after": float(req.get("retry_after") or 5.0), "until": time.time() + seconds}
        store.atomic_write_json(path, body, mode=store.PUBLIC_MODE)
        return lambda: path.unlink(missing_ok=True)

    def _auth_fail(self, req: dict[str, Any], seconds: float) -> Undo:
        self.carrier.auth_fail = True
        # The network drops the router's registration (a network-initiated detach with
        # "re-attach required"): the re-attach must authenticate with the sealed keys.
        self._conditions(registered=False)
        time.sleep(0.2)
        self._conditions(registered=True)

        def back() -> None:
            self.carrier.auth_fail = False
            # The network lifts the bar: a UE in "attach rejected" tries again when its
            # back-off timer runs out; the lab re-evaluates registration now.
            self.modem.call(self.modem.cmds.reevaluate)

        return back

    # -- device -------------------------------------------------------------------------
    def _clock(self, req: dict[str, Any], seconds: float) -> Undo:
        if req.get("step") is None:
            raise FaultError("clock needs --step SECONDS (negative steps back)")
        # On top of lab time (pocket-lab clock --advance): labclock keeps the two apart.
        labclock.set_fault(self.lab_dir, float(req["step"]))
        return lambda: labclock.set_fault(self.lab_dir, None)

    def _state_dir(self) -> Path:
        path = self.lab_dir / "agent" / "state"
        if not os.path.ismount(path):
            raise FaultError(f"{path} is not the lab's state mount (was the lab brought up by this version?)")
        return path

    def _state_ro(self, req: dict[str, Any], seconds: float) -> Undo:
        path = self._state_dir()
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        return lambda: subprocess.run(["umount", "-l", str(path)], check=False)

    def _state_full(self, req: dict[str, Any], seconds: float) -> Undo:
        ballast = self._state_dir() / BALLAST_NAME
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 1):  # down to the last byte: full, not nearly full
                try:
                    while os.write(fd, b"\0" * size):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        return lambda: ballast.unlink(missing_ok=True)


# ---- the lab's state directory -----------------------------------------------------------
def mount_state_dir(path: Path) -> None:
    """Give the lab agent's state directory its own small tmpfs (so "full" is real)."""
    path.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(path):
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={STATE_TMPFS_SIZE},mode=0700", "labstate", str(path)],
                       check=True)


def unmount_under(root: Path) -> None:
    """Unmount whatever the lab mounted below ``root`` (read-only binds, the state tmpfs)."""
    if not root.exists():
        return
    prefix = str(root.resolve()).rstrip("/") + "/"
    with open("/proc/self/mounts") as fh:
        points = [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def link_port(lab_dir: Path, pty: str) -> None:
    """Point the stable port path at ``pty`` (atomically: never a moment with a wrong target)."""
    link = lab_dir / PORT_LINK_NAME
    tmp = lab_dir / (PORT_LINK_NAME + ".new")
    tmp.unlink(missing_ok=True)
    os.symlink(pty, tmp)
    os.replace(tmp, link)


# ---- the control socket ---------------------------------------------------------------------
def serve(runner: FaultRunner, path: Path, stop: threading.Event) -> threading.Thread:
    """Answer control requests on a Unix socket (root only: the lab directory is root's)."""
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    os.chmod(path, 0o600)
    server.listen(8)
    server.settimeout(0.5)

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(SOCKET_TIMEOUT)
            data = _read_line(conn)
            try:
                reply = runner.request(json.loads(data or b"{}"))
            except (FaultError, ValueError, TypeError, KeyError, OSError, subprocess.CalledProcessError,
                    netns.LabCommandError) as exc:
                reply = {"ok": False, "error": str(exc)}
            conn.sendall(json.dumps(reply).encode() + b"\n")

    def loop() -> None:
        with server:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                except OSError:
                    break
                handle(conn)

    thread = threading.Thread(target=loop, name="labd-faults", daemon=True)
    thread.start()
    return thread


def _read_line(sock: socket.socket) -> bytes:
    """One newline-terminated JSON message (or what came before the peer closed)."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def send(lab_dir: Path, request: dict[str, Any]) -> dict[str, Any]:
    """One request to the board process's control socket; its JSON reply."""
    path = lab_dir / SOCKET_NAME
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(SOCKET_TIMEOUT)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = _read_line(sock)
    except OSError as exc:
        raise FaultError(f"the board process does not answer on {path}: {exc}") from exc
    reply: dict[str, Any] = json.loads(data or b"{}")
    if not reply.get("ok"):
        raise FaultError(str(reply.get("error") or "refused"))
    return reply

