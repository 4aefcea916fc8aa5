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
from agent.core.swap import DATA_CID
from agent.errors import ModemError
from agent.health.outage import OutageLog

LOGGER = logging.getLogger(__name__)

RADIO_OFF_SETTLE = 2.0
"""Seconds between radio off and on when re-attaching: the local detach completes
(the same figure as the recovery ladder's radio step)."""


def healer_for(sup: Any) -> Healer:
    """A healer for the running supervisor ``sup`` (after ``_start``: modem, ladder and
    cloud exist). Shares the health monitor's outage log: one writer per file."""
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
        # The refused SIM cannot reach the cloud: the supervisor falls back to the seed SIM
        # and runs the swap machine from there (agent/core/swap.py), naming the refused SIM.
        await sup.swap_from_refused_sim(reason)

    def give_up(code: int, reason: str) -> None:
        sup.fail(code, reason)  # the daemon stops and exits with ``code``

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
        on_change=sup.heal_changed,
        paused=lambda: sup.swapping,  # the swap machine owns the modem during a swap
        data_cid=DATA_CID,
    )
