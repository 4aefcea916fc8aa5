"""The daemon's usage path: the data interface's counters into the meter and the journal.

The supervisor's usage wiring, apart from its life cycle: open the journal and re-seed
the meter from its last durable baseline (so bytes that flowed while the agent was down
are counted once), take one reading, and keep reading on the sample interval, never
across a JST day or month boundary (agent/usage/). It also keeps what the swap policy
reads of the traffic: the bytes the SIM in use moved and the user's throughput.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import store
from agent.clock import Clock
from agent.errors import AgentError
from agent.net.link import WanLink
from agent.plans.tracker import Allowance
from agent.usage.calendar import parse_tz, plan_tz
from agent.usage.journal import TRICKLE_FLUSH_S, UsageJournal
from agent.usage.meter import UsageMeter

LOGGER = logging.getLogger(__name__)

HEARTBEAT_FLUSHES = 4
"""Issue 10: an idle journal flushes at most four times per heartbeat (fewer records)."""
USED_FILE = "used_on_current.json"
"""The SIM in use's bytes since it became current, kept across a restart: written when the
SIM changes and at a clean stop (not at every flush: one more small file on flash each
minute for a figure the cloud's next assignment corrects anyway). After SIGKILL or a power
cut it is as of the last clean stop; before it existed a restart counted from zero, and
the renter's page and the swap policy's "data left" forgot what the SIM had used."""
UNREADABLE_GRACE_S = 120.0
"""How long failed samples still feed the watchdog: the healer's longest recovery (a modem
power cycle awaited up to 60 s, then 30 s for its port to come back: agent/modem/recovery.py,
agent/core/heal.py) with a third on top. Past it the daemon meters nothing and is restarted."""


class Metering:
    """One daemon's journal and meter, fed from the WAN counters."""

    def __init__(self, journal: UsageJournal, meter: UsageMeter, wan: WanLink, clock: Clock, tz_offset: str,
                 allowance: Allowance | None = None, used_file: Path | None = None):
        self.journal = journal
        self.allowance = allowance
        """Each rule's allowance (agent/plans/): fed the same deltas, durable with the journal."""
        self.meter = meter
        self.wan = wan
        self.clock = clock
        self.tz_offset = tz_offset
        """The configured calendar, for a SIM whose plan names no zone."""
        self.used_on_current = 0
        """Bytes the SIM in use moved since it became current (the policy's data left)."""
        self.used_iccid: str | None = None
        """The SIM ``used_on_current`` counts for (``now_current``)."""
        self._used_file = used_file
        self._restore_used()
        self.traffic_kbps = 0.0
        """The user's throughput over the last sample interval (the lull rule)."""
        self._last_sample_t = 0.0

    @classmethod
    def open(cls, state_dir: Path, clock: Clock, wan: WanLink, *, flush_interval_s: float, heartbeat_s: float,
             tz_offset: str, header_bytes: int) -> Metering:
        """The journal in ``state_dir`` and a meter resumed from its durable baseline."""
        journal = UsageJournal(state_dir / "usage.journal", clock=clock, flush_interval_s=flush_interval_s,
                               trickle_flush_s=min(TRICKLE_FLUSH_S, heartbeat_s / HEARTBEAT_FLUSHES))
        meter = UsageMeter(clock, tz=parse_tz(tz_offset), header_bytes=header_bytes)
        baseline = journal.baseline()
        if baseline is not None:
            meter.seed(baseline, journal.baseline_wall())
            LOGGER.info("usage: resuming from the journal's baseline (ifindex %s)", baseline.ifindex)
        allowance = Allowance(state_dir, clock, tz_offset)
        allowance.ledger.rebase(journal.durable_seq)
        allowance.ledger.catch_up(journal.bodies_after(allowance.ledger.seq))
        return cls(journal, meter, wan, clock, tz_offset, allowance, used_file=state_dir / USED_FILE)

    def _restore_used(self) -> None:
        saved = store.read_json(self._used_file) if self._used_file is not None else None
        if isinstance(saved, dict) and isinstance(saved.get("iccid"), str) and isinstance(saved.get("bytes"), int):
            self.used_iccid, self.used_on_current = saved["iccid"], max(0, saved["bytes"])

    def now_current(self, iccid: str | None) -> None:
        """The supervisor's SIM in use is ``iccid``: another SIM counts from zero (and that
        is saved at once); the same one (a resumed run) keeps counting."""
        if iccid != self.used_iccid:
            self.used_iccid, self.used_on_current = iccid, 0
            self.save_used()

    def save_used(self) -> None:
        """Make ``used_on_current`` survive a restart (USED_FILE); a failure is logged only."""
        if self._used_file is None or self.used_iccid is None:
            return
        try:
            store.atomic_write_json(self._used_file, {"iccid": self.used_iccid, "bytes": self.used_on_current})
        except OSError as exc:  # a full or read-only state directory: the figure restarts from 0 next run
            LOGGER.warning("could not save the SIM's bytes in use: %s", exc)

    def bill_to(self, facts: dict[str, Any]) -> None:
        """From now on the bytes are the SIM's of ``facts``, in its plan's calendar."""
        self.meter.set_active_sim(facts["iccid"], facts["imsi"], facts["imsi"][:3])
        self.meter.set_plan_tz(plan_tz(facts, self.tz_offset))  # issue 10: the plan's zone

    async def sample(self, current_iccid: str | None) -> None:
        """One counter reading into the meter and the journal."""
        counters = await asyncio.to_thread(self.wan.counters)
        deltas = self.meter.sample(counters)
        moved = sum(d.rx_bytes + d.tx_bytes for d in deltas)
        counted = current_iccid if current_iccid is not None else self.used_iccid  # first reading: the saved SIM's
        self.used_on_current += sum(d.rx_bytes + d.tx_bytes for d in deltas if d.iccid == counted)
        now = self.clock.monotonic()
        if now > self._last_sample_t:
            self.traffic_kbps = moved * 8 / 1000 / (now - self._last_sample_t)
        self._last_sample_t = now
        # The meter's baseline is the reading stamped with the boot id; the journal must
        # store that one, or a restart would take the same boot for a reboot.
        if self.allowance is not None:
            for d in deltas:
                self.allowance.ledger.add(d.iccid, d.day, d.start, d.end, d.rx_bytes, d.tx_bytes)
        self.journal.add(deltas, self.meter.baseline() or counters, self.clock.wall())
        self.commit_allowance()

    def commit_allowance(self) -> None:
        """The ledger durable up to the journal's durable seq (after every journal flush)."""
        if self.allowance is not None and self.journal.durable_seq > self.allowance.ledger.seq:
            self.allowance.ledger.commit(self.journal.durable_seq)

    async def run(self, current_iccid: Callable[[], str | None], interval_s: float,
                  mark: Callable[[], None]) -> None:
        """Sample every ``interval_s`` and at each calendar boundary; ``mark`` tells the
        service manager's watchdog that the main loop made a pass that *worked*.

        Failed samples mark only for ``UNREADABLE_GRACE_S`` (issue 20, finding 14):
        metering is the daemon's job, so a loop that runs but has not read the counters for
        longer than the healer's longest recovery is as stuck as one that does not run, and
        the service manager restarts it. Within the grace the healer owns the trouble (a
        modem re-enumerating takes its data interface away for tens of seconds), and a
        watchdog restart in the middle of its ladder would only start the ladder again."""
        failing_since: float | None = None
        while True:
            try:
                await self.sample(current_iccid())
            except AgentError as exc:
                LOGGER.warning("usage sample failed: %s", exc)
                now = self.clock.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since < UNREADABLE_GRACE_S:
                    mark()
            else:
                failing_since = None
                mark()
            to_boundary = self.meter.next_boundary() - self.clock.wall()
            await asyncio.sleep(max(0.0, min(interval_s, to_boundary)))
