"""Radio readings for the health task, through the one ``Modem`` driver.

The supervisor owns the AT port; nothing else opens it. This reader asks the driver for
signal (+CESQ/+CSQ and the dialect's SINR), registration (+CEREG/+CGREG/+CREG: cell,
TAC, AcT) and the serving network as a numeric MCC-MNC: ``+COPS=3,2`` once sets the
numeric format, after which ``+COPS?`` answers "44010" rather than the operator's name
(what billing regions and the platform's SIM marking need).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from agent.core.sampler import RadioReading
from agent.errors import AgentError
from agent.health.event import ServingNetwork, act_number, numeric_plmn

LOGGER = logging.getLogger(__name__)

REGISTERED = (1, 5)
"""27.007 <stat>: 1 registered, home network; 5 registered, roaming."""

COPS_NUMERIC = "AT+COPS=3,2"
"""27.007 +COPS=3,<format>: set only the format of <oper> (2 = numeric MCC-MNC)."""


@dataclass(frozen=True)
class RadioSnapshot:
    radio: RadioReading
    network: ServingNetwork


class ModemRadio:
    """``await read()`` -> RadioSnapshot; driver errors propagate (the caller recovers)."""

    def __init__(self, modem: Any):
        self.modem = modem
        self._numeric = False

    async def read(self) -> RadioSnapshot:
        sig = await self.modem.signal()
        reg = await self.modem.registration()
        radio = RadioReading(rsrp_dbm=sig.rsrp_dbm, rsrq_db=sig.rsrq_db, sinr_db=sig.sinr_db,
                             registered=reg.stat in REGISTERED)
        plmn = await self._plmn() if reg.stat in REGISTERED else None
        network = ServingNetwork(plmn=plmn, cell=reg.ci, tac=reg.tac if reg.tac is not None else reg.lac,
                                 act=act_number(reg.act))
        return RadioSnapshot(radio, network)

    async def vouch_time(self, clock: Any) -> bool:
        """The network's time vouches for the wall clock (see ``vouch_network_time``)."""
        return await vouch_network_time(self.modem, clock)

    async def _plmn(self) -> str | None:
        try:
            if not self._numeric:
                await self.modem.command(COPS_NUMERIC)
                self._numeric = True
            oper = (await self.modem.operator()).oper
            plmn = numeric_plmn(oper)
            if plmn is None and oper:
                self._numeric = False  # a reset modem forgot the format: set it again
            return plmn
        except AgentError as exc:
            LOGGER.debug("no numeric operator: %s", exc)
            return None


async def vouch_network_time(modem: Any, clock: Any) -> bool:
    """Let the network's time (+CCLK?, set from NITZ) vouch for the wall clock; False when
    the modem has none (not registered, or no NITZ from this network)."""
    try:
        network_time = await modem.network_time()
    except AgentError as exc:
        LOGGER.debug("no network time: %s", exc)
        return False
    clock.vouch("network", network_time.timestamp())
    return True
