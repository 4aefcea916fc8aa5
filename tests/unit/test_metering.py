"""agent/core/metering.py without a supervisor: the SIM in use's bytes and the user's
throughput for the swap policy, and a reopened journal resuming from its baseline."""

from __future__ import annotations

import asyncio
from pathlib import Path
from unittest.mock import create_autospec

from agent.clock import FakeClock
from agent.core.metering import UNREADABLE_GRACE_S, Metering
from agent.errors import NetError
from agent.net.link import WanLink
from agent.usage.counters import Counters

SIM_A = {"iccid": "8981100000000000001", "imsi": "440100000000001", "plan": None}
SIM_B = {"iccid": "8981100000000000002", "imsi": "440100000000002", "plan": None}


class Wan:
    """The data interface's counters, moved by hand. Metering sees them through the real
    ``WanLink``'s interface (``metering`` autospecs it), so a change there fails here."""

    def __init__(self) -> None:
        self.rx = self.tx = 0

    def counters(self) -> Counters:
        return Counters(3, self.rx, self.tx, self.rx // 1000, self.tx // 1000)


def metering(tmp_path: Path, clock: FakeClock, wan: Wan) -> Metering:
    link = create_autospec(WanLink, instance=True)
    link.counters.side_effect = wan.counters
    return Metering.open(tmp_path, clock, link, flush_interval_s=60.0, heartbeat_s=3600.0, tz_offset="+09:00",
                         header_bytes=0)


def test_bytes_of_the_sim_in_use_and_the_throughput(tmp_path: Path) -> None:
    clock, wan = FakeClock(), Wan()
    usage = metering(tmp_path, clock, wan)
    usage.bill_to(SIM_A)
    asyncio.run(usage.sample(SIM_A["iccid"]))  # the baseline
    clock.advance(2.0)
    wan.rx, wan.tx = 3000, 1000
    asyncio.run(usage.sample(SIM_A["iccid"]))
    assert usage.used_on_current == 4000
    assert usage.traffic_kbps == 4000 * 8 / 1000 / 2.0
    usage.bill_to(SIM_B)  # the meter bills B from now; A's count is the supervisor's to reset
    clock.advance(1.0)
    wan.rx += 500
    asyncio.run(usage.sample(SIM_A["iccid"]))
    assert usage.used_on_current == 4000  # B's bytes are not A's
    usage.journal.close()


def test_a_reopened_journal_resumes_from_its_durable_baseline(tmp_path: Path) -> None:
    clock, wan = FakeClock(), Wan()
    usage = metering(tmp_path, clock, wan)
    usage.bill_to(SIM_A)
    asyncio.run(usage.sample(SIM_A["iccid"]))
    clock.advance(1.0)
    wan.rx = 10_000
    asyncio.run(usage.sample(SIM_A["iccid"]))
    usage.journal.flush("test")
    usage.journal.close()
    clock.advance(5.0)
    wan.rx = 12_500  # moved while the agent was down
    again = metering(tmp_path, clock, wan)
    again.bill_to(SIM_A)
    asyncio.run(again.sample(SIM_A["iccid"]))
    assert again.used_on_current == 2_500  # counted once: from the baseline, not from zero
    again.journal.close()


class DeadWan(Wan):
    """Counters that work for ``good`` reads and then never again (the interface is gone for
    good), each read taking ``step`` seconds of the fake clock; a way to await the Nth read."""

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: FakeClock, good: int, step: float,
                 reads_wanted: int) -> None:
        super().__init__()
        self.loop, self.clock, self.good, self.step = loop, clock, good, step
        self.reads, self.reads_wanted = 0, reads_wanted
        self.enough = asyncio.Event()

    def counters(self) -> Counters:  # runs in a worker thread (asyncio.to_thread)
        self.reads += 1
        self.clock.advance(self.step)
        if self.reads == self.reads_wanted:
            self.loop.call_soon_threadsafe(self.enough.set)
        if self.reads > self.good:
            raise NetError("read counters of wwan0: no such device")
        return super().counters()


def marks_of(tmp_path: Path, good: int, step: float, reads: int) -> list[int]:
    """After which reads the sample loop marked the watchdog."""

    async def body() -> list[int]:
        clock = FakeClock()
        wan = DeadWan(asyncio.get_running_loop(), clock, good, step, reads_wanted=reads + 1)
        usage = metering(tmp_path, clock, wan)
        usage.bill_to(SIM_A)
        marks: list[int] = []
        task = asyncio.get_running_loop().create_task(
            usage.run(lambda: SIM_A["iccid"], 0.0, lambda: marks.append(wan.reads)))
        await asyncio.wait_for(wan.enough.wait(), 10)  # the read after the last one counted has begun
        task.cancel()
        usage.journal.close()
        return marks

    return asyncio.run(body())


def test_the_watchdog_stops_once_the_counters_stay_unreadable_past_the_grace(tmp_path: Path) -> None:
    """Issue 20, finding 14: a loop that runs but cannot read the counters for longer than
    the healer's longest recovery is not progress, or systemd's watchdog would keep a
    daemon alive that meters nothing."""
    step = 40.0
    marks = marks_of(tmp_path, good=2, step=step, reads=8)
    # reads 1-2 work; read 3 fails at t=120 (failing since then), 4 at 160, 5 at 200 and 6 at
    # 240 (120 s = the grace: no longer within it), 7, 8: nothing
    within = int(UNREADABLE_GRACE_S // step)
    assert marks == list(range(1, 3 + within))
    assert marks[-1] < 8


def test_a_short_gap_in_the_counters_keeps_the_watchdog_fed(tmp_path: Path) -> None:
    """A modem re-enumerating takes its interface away for tens of seconds while the healer
    works: the watchdog must not restart the daemon in the middle of that."""
    assert marks_of(tmp_path, good=1, step=5.0, reads=6)[:6] == [1, 2, 3, 4, 5, 6]  # read 7 may be in too


def test_the_sims_bytes_in_use_survive_a_clean_restart_and_start_over_for_another_sim(tmp_path: Path) -> None:
    """What the renter's page and the swap policy read as "used since assignment": a restart
    of the agent on the same SIM goes on counting (the bytes moved while it was down
    included), a new SIM starts at zero."""
    clock, wan = FakeClock(), Wan()
    usage = metering(tmp_path, clock, wan)
    usage.now_current(SIM_A["iccid"])
    usage.bill_to(SIM_A)
    asyncio.run(usage.sample(SIM_A["iccid"]))
    clock.advance(1.0)
    wan.rx = 10_000
    asyncio.run(usage.sample(SIM_A["iccid"]))
    usage.journal.flush("shutdown")
    usage.save_used()  # the clean stop
    usage.journal.close()
    clock.advance(5.0)
    wan.rx = 12_500  # moved while the agent was down
    again = metering(tmp_path, clock, wan)
    again.bill_to(SIM_A)
    asyncio.run(again.sample(None))  # the first reading, before the supervisor knows the SIM
    again.now_current(SIM_A["iccid"])  # resumed on the same SIM
    assert again.used_on_current == 12_500
    again.now_current(SIM_B["iccid"])
    assert again.used_on_current == 0
    again.journal.close()
    reopened = metering(tmp_path, clock, wan)
    assert reopened.used_iccid == SIM_B["iccid"]  # saved at the change
    reopened.journal.close()
