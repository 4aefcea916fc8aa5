"""The host end of the remote-SIM dialect: the module asks, the agent's card answers.

``RemoteSimHost`` subscribes to the module's ``+SIMRESET`` and ``+SIMDATA:`` URCs on an
``AtChannel`` and answers each with ``AT+SIMDATA="<hex>"`` from a ``TpduLink`` in front of
the host-side USIM (``agent/usim``). The SIM's Ki and OPc go into that card and nowhere
else: what crosses the AT line is the ATR, file contents, and for AUTHENTICATE the RES,
CK and IK (or AUTS) the card computes. Every ``AT+SIMDATA`` is sent as a sensitive
command (``at.py``: its text never logged, its echo dropped), since CK and IK are session
keys; ``+SIMDATA:`` URCs are logged by length only (``codes.QUIET_URC_PREFIXES``).

Order and resets
----------------
One worker task answers the module's transmissions strictly in arrival order, each with
priority on the channel (a baseband waiting on its card must not queue behind a +CSQ
poll). A ``+SIMRESET`` means the module has powered the card up again: anything it sent
before and we have not answered yet belonged to the old session and is dropped; the
answer is the new ATR. A module that resets in the middle of a session (its own reboot,
a ``+CFUN`` cycle) therefore gets a fresh card state and carries on.

Deadline
--------
A baseband gives up on a silent card. Under T=0 with the default parameters the work
waiting time is 1.0 s (ISO/IEC 7816-3, docs/remote-sim.md); ``MODULE_DEADLINE_S`` is that
bound. Each answer's time from the URC's arrival to the end of its ``AT+SIMDATA`` (the
module's OK) is kept in ``answer_times``; one beyond the deadline is logged.

Bad input
---------
A ``+SIMDATA`` line that cannot be read (odd hex, not hex, longer than T=0) is answered
6700, as a card answers a transmission whose length does not fit, logged with lengths
only, and the host keeps serving. A command with no SIM loaded is answered by the card
(6F00); a reset with no SIM loaded gets no answer, as an empty reader slot gives none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from agent.errors import ModemError
from agent.modem.at import AtResponse
from agent.modem.rsim import FIBOCOM, RsimError, RsimFraming, SimData, SimReset
from agent.sim import SimProfile
from agent.usim import sw
from agent.usim.card import Uicc
from agent.usim.sqn import SqnState
from agent.usim.tpdu import TpduLink

LOGGER = logging.getLogger(__name__)

MODULE_DEADLINE_S = 1.0
"""ISO/IEC 7816-3 work waiting time at the default WI 10, Fi 372 and 3.57 MHz:
10 x 960 x 372 / 3.57 MHz = 1.0 s, the time a card has to answer before the terminal
counts it mute."""

ANSWER_TIMEOUT_S = 5.0
"""How long one ``AT+SIMDATA`` may wait for the module's OK: a local command on the
module (no network), given the channel's default."""

ANSWER_TIMES_KEPT = 4096
"""Recent answer times kept for ``answer_times`` (a power-up is ~40 transmissions)."""

_Event = SimReset | SimData | RsimError


class AtPort(Protocol):
    """What the host needs of the AT line: an ``AtChannel``, or the ``Modem`` driver (whose
    subscriptions survive a reopen of the port and whose commands re-send the start-up
    settings after the module rebooted)."""

    def subscribe(self, prefix: str, callback: Callable[[str], None]) -> Any: ...

    async def command(self, command: str, **kw: Any) -> AtResponse: ...


