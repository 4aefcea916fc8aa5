"""A remote-SIM board's host slots kept across an agent restart (agent/modem/rsimslots.py
with the real encrypted keeper, agent/cloud/cardvault.py)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.cloud.cardvault import CardVault
from agent.modem.rsimhost import RemoteSimHost
from agent.modem.rsimslots import NO_SLOT, HostSlots
from agent.usim.atr import ATR
from agent.usim.sqn import SqnState
from tests.unit.at_fakes import async_test
from tests.unit.test_cardvault import PROFILE
from tests.unit.test_rsim_host import Port

STATE = SqnState(seq=(3,) + (0,) * 31)


@async_test
async def test_a_restarted_agent_adopts_the_card_in_the_reader_without_touching_the_module(tmp_path: Path) -> None:
    key = X25519PrivateKey.generate()
    first = HostSlots(RemoteSimHost(Port()))
    first.keeper = vault = CardVault(tmp_path, key, "rtr-1")
    assert first.active_profile() == (NO_SLOT, "")
    first.stage(1, PROFILE, STATE)
    await first.select(1)
    assert vault.active() == (1, PROFILE.iccid) and vault.open(1)[1] == STATE  # type: ignore[index]

    port = Port()  # the next run: a new process, the module still holding slot 1's card
    again = HostSlots(RemoteSimHost(port))
    again.host.start()
    kept = CardVault(tmp_path, key, "rtr-1").open(1)
    assert kept is not None
    again.stage(1, kept[0], kept[1], keep=False)
    assert again.adopt(1) and again.active_profile() == (1, PROFILE.iccid)
    assert port.sent == []  # no remove/insert: the data path stays up
    port.urc("+SIMRESET")  # should the module reset the card, it is answered from the kept one
    await again.host.idle()
    assert port.answers() == [ATR]
    assert again.sync() == 0  # nothing changed since it was kept
    await again.host.stop()


def test_adopting_an_empty_slot_is_refused() -> None:
    slots = HostSlots(RemoteSimHost(Port(), clock=lambda: 0.0))
    assert not slots.adopt(2) and slots.active is None


def test_the_sync_hands_a_changed_state_to_the_keeper(tmp_path: Path) -> None:
    slots = HostSlots(RemoteSimHost(Port(), clock=lambda: 0.0))
    slots.keeper = vault = CardVault(tmp_path, X25519PrivateKey.generate(), "rtr-1")
    slots.stage(2, PROFILE)
    later = SqnState(seq=(0, 7) + (0,) * 30)
    slots._cards[2]._sim.sqn = later  # type: ignore[union-attr]  # what an accepted AUTHENTICATE does
    assert slots.sync() == 1 and vault.open(2)[1] == later  # type: ignore[index]
    assert slots.sync() == 0
