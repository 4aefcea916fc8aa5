"""The swap machine (agent/core/swap.py, unchanged) on a remote-SIM modem: the ``Modem``
driver with the ``fibocom-rsim`` dialect keeps the slots as host-side cards
(agent/modem/rsimslots.py) and serves the virtual modem's remote reader over a real pty;
the lab carrier's AuC authenticates every attach (docs/remote-sim.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from agent.core.swap import SimFacts, SwapFailed, SwapMachine
from agent.modem.driver import Modem
from agent.sim import SimProfile
from board.virtual.modem.auc import AkaCarrier
from tests.integration.rsim_rig import KI, OPC, OTHER, PROFILE, WAIT_S, rsim_modem, tap
from tests.integration.test_swap_machine import Assignment, Recorder
from tests.unit.at_fakes import async_test

OLD, NEW = PROFILE, OTHER


@asynccontextmanager
async def on_old_sim(new_keys: SimProfile = NEW) -> AsyncIterator[tuple[Modem, SimFacts, AkaCarrier]]:
    """A remote-SIM modem serving OLD from host slot 1 with its data context up. The
    carrier knows OLD and ``new_keys``' subscriber."""
    keys = {OLD.imsi: (OLD.ki, OLD.opc), NEW.imsi: (new_keys.ki, new_keys.opc)}
    carrier = AkaCarrier(keys.get)
    vmodem = rsim_modem(carrier)
    vmodem.start()
    modem = Modem(vmodem.path, "fibocom-rsim")
    try:
        await modem.open()
        yield modem, await serving(modem, OLD, "a-old"), carrier
    finally:
        await modem.close()
        vmodem.stop()


async def serving(modem: Modem, sim: SimProfile, assignment_id: str) -> SimFacts:
    """``sim`` loaded into slot 1 and selected, registered, its data context up."""
    await modem.load_profile(1, sim)
    await modem.select_slot(1)
    await registered(modem)
    await modem.define_context(1, sim.apn)
    await modem.activate_context(1)
    return SimFacts(1, sim.iccid, sim.imsi, False, sim.plan.to_dict(), assignment_id, sim.apn)


async def registered(modem: Modem) -> None:
    """Registered within WAIT_S: woken by +CEREG/+CREG URCs, the answer read each time."""
    event = asyncio.Event()
    modem.subscribe("+CEREG", lambda _: event.set())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while (await modem.registration()).stat not in (1, 5):
        assert loop.time() < deadline, "never registered"
        event.clear()
        try:
            await asyncio.wait_for(event.wait(), 0.2)
        except TimeoutError:
            pass


def machine(modem: Modem, rec: Recorder, tmp_path: Path) -> SwapMachine:
    return SwapMachine(modem, rec.hooks(), tmp_path / "swap.json", slots=(1, 2), attach_timeout_s=5.0)


@async_test
async def test_a_commanded_swap_moves_the_remote_card(tmp_path: Path) -> None:
    async with on_old_sim() as (modem, old, carrier):
        rec = Recorder(Assignment("a-1", NEW))
        new = await machine(modem, rec, tmp_path).swap("command", old)
        assert (new.slot, new.iccid) == (2, NEW.iccid)
        assert await modem.active_profile() == (2, NEW.iccid)
        assert await modem.imsi() == NEW.imsi  # the module read the new card
        assert NEW.imsi in carrier.attached
        [(kind, data)] = rec.events
        assert kind == "swap" and data["ok"] and data["break_ms"] > 0
        params = await modem.context_params(1)
        assert params is not None and params.address


@async_test
async def test_a_wrong_key_is_refused_and_rolled_back_to_the_old_card(tmp_path: Path) -> None:
    """NEW's profile carries a Ki the carrier does not have: the card finds AUTN's MAC
    wrong, the network rejects (EMM #20), and the machine puts the old card back: its SQN
    state kept, so it authenticates again at once."""
    wrong = SimProfile(NEW.iccid, NEW.imsi, bytes(16), NEW.opc, NEW.plmn, NEW.apn)
    async with on_old_sim() as (modem, old, carrier):
        assert modem.remote is not None
        sqn_before = modem.remote.sqn_state(1)
        rec = Recorder(Assignment("a-2", wrong))
        with pytest.raises(SwapFailed) as failed:
            await machine(modem, rec, tmp_path).swap("command", old)
        assert failed.value.phase == "attach" and failed.value.rolled_back
        assert await modem.active_profile() == (1, OLD.iccid)
        assert await modem.imsi() == OLD.imsi
        assert NEW.imsi not in carrier.attached
        [(_, data)] = rec.events
        assert "registration denied" in data["detail"]
        after = modem.remote.sqn_state(1)
        assert sqn_before is not None and after is not None and after.seq_ms > sqn_before.seq_ms


@async_test
async def test_no_key_crosses_the_line_during_a_whole_swap(tmp_path: Path) -> None:
    async with on_old_sim() as (modem, old, _):
        assert modem.channel is not None
        seen = tap(modem.channel)
        await machine(modem, Recorder(Assignment("a-3", NEW)), tmp_path).swap("command", old)
    text = seen.decode("ascii", "replace").upper()
    assert "+SIMDATA:" in text and "AT+SIMDATA=" in text
    for secret in (KI, OPC, NEW.ki, NEW.opc):
        assert secret.hex().upper() not in text and secret not in seen
