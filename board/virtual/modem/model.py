"""What every part of the virtual modem shares: the modelled latencies, the SIM slot, the
radio conditions, the configuration, the carrier contract and the handler types.

It exists so that the device (``device``), its command table (``commands``) and the
command families (``data``, ``sms``, ...) all import it and none imports another upward:
the modem and its command set used to import each other, held together by imports
inside functions.
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.sim import SimProfile

# --- modelled latency (seconds at time_scale 1.0) -----------------------------------
COMMAND_LATENCY = 0.002
"""A local query (CSQ, CPIN?) on a real baseband: 1-10 ms over USB."""
RADIO_ON_LATENCY = 1.0
"""+CFUN=1: RF front-end power-up; EC25 reports ~1 s."""
RADIO_OFF_LATENCY = 0.5
"""+CFUN=0/4: detach signalling before the RF is powered down."""
ATTACH_LATENCY = 2.0
"""Cell search + EPS attach after radio on: 1-3 s on a good LTE cell."""
CONTEXT_LATENCY = 0.8
"""+CGACT=1: ESM default-bearer activation round trip (hundreds of ms)."""
SLOT_SWITCH_LATENCY = 3.0
"""vSIM slot switch: detach, profile swap in the baseband, before re-attach starts."""
BOOT_LATENCY = 2.0
"""Reboot to "RDY": a Quectel EC25 takes ~10 s; shortened so the lab stays brisk."""

URC_MEAN_INTERVAL = 5.0
"""Mean modelled seconds between spontaneous URCs when ``urc_probability`` > 0 (a
real LTE modem reports signal changes every few seconds when +CIEV is on)."""

FAST_SCALE = 0.01
"""time_scale used by tests: every modelled latency x 0.01."""

NULL_POOL = "198.18.1"
"""NullCarrier hands out 198.18.1.<4k+2>/30 (RFC 2544 benchmarking range, never routed)."""


class CarrierReject(Exception):
    """The carrier refused a request; ``cause`` is the 3GPP ESM/EMM cause number."""

    def __init__(self, cause: int, message: str = ""):
        super().__init__(message or f"rejected with cause {cause}")
        self.cause = cause


class CarrierHooks(Protocol):
    """How the modem talks to the (virtual) carrier network."""

    def attach(self, imsi: str, plmn: str, challenge: Callable[[bytes], bytes] | None) -> int | None:
        """Authenticate+register. ``challenge(rand16)`` returns RES computed with the
        slot's Ki/OPc; None is a remote-SIM modem's attach, authenticated just before with
        the carrier's ``auc`` (board/virtual/modem/auc.py), if it has one. None =
        accepted, int = EMM reject cause."""
        ...

    def activate(self, imsi: str, cid: int, apn: str) -> dict[str, Any]:
        """{"address","prefix","gateway","dns":[...],"mtu"}; raise CarrierReject(cause)."""
        ...

    def deactivate(self, imsi: str, cid: int) -> None: ...

    def detach(self, imsi: str) -> None: ...


class NullCarrier:
    """A carrier that accepts every SIM and hands out 198.18.1.x/30 addresses."""

    def __init__(self) -> None:
        self._next = itertools.count(0)
        self.attached: set[str] = set()

    def attach(self, imsi: str, plmn: str, challenge: Callable[[bytes], bytes] | None) -> int | None:
        self.attached.add(imsi)
        return None

    def activate(self, imsi: str, cid: int, apn: str) -> dict[str, Any]:
        base = 4 * (next(self._next) % 63)
        return {
            "address": f"{NULL_POOL}.{base + 2}",
            "prefix": 30,
            "gateway": f"{NULL_POOL}.{base + 1}",
            "dns": [f"{NULL_POOL}.{base + 1}"],
            "mtu": 1500,
        }

    def deactivate(self, imsi: str, cid: int) -> None:
        return None

    def detach(self, imsi: str) -> None:
        self.attached.discard(imsi)


# --- configuration ------------------------------------------------------------------


SlotSim = SimProfile
"""A SIM as held in a vSIM slot is the agent's own ``SimProfile`` (keys never shown)."""

