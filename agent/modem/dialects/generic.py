"""``generic``: a baseband that speaks only 3GPP TS 27.007 (no vSIM, no vendor SINR).

The dialect for real boards whose SIM is physical (e.g. a Quectel EC25 on OpenWrt):
everything but the vSIM operations works, and those raise a clear ModemError.
"""

from __future__ import annotations

from agent.modem.dialects.base import Dialect


class GenericDialect(Dialect):
    name = "generic"
