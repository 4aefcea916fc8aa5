"""The factory self-test: is this unit fit to ship?

Each check is one small function returning a ``Check`` (name, ok, detail), so the
factory record lists every result, not just the first failure: a line engineer sorting
rejects wants to see "seed SIM not registered" and "console port missing" together.

The modem part runs in one AT session (``probe_modem``) at the start of provisioning,
because the IMEI it reads goes into the CSR; a missing or silent modem is reported
within ``MODEM_DEADLINE_S`` as ``ModemNotFound``, never as a hang.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.boardprofile import BoardProfile
from agent.clock import Clock
from agent.errors import AgentError, ModemError
from agent.modem.driver import Modem

LOGGER = logging.getLogger(__name__)

MODEM_DEADLINE_S = 10.0
"""Open + first answer: a modem that is attached answers AT within milliseconds; one
still booting within ~5 s of power (EC25: RDY after ~4 s). Past 10 s it is not there."""

AT_TIMEOUT_S = 2.0
"""Per command while probing: identity and status queries answer in < 100 ms."""

REGISTER_WAIT_S = 60.0
"""Seed SIM registration: a cold LTE attach takes 5-30 s; 60 s before calling it failed."""

REGISTER_POLL_S = 0.25
"""Registration poll interval (no event to await: +CEREG URCs are not enabled yet)."""

VSIM_SLOT_QUERY = {"virtual": ("AT+VSIMLOAD=?", re.compile(r"^\+VSIMLOAD:\s*\(([\d,\s]*)\)"))}
"""Per dialect, the test command that lists the vSIM slots the baseband has (docs/vsim-at.md)."""


class ModemNotFound(AgentError):
    """No modem answered on the port within the deadline."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class ModemFacts:
    """What the modem said; ``checks`` holds the modem-side self-test results."""

    imei: str
    manufacturer: str
    model: str
    revision: str
    checks: list[Check] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {"imei": self.imei, "manufacturer": self.manufacturer, "model": self.model,
                "revision": self.revision}


async def probe_modem(port: str, profile: BoardProfile, *, register_wait: float = REGISTER_WAIT_S,
                      deadline: float = MODEM_DEADLINE_S) -> ModemFacts:
    """Open the modem, read its identity and run the modem checks; closes it again."""
    modem = Modem(port, profile.dialect, baud=profile.baud, init_timeout=AT_TIMEOUT_S)
    try:
        try:
            await asyncio.wait_for(modem.open(), deadline)
            ident = await asyncio.wait_for(modem.identity(), deadline)
        except (ModemError, TimeoutError) as exc:
            raise ModemNotFound(f"no modem answers on {port} within {deadline:g} s "
                                f"({exc.__class__.__name__}: {exc}); check the cable and the port name") from None
        facts = ModemFacts(ident.imei, ident.manufacturer, ident.model, ident.revision)
        facts.checks.append(Check("modem_answers", True, f"{ident.manufacturer} {ident.model} {ident.revision}"))
        facts.checks.append(await _vsim_slots(modem, profile))
        facts.checks.append(await _seed_registered(modem, profile, register_wait))
        return facts
    finally:
        await modem.close()


async def _vsim_slots(modem: Modem, profile: BoardProfile) -> Check:
    if not profile.vsim_slots:
        return Check("vsim_slots", True, "board has no vSIM slots")
    query = VSIM_SLOT_QUERY.get(profile.dialect)
    if query is None:
        return Check("vsim_slots", False, f"no slot query known for dialect {profile.dialect}")
    try:
        resp = await modem.command(query[0], timeout=AT_TIMEOUT_S)
    except ModemError as exc:
        return Check("vsim_slots", False, f"{query[0]} failed: {exc}")
    for line in resp.lines:
        m = query[1].match(line)
        if m:
            have = {int(s) for s in m.group(1).replace(" ", "").split(",") if s}
            missing = sorted(set(profile.vsim_slots) - have)
            return Check("vsim_slots", not missing,
                         f"slots {sorted(have)}" + (f"; missing {missing}" if missing else ""))
    return Check("vsim_slots", False, f"unreadable answer to {query[0]}: {list(resp.lines)!r}")


async def _seed_registered(modem: Modem, profile: BoardProfile, wait: float) -> Check:
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    last = "no answer"
    while True:
        try:
            reg = await modem.registration()
            last = f"stat {reg.stat} ({reg.family})"
            if reg.registered:
                break
        except ModemError as exc:
            last = str(exc)
        if loop.time() >= end:
            return Check("seed_registered", False, f"not registered after {wait:g} s: {last}")
        await asyncio.sleep(REGISTER_POLL_S)
    if modem.dialect.has_vsim:
        try:
            slot, iccid = await modem.active_profile()
        except ModemError as exc:
            return Check("seed_registered", False, f"registered, but the active slot is unknown: {exc}")
        if slot != profile.seed_slot:
            return Check("seed_registered", False, f"registered on slot {slot}, not the seed slot {profile.seed_slot}")
        return Check("seed_registered", True, f"{last}, seed slot {slot} ICCID {iccid}")
    return Check("seed_registered", True, last)


def check_label(imei: str, label_imei: str | None) -> Check:
    if label_imei is None:
        return Check("imei_label", True, "no label value given")
    return Check("imei_label", imei == label_imei, f"modem {imei}, label {label_imei}")


def check_console(path: str) -> Check:
    """The technician console's serial port must exist and be a character device."""
    if not path:
        return Check("console_port", False, "board profile names no console port")
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return Check("console_port", False, f"{path}: {exc.strerror}")
    return Check("console_port", stat.S_ISCHR(mode), f"{path}" + ("" if stat.S_ISCHR(mode) else " is not a tty"))


def check_clock(clock: Clock, not_before: float | None = None, not_after: float | None = None) -> Check:
    """Wall clock plausible (not an unset RTC) and inside the certificate's validity."""
    now = clock.wall()
    if not clock.wall_trusted():
        return Check("clock_sane", False, f"wall clock reads {now:.0f}: an unset RTC")
    if not_before is not None and not_after is not None and not not_before <= now <= not_after:
        return Check("clock_sane", False, "wall clock is outside the certificate's validity")
    return Check("clock_sane", True, clock.now().isoformat(timespec="seconds"))


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]