class RemoteSimHost:
    """Answers one module's remote-SIM requests from one host-side card."""

    def __init__(self, channel: AtPort, card: Uicc | None = None, framing: RsimFraming = FIBOCOM,
                 clock: Callable[[], float] | None = None) -> None:
        self.channel = channel
        self.framing = framing
        """The module family's commands (the dialect's ``remote_sim``)."""
        self.card = card or Uicc()
        self.link = TpduLink(self.card)
        self._clock = clock or asyncio.get_running_loop().time
        self._queue: deque[tuple[_Event, float]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._subscribed = False
        self.answer_times: deque[float] = deque(maxlen=ANSWER_TIMES_KEPT)
        """Seconds from each URC's arrival to its answer's OK, most recent last."""
        self.stats: dict[str, int] = {"resets": 0, "transmissions": 0, "malformed": 0, "late": 0,
                                      "dropped_after_reset": 0, "answer_failures": 0, "unanswered_resets": 0}

    # -- life ------------------------------------------------------------------------
    def start(self) -> None:
        """Listen for the module's requests (before enabling the remote SIM, so the first
        ``+SIMRESET`` is not missed)."""
        if self._worker is not None:
            return
        if not self._subscribed:
            found = [self.channel.subscribe(prefix, self._on_urc) for prefix in self.framing.urc_prefixes]
            self._unsubscribe = [unsubscribe for unsubscribe in found if callable(unsubscribe)]
            self._subscribed = True
        self._worker = asyncio.get_running_loop().create_task(self._serve(), name="remote-sim-host")

    async def stop(self) -> None:
        """Stop answering. On a channel the subscriptions go too; a ``Modem``'s outlive
        the port and stay (``start`` again resumes with them)."""
        if self._unsubscribe:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            self._unsubscribe = []
            self._subscribed = False
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def idle(self) -> None:
        """Return once every request that has arrived is answered (tests, benchmarks)."""
        while self._queue or not self._idle.is_set():
            await self._idle.wait()
            await asyncio.sleep(0)  # a URC read in the same chunk may still be queued

    # -- the card in the slot ------------------------------------------------------------
    async def insert(self, profile: SimProfile, sqn: SqnState | None = None, spn: str = "") -> None:
        """Load ``profile`` into the card and tell the module a card is present: it answers
        with ``+SIMRESET`` and reads the card as at power-up. The keys stay in the card."""
        self.card.load(profile, sqn=sqn, spn=spn)
        await self.channel.command(self.framing.enable_command(True), priority=True)

    async def remove(self) -> None:
        """Tell the module the card is gone, then empty the card (the first half of a swap:
        "remove card A")."""
        card = await self.eject()
        card.unload()

    async def eject(self) -> Uicc:
        """Tell the module the card is gone and return the card, kept as it is (its files
        and SQN state: a rollback inserts it again); the slot holds an empty card."""
        await self.channel.command(self.framing.enable_command(False), priority=True)
        card, self.card = self.card, Uicc()
        self.link = TpduLink(self.card)
        return card

    async def insert_card(self, card: Uicc) -> None:
        """Put ``card`` (loaded) in the slot and tell the module a card is present."""
        self.card = card
        self.link = TpduLink(card)
        await self.channel.command(self.framing.enable_command(True), priority=True)

    async def swap(self, profile: SimProfile, sqn: SqnState | None = None, spn: str = "") -> None:
        """Remove the card in the slot and insert ``profile``'s (docs/remote-sim.md)."""
        await self.remove()
        await self.insert(profile, sqn=sqn, spn=spn)

    # -- URCs ----------------------------------------------------------------------------
    def _on_urc(self, line: str) -> None:
        now = self._clock()
        try:
            event: _Event = self.framing.parse_urc(line)
        except RsimError as exc:
            event = exc
        if isinstance(event, SimReset):
            stale = sum(1 for queued, _ in self._queue if not isinstance(queued, SimReset))
            self.stats["dropped_after_reset"] += stale
            self._queue.clear()
        self._queue.append((event, now))
        self._idle.clear()
        self._wake.set()

    async def _serve(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                self._idle.set()
                await self._wake.wait()
            self._idle.clear()
            event, arrived = self._queue.popleft()
            answer = self._answer_for(event)
            if answer is None:
                continue
            await self._send(answer, arrived)

    def _answer_for(self, event: _Event) -> bytes | None:
        if isinstance(event, SimReset):
            self.stats["resets"] += 1
            atr = self.link.reset()
            if not atr:
                self.stats["unanswered_resets"] += 1
                LOGGER.info("remote SIM: the module reset the card, but no SIM is loaded: no ATR")
                return None
            LOGGER.info("remote SIM: card reset by the module, ATR sent")
            return atr
        if isinstance(event, RsimError):
            self.stats["malformed"] += 1
            self.link.reset_exchange()
            LOGGER.warning("remote SIM: unreadable +SIMDATA answered 6700: %s", type(event).__name__)
            return sw.WRONG_LENGTH
        self.stats["transmissions"] += 1
        answer = self.link.receive(event.payload)
        if self.link.last_error is not None:
            LOGGER.info("remote SIM: %s (%s)", type(self.link.last_error).__name__, self.link.last_error)
        return answer

    async def _send(self, answer: bytes, arrived: float) -> None:
        try:
            await self.channel.command(self.framing.answer_command(answer), priority=True, sensitive=True,
                                       timeout=ANSWER_TIMEOUT_S)
        except ModemError as exc:  # ours, with the redacted line only; keep serving
            self.stats["answer_failures"] += 1
            LOGGER.warning("remote SIM: answer not taken by the module: %s", type(exc).__name__)
            return
        took = self._clock() - arrived
        self.answer_times.append(took)
        if took > MODULE_DEADLINE_S:
            self.stats["late"] += 1
            LOGGER.warning("remote SIM: answer took %.3f s, beyond the card's %.1f s", took, MODULE_DEADLINE_S)
