"""Dialects: the small per-baseband differences. The board profile names one."""

from __future__ import annotations

from agent.errors import ConfigError
from agent.modem.dialects.base import Dialect
from agent.modem.dialects.fibocom import FibocomRsimDialect
from agent.modem.dialects.generic import GenericDialect
from agent.modem.dialects.ublox import UbloxDialect
from agent.modem.dialects.virtual import VirtualDialect

DIALECTS: dict[str, type[Dialect]] = {
    FibocomRsimDialect.name: FibocomRsimDialect,
    GenericDialect.name: GenericDialect,
    UbloxDialect.name: UbloxDialect,
    VirtualDialect.name: VirtualDialect,
}
"""The registry: a board profile's ``dialect`` must be one of these names."""


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``; ConfigError naming the known ones otherwise."""
    try:
        return DIALECTS[name]()
    except KeyError:
        raise ConfigError(f"unknown modem dialect {name!r} (known: {', '.join(sorted(DIALECTS))})") from None


__all__ = ["DIALECTS", "Dialect", "get_dialect"]
