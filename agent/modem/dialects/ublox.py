"""``ublox``: a u-blox cellular module (TOBY, LARA, SARA): 27.007, read the u-blox way.

What differs is how +CFUN levels are read: u-blox documents 0 (minimum functionality) and
19 (minimum functionality with the SIM deactivated) as low-power states the module leaves
with +CFUN=1, not as "off" (u-blox AT commands manual, +CFUN; ModemManager's ublox plugin
reads them the same). Everything else is the generic 27.007 behaviour: no vSIM.
Its own commands (``UBLOX_COMMANDS``) are declared in ``commands.py``.
"""

from __future__ import annotations

from agent.modem.commands import BASE, UBLOX_COMMANDS
from agent.modem.dialects.generic import GenericDialect


class UbloxDialect(GenericDialect):
    name = "ublox"
    low_power_fun = frozenset({0, 4, 19})
    commands = BASE.with_(*UBLOX_COMMANDS)
    """u-blox's power-off, firmware and factory-reset commands, so the framer and the
    technician's gate know them by their entries (the gate reads ``KNOWN``, which has them too)."""
