"""What every dialect provides: the commands that differ between basebands.

A dialect is data plus a few small methods, in the spirit of bellows' per-firmware
subpackages: the driver asks the dialect *which* command to send and how to read a
vendor-specific answer, and does everything 27.007 itself. Only what differs is here.
"""

from __future__ import annotations

from agent.errors import ModemError
from agent.modem.commands import BASE, CommandTable
from agent.modem.rsim import RsimFraming
from agent.sim import SimProfile


class Dialect:
    """The 3GPP TS 27.007 baseline; subclasses override only what differs."""

    name = "base"
    has_vsim = False
    has_remote_sim = False
    """The module asks the host for its card over AT (agent/modem/rsim.py)."""
    remote_sim: RsimFraming | None = None
    """How it asks: the module family's remote-SIM commands (None: it has its own card)."""

    commands: CommandTable = BASE
    """What the framer knows of each command (timeouts, secrets, parsers): 27.007 here; a
    dialect adds or overrides entries with ``BASE.with_(...)``, never copies the table."""

    low_power_fun: frozenset[int] = frozenset({4})
    """+CFUN levels that mean "on, radio off" (27.007 §8.2: 4 disables both transmit and
    receive RF circuits)."""

    init_commands: tuple[str, ...] = ("ATE0", "AT+CMEE=1", "AT+COPS=3,2")
    """Sent after opening: echo off (saves bytes; the framer tolerates it anyway),
    numeric +CME ERROR codes (the driver and recovery ladder act on numbers), and the
    numeric operator format (27.007 +COPS=3,2), so +COPS? names the network by its
    MCC-MNC, which billing regions and the platform's health view need, not a display name."""

    registration_commands: tuple[str, ...] = ("AT+CEREG", "AT+CGREG", "AT+CREG")
    """Queried in this order by Modem.registration(): LTE first (our data bearer)."""

    iccid_commands: tuple[str, ...] = ("AT+CCID", "AT+CRSM=176,12258,0,0,10")
    """+CCID is near-universal; +CRSM READ BINARY of EF_ICCID (2FE2) is pure 27.007."""

    reset_command = "AT+CFUN=1,1"
    """27.007 +CFUN <rst>=1: reset the MT before setting the function level."""

    sinr_command: str | None = None
    """Vendor command that reports SINR, if the baseband has one."""

    def parse_sinr(self, lines: tuple[str, ...]) -> float | None:
        return None

    def cfun_power_state(self, fun: int) -> str:
        """``off``, ``low`` or ``on`` for a +CFUN level, as this baseband defines it."""
        if fun in self.low_power_fun:
            return "low"
        if fun == 0:
            return "off"
        return "on"

    # -- vSIM ------------------------------------------------------------------------
    def _no_vsim(self, what: str) -> ModemError:
        return ModemError(f"dialect {self.name} has no vSIM ({what})", command=what)

    def vsim_load(self, slot: int, profile: SimProfile) -> str:
        raise self._no_vsim("load profile")

    def vsim_select(self, slot: int) -> str:
        raise self._no_vsim("select slot")

    def vsim_query(self) -> str:
        raise self._no_vsim("query active slot")

    def parse_vsim_query(self, lines: tuple[str, ...]) -> tuple[int, str]:
        raise self._no_vsim("query active slot")
