"""agent/core/metering.py without a supervisor: the SIM in use's bytes and the user's
throughput for the swap policy, and a reopened journal resuming from its baseline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.clock import FakeClock
from agent.core.metering import Metering
from agent.errors import NetError
from agent.usage.counters import Counters

SIM_A = {"iccid": "8981100000000000001", "imsi": "440100000000001", "plan": None}
SIM_B = {"iccid": "8981100000000000002", "imsi": "440100000000002", "plan": None}


class Wan:
    """The data interface's counters, moved by hand."""

    def __init__(self) -> None:
        self.rx = self.tx = 0

    def counters(self) -> Counters:
        return Counters(3, self.rx, self.tx, self.rx // 1000, self.tx // 1000)


def metering(tmp_path: Path, clock: FakeClock, wan: Wan) -> Metering:
    return Metering.open(tmp_path, clock, wan, flush_interval_s=60.0, heartbeat_s=3600.0, tz_offset="+09:00",
                         header_bytes=0)  # type: ignore[arg-type]


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


class FlakyWan(Wan):
    """Counters that cannot be read on every other call (a netlink error), and a way to
    wait until the sample loop has made a given number of reads."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reads_wanted: int) -> None:
        super().__init__()
        self.loop, self.reads, self.reads_wanted = loop, 0, reads_wanted
        self.enough = asyncio.Event()

    def counters(self) -> Counters:  # runs in a worker thread (asyncio.to_thread)
        self.reads += 1
        if self.reads == self.reads_wanted:
            self.loop.call_soon_threadsafe(self.enough.set)
        if self.reads % 2 == 1:
            raise NetError("read counters of wwan0: no such device")
        return super().counters()


def test_the_watchdog_is_marked_only_after_a_sample_that_worked(tmp_path: Path) -> None:
    """Issue 20, finding 14: a loop that runs but cannot read the counters is not progress,
    or systemd's watchdog would keep a daemon alive that meters nothing."""

    async def body() -> list[int]:
        wan = FlakyWan(asyncio.get_running_loop(), reads_wanted=5)
        usage = metering(tmp_path, FakeClock(), wan)  # type: ignore[arg-type]
        usage.bill_to(SIM_A)
        marks: list[int] = []
        task = asyncio.get_running_loop().create_task(
            usage.run(lambda: SIM_A["iccid"], 0.0, lambda: marks.append(wan.reads)))
        await asyncio.wait_for(wan.enough.wait(), 10)  # read 5 has begun: reads 1-4 are done
        task.cancel()
        usage.journal.close()
        return marks

    assert asyncio.run(body()) == [2, 4]  # reads 1 and 3 failed: marked after reads 2 and 4 only
