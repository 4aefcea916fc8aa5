"""agent/core/metering.py without a supervisor: the SIM in use's bytes and the user's
throughput for the swap policy, and a reopened journal resuming from its baseline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.clock import FakeClock
from agent.core.metering import Metering
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