SEED_PLMN = "44010"
SEED_APN = "internet"
"""A seed SIM given without PLMN or APN in a config file is a home SIM of the lab's
carrier (MCC 440, MNC 10) on its default APN."""


DEFAULT_SEED = SimProfile(
    iccid="8981100000000000001",
    imsi="440101234500001",
    ki=bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc"),
    opc=bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf"),
    plmn="44010",
    apn="seed.example",
)
"""The bootstrap SIM: keys are the public 3GPP TS 35.208 test set 1, not a real SIM's."""


@dataclass(frozen=True)
class ModemConfig:
    """What the lab (or a test) chooses about the virtual modem."""

    seed: SimProfile = DEFAULT_SEED
    vsim_slots: tuple[int, ...] = (1, 2)
    manufacturer: str = "PocketLab"
    model: str = "VM-1"
    revision: str = "VM1.0.0"
    imei: str = "356938035643809"
    operator_name: str = "LAB MOBILE"
    time_scale: float = 1.0
    """Multiplies every modelled latency; tests use FAST_SCALE."""
    urc_probability: float = 0.0
    """Chance, per response line written, of a spontaneous URC just before it."""
    rng_seed: int = 1
    radio_on_at_boot: bool = True
    """Real modems come up with +CFUN=1 and attach on their own."""
    sinr_db: float = 12.0
    ppp_on_at_port: bool = False
    """Whether ATD*99# on this port answers CONNECT (a PPP-capable port) or NO CARRIER
    (the board's data path is a network interface, as the virtual board's wwan0)."""
    rsrp_dbm: float = -85.0
    rsrq_db: float = -9.0
    remote_sim: bool = False
    """No card of its own: the SIM is asked of the host over AT (board/virtual/modem/rsim.py)."""
    rsim_deadline_s: float = 1.0
    """Wall-clock seconds the remote card has to answer one transmission before the module
    counts it mute: the T=0 work waiting time at default parameters (docs/remote-sim.md)."""

    @classmethod
    def from_file(cls, path: str | Path) -> ModemConfig:
        """Load from JSON or TOML: keys as the fields; ``seed`` holds iccid, imsi, ki and
        opc (hex), plmn, apn."""
        p = Path(path)
        text = p.read_bytes()
        data = tomllib.loads(text.decode()) if p.suffix == ".toml" else json.loads(text)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModemConfig:
        data = dict(data)
        if "seed" in data:
            s = dict(data.pop("seed"))
            s["ki"] = bytes.fromhex(s["ki"])
            s["opc"] = bytes.fromhex(s["opc"])
            s.setdefault("plmn", SEED_PLMN)
            s.setdefault("apn", SEED_APN)
            data["seed"] = SimProfile(**s)
        if "vsim_slots" in data:
            data["vsim_slots"] = tuple(data["vsim_slots"])
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown modem config keys: {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class RadioConditions:
    """What the cell looks like from the antenna (set by the lab or a test)."""

    rsrp_dbm: float = -85.0
    rsrq_db: float = -9.0
    sinr_db: float = 12.0
    registered: bool = True
    reject_cause: int | None = None
    down_plmns: frozenset[str] = frozenset()
    """Carriers with no service here (a carrier's outage, issue 23): a SIM of one of these
    PLMNs finds no cell to register on (+CEREG: 2), a SIM of another carrier is served."""


# --- command handlers ---------------------------------------------------------------

Result = tuple[list[str], float]
Handler = Callable[[str, str], Result]
"""(kind, args) -> (lines, latency); kind is "exec", "set", "query" or "test"."""


def split_args(args: str) -> list[str]:
    """27.007 argument list: comma-separated, strings in double quotes (quotes removed)."""
    out: list[str] = []
    for m in re.finditer(r'\s*("([^"]*)"|[^,]*)\s*(,|$)', args):
        if m.group(0) == "" and m.start() == len(args):
            break
        out.append(m.group(2) if m.group(2) is not None else m.group(1).strip())
        if m.group(3) == "":
            break
    return out
