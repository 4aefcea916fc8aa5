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
"""

from __future__ import annotations

import logging

from agent.errors import ModemError
from agent.modem.rsimhost import RemoteSimHost
from agent.sim import SimProfile
from agent.usim.card import Uicc
from agent.usim.sqn import SqnState

LOGGER = logging.getLogger(__name__)

NO_SLOT = 0
"""What ``active`` reports before any card was inserted: the seed slot's number, which on
a remote-SIM board holds nothing (the module has no card of its own)."""


class HostSlots:
    """Cards by slot number, one of them in the module's remote reader."""

    def __init__(self, host: RemoteSimHost) -> None:
        self.host = host
        self._cards: dict[int, Uicc] = {}
        self.active: int = NO_SLOT

    def __repr__(self) -> str:
        return f"HostSlots(active={self.active}, cards={self._cards!r})"

    def stage(self, slot: int, profile: SimProfile, sqn: SqnState | None = None) -> None:
        """Load ``profile`` into ``slot``'s card (not the one serving). The card it replaces
        is emptied: its keys go with it."""
        if slot == self.active:
            raise ModemError(f"host slot {slot} is serving: stage into another", command="stage")
        old = self._cards.pop(slot, None)
        if old is not None:
            old.unload()
        card = Uicc()
        card.load(profile, sqn=sqn)
        self._cards[slot] = card

    async def select(self, slot: int) -> None:
        """Put ``slot``'s card in the module's reader (remove the serving one first)."""
        card = self._cards.get(slot)
        if card is None or not card.loaded:
            raise ModemError(f"host slot {slot} holds no SIM", command="select")
        if slot == self.active:
            return
        if self.active != NO_SLOT:
            await self.host.eject()  # the card stays in self._cards, as it was
        self.active = NO_SLOT
        await self.host.insert_card(card)
        self.active = slot
        LOGGER.info("remote SIM: host slot %d (%s) inserted", slot, card.iccid)

    def active_profile(self) -> tuple[int, str]:
        """(slot, ICCID) of the card in the reader; (0, "") with none."""
        card = self._cards.get(self.active)
        return self.active, (card.iccid or "") if card is not None else ""

    def sqn_state(self, slot: int) -> SqnState | None:
        """The SQN state of ``slot``'s card, to hand back to the platform."""
        card = self._cards.get(slot)
        return card.sqn_state if card is not None else None
