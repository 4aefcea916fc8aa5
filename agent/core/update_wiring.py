"""Wires the updater (agent/core/updater.py) to the running supervisor.

As heal_wiring.py does for the healer: the one place that knows which of the
supervisor's parts the updater reads (the cloud link, the swap lock, the SIM in use, the
allowance) and how it asks for the restart into a new version, so updater.py takes only
callables.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent.cloud import sealing
from agent.core.updater import CHUNK_LEAF, GET_EXPIRY_S, UpdateHooks, Updater
from agent.version import describe_short

LOGGER = logging.getLogger(__name__)


def updater_for(sup: Any) -> Updater:
    """An updater for ``sup`` once its cloud link exists; its chunk leaf subscribed."""
    key = None
    if sup.cfg.release_key is not None:
        try:
            key = sealing.load_public_ed25519(sup.cfg.release_key)
        except (OSError, ValueError, TypeError) as exc:
            LOGGER.error("release key %s unreadable (%s): update offers will be refused", sup.cfg.release_key, exc)
    cloud = sup.cloud

    def restart() -> None:
        sup.restart_for_update = True
        sup.request_stop("update installed")

    def prove() -> None:
        if sup.journal is not None and sup.report_gate is not None:
            sup.journal.flush("update trial")
            sup.report_gate.open_now("update trial")
            cloud.kick()

    async def emit(kind: str, data: dict[str, Any]) -> None:
        """An event, and for an update's the retained state too: the platform sees the
        running version and any update in progress without reading the event stream."""
        await sup.emit(kind, data)
        if kind == "update":
            await cloud.publish_state(state_body(updater))

    hooks = UpdateHooks(
        publish=lambda leaf, body: cloud.publish_leaf(leaf, {"v": 1, **body}, expiry=GET_EXPIRY_S),
        emit=emit,
        connected=lambda: bool(cloud.connected),
        swapping=lambda: sup.swapping,
        on_seed=lambda: bool((sup.current or {}).get("seed")),
        allowance_low=lambda: sup.swap_control.allowance_low,
        restart=restart,
        prove=prove,
    )
    updater = Updater(sup.state_dir, key, sup.profile.name, hooks, trial_ok=sup.cfg.status_file is not None)
    cloud.add_inbound(CHUNK_LEAF, updater.on_chunk)
    asyncio.get_running_loop().create_task(cloud.publish_state(state_body(updater)))  # the first birth carries it
    return updater


def state_body(updater: Updater) -> dict[str, Any]:
    """The retained state's extra fields (docs/protocol.md 3.1 allows them): the version."""
    return {"agent_version": describe_short(), "update": updater.summary()}
