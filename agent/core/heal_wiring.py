"""Wires the healer (agent/core/heal.py) to today's supervisor.

Kept apart from ``heal.py`` so the healer itself takes only explicit inputs: this is the
one place that knows the supervisor's insides (its modem, ladder, WAN link, routing and
assignment steps). When the supervisor's SIM life becomes a swap state machine, only
this module changes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent.core.heal import Healer
from agent.errors import ModemError
from agent.health.outage import OutageLog

LOGGER = logging.getLogger(__name__)

RADIO_OFF_SETTLE = 2.0
"""Seconds between radio off and on when re-attaching: the local detach completes
(the same figure as the recovery ladder's radio step)."""


def healer_for(sup: Any) -> Healer:
    """A healer for the running supervisor ``sup`` (after ``_start``: modem, ladder and
    cloud exist). Shares the health monitor's outage log: one writer per file."""
    from agent.core.supervisor import ASSIGNMENT_TIMEOUT, DATA_CID

    outages = sup.health.outages if sup.health is not None else OutageLog(sup.state_dir, sup.clock)

    async def reactivate_data() -> None:
        await sup.modem.activate_context(DATA_CID)
        params = await sup.modem.context_params(DATA_CID)
        if params is None or not params.address:
            raise ModemError("data context is up but the modem reports no address")
        await sup._route(params)  # same SIM: the meter keeps counting for it

    async def release_data() -> None:
        await asyncio.to_thread(sup.wan.release)

    async def reattach() -> None:
        await sup.modem.set_radio(False)
        await asyncio.sleep(RADIO_OFF_SETTLE)
        await sup.modem.set_radio(True)

    async def request_swap(reason: str) -> None:
        refused = sup.current or {}
        if not refused.get("seed"):
            # The refused SIM cannot reach the cloud: ask over the bootstrap SIM. Nothing may
            # leave with the refused SIM's address meanwhile (counted, never billed).
            await release_data()
            sup.cloud.set_network_available(False)
            await sup._use_seed()
            sup.cloud.set_network_available(True)
        # Name the refused SIM as the current one, so the cloud picks another.
        assignment = await sup.cloud.request_assignment(
            reason, current_iccid=refused.get("iccid"), evidence={"cause": reason}, timeout=ASSIGNMENT_TIMEOUT)
        await release_data()  # the seed's address goes before the switch, for the same reason
        await sup.apply(assignment)

    def give_up(code: int, reason: str) -> None:
        sup.give_up(code, reason)
        sup._stop.set()  # the daemon stops and exits with ``code``

    async def report_outages(pending: list[dict[str, Any]]) -> None:
        for outage in pending:
            await sup.cloud.emit("outage", outage)
        outages.mark_reported([o["id"] for o in pending])  # the outbox holds them durably now

    return Healer(
        sup.modem, sup.ladder, sup.wan, outages=outages, clock=sup.clock,
        reactivate_data=reactivate_data, reattach=reattach, release_data=release_data, request_swap=request_swap,
        give_up=give_up, report_outages=report_outages,
        on_seed=lambda: bool((sup.current or {}).get("seed")),
        cloud_connected=lambda: bool(sup.cloud and sup.cloud.connected),
        network_available=sup.cloud.set_network_available,
        on_change=lambda summary: sup.status.data.__setitem__("heal", summary),
        data_cid=DATA_CID,
    )
