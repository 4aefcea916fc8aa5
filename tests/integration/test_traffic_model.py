"""The one traffic model (board/virtual/network/traffic.py) against the lab's byte source
(services.py) on loopback: what ``pocket-lab traffic`` and the trace recorder both run."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from types import SimpleNamespace

import pytest
from pytest_mock import MockerFixture

from board.virtual.network import services, traffic


async def _against_source(kind: str, seconds: float, budget: int = services.MAX_STREAM_BYTES, **extra: int) -> traffic.Load:
    server = await asyncio.start_server(services.serve_stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        load = traffic.Load("127.0.0.1", port, time.monotonic() + seconds, budget)
        args = argparse.Namespace(kind=kind, flows=extra.get("flows", 2), video_kbps=extra.get("video_kbps", 1200),
                                  bytes=budget)
        await traffic.workload(args, load, random.Random(1))
        return load
    finally:
        server.close()
        await server.wait_closed()


class VirtualTime:
    """``time.monotonic`` and ``asyncio.sleep`` for the traffic model and the byte source,
    moved only by the code under test: pacing is then checked exactly, whatever the
    machine's load (the rates on real sockets are make bench's: bench_traffic.py)."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:  # the event loop's clock, for services._paced
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def test_a_stream_is_paced_at_its_bitrate_on_an_absolute_schedule(mocker: MockerFixture) -> None:
    """The byte source writes ``kbps`` in slices of STREAM_TICK_S; a write that waits (a
    capped link) is caught up on the schedule, never lost and never bunched beyond it:
    by every write, the bytes sent are the bitrate times the time since the start, plus the
    one slice sent at once. A writer whose drain fails ends the stream (the client went)."""
    vt = VirtualTime()
    mocker.patch.object(services, "asyncio", SimpleNamespace(get_running_loop=lambda: vt, sleep=vt.sleep))
    writer = mocker.create_autospec(asyncio.StreamWriter, instance=True)
    writer.transport = mocker.create_autospec(asyncio.WriteTransport, instance=True)
    sent: list[tuple[float, int]] = []

    def write(data: bytes) -> None:
        sent.append((vt.now, len(data)))

    async def drain() -> None:
        if len(sent) == 5:
            vt.now += 0.35  # the link stalls this write for three and a half slices
        if len(sent) == 30:
            raise ConnectionResetError("the client went away")

    writer.write.side_effect = write
    writer.drain.side_effect = drain
    with pytest.raises(ConnectionResetError):
        asyncio.run(services._paced(writer, 400))
    piece = 400 * 1000 // 8 * services.STREAM_TICK_S
    assert {n for _, n in sent} == {piece}  # 5000 bytes each: 400 kbit/s in 0.1 s slices
    for i, (t, _) in enumerate(sent):
        assert t >= i * services.STREAM_TICK_S - 1e-9  # never ahead of the schedule: bytes <= rate x t + a slice
    assert [round(t, 2) for t, _ in sent[5:9]] == [0.75, 0.75, 0.75, 0.8]  # the stall caught up, then on time
    assert sent[-1][0] == pytest.approx((len(sent) - 1) * services.STREAM_TICK_S)


def test_a_stream_over_loopback_is_never_faster_than_its_bitrate() -> None:
    """On a real socket: three slices of a 400 kbit/s stream take at least two slice
    periods (the first is sent at once). One-sided, so a loaded machine cannot break it;
    the achieved rate is a figure (make bench, bench_traffic.py)."""
    piece = 400 * 1000 // 8 * services.STREAM_TICK_S
    started = time.monotonic()
    load = asyncio.run(_against_source("stream400", 60.0, budget=3 * piece))
    assert load.down >= 3 * piece
    assert time.monotonic() - started >= 2 * services.STREAM_TICK_S


def test_bulk_stops_at_its_byte_budget() -> None:
    budget = 3_000_000
    load = asyncio.run(_against_source("bulk", 30.0, budget, flows=2))
    assert budget <= load.down <= budget + 2 * traffic.READ_CHUNK


def test_video_fetches_one_segment_per_four_seconds(mocker: MockerFixture) -> None:
    """A segment of the bitrate's four seconds (+-1/6) every four seconds, back to back
    when a fetch took longer than that (the player fell behind): checked on the model's
    own clock, fetch by fetch, with an autospecced ``Load`` doing the fetching."""
    vt = VirtualTime()
    mocker.patch.object(traffic, "time", vt)
    mocker.patch.object(traffic, "asyncio", SimpleNamespace(sleep=vt.sleep))
    load = mocker.create_autospec(traffic.Load, instance=True)
    load.deadline = 1e9
    fetch_seconds = [1.0, 1.0, 6.0, 1.0, 1.0]  # the third fetch stalls past the next segment's time
    fetches: list[tuple[float, int]] = []

    async def get(nbytes: int, request: str | None = None, deadline: float | None = None) -> None:
        fetches.append((vt.now, nbytes))
        vt.now += fetch_seconds[len(fetches) - 1]

    load.get.side_effect = get
    load.done.side_effect = lambda: len(fetches) == len(fetch_seconds)
    asyncio.run(traffic.video(load, 1200, random.Random(1)))
    segment = 1200 * 1000 / 8 * traffic.SEGMENT_SECONDS
    assert all((1 - traffic.SEGMENT_JITTER) * segment <= n <= (1 + traffic.SEGMENT_JITTER) * segment
               for _, n in fetches)
    assert len({n for _, n in fetches}) > 1  # sizes vary (VBR), within the band
    assert [t for t, _ in fetches] == [0.0, 4.0, 8.0, 14.0, 16.0]  # 14: late, fetched at once; 16: on time again


def test_web_pages_have_the_recorded_library_shape() -> None:
    rng = random.Random(7)
    pages = [traffic.page_sizes(rng) for _ in range(500)]
    assert {len(p) for p in pages} == set(range(1, 7))
    sizes = [s for p in pages for s in p]
    assert min(sizes) >= 20_000 and max(sizes) < 620_000


def test_an_unreachable_source_costs_a_pause_not_a_crash(mocker: MockerFixture) -> None:
    """Nothing listens: the flow gives up after a connect failure and waits RETRY_SECONDS
    before the next try, so a bulk flow over a dead link neither crashes nor spins: over
    a 0.5 s run (shorter than one pause) it tries once, where a spinning flow would try
    thousands of times. Counted, not timed."""
    tries = mocker.spy(asyncio, "open_connection")
    load = traffic.Load("127.0.0.1", 9, time.monotonic() + 0.5, 1 << 20)  # discard port: closed
    asyncio.run(traffic.bulk(load, 1))
    assert load.down == 0 and load.done()
    assert 1 <= tries.call_count <= 2  # one, and at most one more if the pause wakes a hair early


@pytest.mark.parametrize("text", ["nope", "stream", "streamfast"])
def test_an_unknown_kind_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        traffic.kind_arg(text)
    assert traffic.kind_arg("stream128") == "stream128" and traffic.kind_arg("mixed") == "mixed"
