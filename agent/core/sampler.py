"""The live sampler: one ``Sample`` a second from the adapters under the classifier.

It puts the I/O together (``agent/net``: sysfs counters, conntrack over netlink, the UDP
echo prober; radio handed in as a value read through the ``Modem`` driver) so that
``agent/health`` stays pure logic. ``record`` writes what it samples to a trace; the
health task feeds the classifier with it: what a technician records is what the daemon
sees.

Demand without conntrack: when the kernel's conntrack table cannot be read, "flows" is
estimated from the LAN-side counters (1 while the LAN moves at least
``LAN_DEMAND_KBPS``), and ``demand_source`` says so for the health evidence. Several
flows sharing a cap can then not be seen, so a cap needs another sign (queue, loss, an
active check).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from agent.health.sample import Sample
from agent.net.conntrack import ConntrackFlows
from agent.net.ifstats import SYSFS_NET, has_carrier, read_counters
from agent.net.reflector import UdpEchoProber

LOGGER = logging.getLogger(__name__)

LAN_DEMAND_KBPS = 40.0
"""LAN traffic above this counts as one flow of demand when conntrack is absent: the
classifier's own busy threshold (keep-alives and DNS stay below it)."""


@dataclass(frozen=True)
class RadioReading:
    """What the radio says, as plain values (read through the Modem driver)."""

    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    sinr_db: float | None = None
    registered: bool = True


class LiveSampler:
    """Reads counters, flows and the echo once per ``sample()`` call."""

    def __init__(self, wan: str, lan: str | None, prober: UdpEchoProber | None,
                 flows: ConntrackFlows | None, root: Path = SYSFS_NET, clock: object = time):
        self.wan, self.lan = wan, lan
        self.prober, self.flows = prober, flows
        if prober is not None and flows is not None:
            # The reflector probe is the agent's own flow, not a user's: counting it would
            # make an idle user look busy (flows >= 1 forever).
            flows.own(*prober.address)
        self.root = root
        self._clock = clock
        self._lan_prev: tuple[float, int] | None = None

    @property
    def demand_source(self) -> str:
        """"conntrack" or "lan_counters" (conntrack absent), for the health evidence."""
        return "conntrack" if self.flows is not None and self.flows.available else "lan_counters"

    def _lan_flows(self, now: float, lan_bytes: int) -> int:
        prev, self._lan_prev = self._lan_prev, (now, lan_bytes)
        if prev is None or now <= prev[0]:
            return 0
        kbps = max(0, lan_bytes - prev[1]) * 8 / 1000 / (now - prev[0])
        return 1 if kbps >= LAN_DEMAND_KBPS else 0

    def sample(self, t: float, radio: RadioReading | None = None, probe: bool = True) -> Sample:
        """Read every source now; ``t`` is stamped on the sample (trace seconds).
        ``probe`` False pauses the echo (nothing to judge: the agent's traffic budget)."""
        wan_rx, wan_tx = read_counters(self.wan, self.root)
        lan_rx, lan_tx = read_counters(self.lan, self.root) if self.lan else (0, 0)
        now = float(self._clock.monotonic())  # type: ignore[attr-defined]
        flows = self.flows.update(now) if self.flows else None
        if flows is None:
            flows = self._lan_flows(now, lan_rx + lan_tx)
        rtt = None
        if self.prober is not None:
            # With no bearer the echo cannot leave and costs nothing, and its loss is what
            # tells "registered but no data path" (issue 23: a refused data context) from
            # an idle user, so it runs whatever the classifier's byte budget says.
            if probe or not has_carrier(self.wan, self.root):
                rtt = self.prober.tick()
            else:
                self.prober.idle()
        radio = radio or RadioReading()
        return Sample(
            t=t, wan_rx_bytes=wan_rx, wan_tx_bytes=wan_tx, lan_rx_bytes=lan_rx,
            lan_tx_bytes=lan_tx, flows=flows, rtt_ms=None if rtt is None else round(rtt, 2),
            probes_sent=self.prober.sent if self.prober else 0,
            probes_lost=self.prober.lost if self.prober else 0,
            rsrp_dbm=radio.rsrp_dbm, rsrq_db=radio.rsrq_db, sinr_db=radio.sinr_db,
            registered=radio.registered,
        )

    def close(self) -> None:
        if self.prober:
            self.prober.close()
