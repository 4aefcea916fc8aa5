"""A remote-SIM modem's SIM slots, kept by the agent: one host-side card per slot.

The swap machine (agent/core/swap.py) stages a profile into the idle slot, switches to it
and, when the new SIM fails, switches back: on a vSIM modem each slot is in the baseband.
A remote-SIM modem has one reader, which the agent serves (``rsimhost.py``), so its slots
are here. ``stage`` loads a profile into that slot's own ``Uicc`` (the keys go into the
card's MILENAGE and nowhere else; the caller drops the profile). ``select`` ejects the
card serving now, kept as it is with its files and SQN state, so a rollback inserts it
again, and inserts the slot's card: the module sees "card removed, card inserted",
resets the card and reads it as at power-up. The same operations as a vSIM modem's, so
the swap machine runs unchanged (``Modem.load_profile``/``select_slot``/``active_profile``).

The cards are in this process's memory; a ``CardKeeper`` (the daemon's is
agent/cloud/cardvault.py, encrypted at rest) keeps each staged card, its SQN state and
which card is in the reader, so a restarted agent finds them again (``restore``/``adopt``).
"""

from __future__ import annotations

import logging
from typing import Protocol

from agent.errors import ModemError
from agent.modem.rsimhost import RemoteSimHost
from agent.sim import SimProfile
from agent.usim.card import Uicc
from agent.usim.sqn import SqnState
from agent.usim.tpdu import TpduLink

LOGGER = logging.getLogger(__name__)

NO_SLOT = 0
"""What ``active_profile`` reports before any card was inserted: the seed slot's number
with no ICCID (the module has no card of its own)."""


class CardKeeper(Protocol):
    """Where the slots' cards outlive the process (agent/cloud/cardvault.py)."""

    def keep(self, slot: int, profile: SimProfile, sqn: SqnState | None) -> None: ...

    def keep_sqn(self, slot: int, sqn: SqnState) -> None: ...

    def keep_active(self, slot: int | None, iccid: str | None) -> None: ...


class HostSlots:
    """Cards by slot number, one of them in the module's remote reader."""

    def __init__(self, host: RemoteSimHost) -> None:
        self.host = host
        self._cards: dict[int, Uicc] = {}
        self.active: int | None = None
        """The slot whose card is in the reader; None with the reader empty."""
        self.keeper: CardKeeper | None = None
        """Set by the daemon: every staged card, SQN change and insertion is kept there."""
        self._kept_sqn: dict[int, SqnState | None] = {}

    def __repr__(self) -> str:
        return f"HostSlots(active={self.active}, cards={self._cards!r})"

    def stage(self, slot: int, profile: SimProfile, sqn: SqnState | None = None, *, keep: bool = True) -> None:
        """Load ``profile`` into ``slot``'s card (not the one serving). The card it replaces
        is emptied: its keys go with it. ``keep`` False: restoring what the keeper holds."""
        if slot == self.active:
            raise ModemError(f"host slot {slot} is serving: stage into another", command="stage")
        old = self._cards.pop(slot, None)
        if old is not None:
            old.unload()
        card = Uicc()
        card.load(profile, sqn=sqn)
        self._cards[slot] = card
        self._kept_sqn[slot] = card.sqn_state
        if self.keeper is not None and keep:
            self.keeper.keep(slot, profile, card.sqn_state)

    async def select(self, slot: int) -> None:
        """Put ``slot``'s card in the module's reader (remove the serving one first)."""
        card = self._cards.get(slot)
        if card is None or not card.loaded:
            raise ModemError(f"host slot {slot} holds no SIM", command="select")
        if slot == self.active:
            return
        self.sync()
        if self.active is not None:
            await self.host.eject()  # the card stays in self._cards, as it was
        self.active = None
        await self.host.insert_card(card)
        self.active = slot
        if self.keeper is not None:
            self.keeper.keep_active(slot, card.iccid)
        LOGGER.info("remote SIM: host slot %d (%s) inserted", slot, card.iccid)

    def adopt(self, slot: int) -> bool:
        """After an agent restart: the module's reader still holds ``slot``'s card (it was
        inserted by the previous run), so serve it again without removing and inserting it
        (that would break the data path the restart must keep). True if the slot holds a
        card. Should the module have reset the card meanwhile, its next ``+SIMRESET`` is
        answered from this card as any other."""
        card = self._cards.get(slot)
        if card is None or not card.loaded:
            return False
        self.host.card = card
        self.host.link = TpduLink(card)
        self.active = slot
        return True

    def sync(self) -> int:
        """Hand every card's changed SQN state to the keeper (after an AUTHENTICATE the card
        accepted); returns how many were kept. Cheap when nothing changed."""
        kept = 0
        for slot, card in self._cards.items():
            state = card.sqn_state
            if state is None or state == self._kept_sqn.get(slot):
                continue
            if self.keeper is not None:
                self.keeper.keep_sqn(slot, state)
                kept += 1
            self._kept_sqn[slot] = state
        return kept

    def active_profile(self) -> tuple[int, str]:
        """(slot, ICCID) of the card in the reader; (NO_SLOT, "") with none."""
        if self.active is None:
            return NO_SLOT, ""
        card = self._cards.get(self.active)
        return self.active, (card.iccid or "") if card is not None else ""

    def sqn_state(self, slot: int) -> SqnState | None:
        """The SQN state of ``slot``'s card, to hand back to the platform."""
        card = self._cards.get(slot)
        return card.sqn_state if card is not None else None
