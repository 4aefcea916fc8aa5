"""``virtual``: 27.007 plus the vSIM extension of the virtual board (docs/vsim-at.md).

The same extension is what a real cloud-SIM baseband exposes under vendor names; a
dialect for one would differ only in the command names and the answer's prefix.
"""

from __future__ import annotations

import re

from agent.errors import ModemError, ParseError
from agent.modem.commands import BASE, VSIM_COMMANDS
from agent.modem.dialects.base import Dialect
from agent.sim import SimProfile

_VSIMSEL = re.compile(r'^\+VSIMSEL:\s*(\d+)\s*,\s*"?([0-9A-Fa-f]*)"?\s*$')
_AT_STRING = re.compile(r'[\x20-\x21\x23-\x7e]*')
"""What a V.250 string constant holds without escapes: printable ASCII but the quote."""
_VSINR = re.compile(r"^\+VSINR:\s*(-?\d+(?:\.\d+)?)\s*$")


class VirtualDialect(Dialect):
    name = "virtual"
    has_vsim = True
    commands = BASE.with_(*VSIM_COMMANDS)
    sinr_command = "AT+VSINR?"

    def parse_sinr(self, lines: tuple[str, ...]) -> float | None:
        for line in lines:
            m = _VSINR.match(line)
            if m:
                return float(m.group(1))
        return None

    def vsim_load(self, slot: int, profile: SimProfile) -> str:
        """The load command. It carries Ki/OPc: the driver sends it ``sensitive=True``."""
        for name in ("iccid", "imsi", "plmn", "apn"):
            if not _AT_STRING.fullmatch(getattr(profile, name)):  # the field's name, never its value
                raise ModemError(f"profile field {name!r} cannot go into an AT string (a quote, a control "
                                 "or a non-ASCII character)", command="AT+VSIMLOAD=<redacted>")
        return (
            f'AT+VSIMLOAD={slot},"{profile.iccid}","{profile.imsi}","{profile.ki.hex().upper()}",'
            f'"{profile.opc.hex().upper()}","{profile.plmn}","{profile.apn}"'
        )

    def vsim_select(self, slot: int) -> str:
        return f"AT+VSIMSEL={slot}"

    def vsim_query(self) -> str:
        return "AT+VSIMSEL?"

    def parse_vsim_query(self, lines: tuple[str, ...]) -> tuple[int, str]:
        for line in lines:
            m = _VSIMSEL.match(line)
            if m:
                return int(m.group(1)), m.group(2)
        raise ParseError("no +VSIMSEL line", raw="\n".join(lines))
