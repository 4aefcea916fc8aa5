"""The reliable streams without a broker: a fake publish function records what would be sent.

What the real-broker tests (test_link.py) show end to end, checked here step by step:
order, the window, resends after an ack timeout or a new session, acks, and the
stand-in for an unsendable record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.clock import FakeClock
from agent.cloud import protocol as proto
from agent.cloud.linkconfig import LinkStats
from agent.cloud.outbox import Outbox
from agent.cloud.streams import UNWRITTEN_EVENTS_MAX, ReliableStreams
from agent.errors import JournalError, ProtocolError
from tests.cloud import events

DEVICE = "dev-a"
ACK_TIMEOUT = 30.0
ICCID = "8981100000000000001"


class FakeBroker:
    """The publish function: records (topic, decoded payload); ``accept`` False refuses like a full queue."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.accept = True
        self.live = True

    def publish(self, topic: str, payload: bytes) -> bool:
        if not self.accept:
            return False
        self.sent.append((topic, json.loads(payload)))
        return True

    def seqs(self, stream: str = "usage") -> list[int]:
        return [p["seq"] for _, p in self.sent if p["stream"] == stream]


@pytest.fixture
def fake() -> FakeBroker:
    return FakeBroker()


def make(tmp_path: Path, fake: FakeBroker, *, records: int = 0, window: int = 3
         ) -> tuple[ReliableStreams, Outbox, FakeClock]:
    usage = Outbox(tmp_path / "usage.outbox", "usage")
    for i in range(records):
        usage.put({"n": i + 1})
    clock = FakeClock()
    streams = ReliableStreams(DEVICE, [usage], Outbox(tmp_path / "events.outbox", proto.EVENT), window=window,
                              ack_timeout=ACK_TIMEOUT, clock=clock, publish=fake.publish,
                              is_live=lambda: fake.live, stats=LinkStats())
    return streams, usage, clock


def ack(streams: ReliableStreams, stream: str, upto: int) -> None:
    """The cloud's ack, naming the epoch the source numbers in (as the reference cloud does)."""
    source = streams.sources.get(stream)
    epoch = source.epoch_of(max(upto, 1))[0] if source is not None else ""  # type: ignore[attr-defined]
    streams.handle_ack({"stream": stream, "upto": upto, **({"epoch": epoch} if epoch else {})},
                       proto.topic(DEVICE, proto.ACK))


def test_drain_sends_in_order_within_the_window(tmp_path: Path, fake: FakeBroker) -> None:
    streams, _, _ = make(tmp_path, fake, records=5, window=3)
    streams.drain()
    assert fake.seqs() == [1, 2, 3]
    topic, payload = fake.sent[0]
    assert topic == proto.topic(DEVICE, "usage")
    assert payload["base"] == 1 and payload["body"] == {"n": 1}
    streams.drain()
    assert fake.seqs() == [1, 2, 3], "records in flight are not sent twice"
    assert streams.sent("usage") == 3


def test_ack_forgets_and_opens_the_window(tmp_path: Path, fake: FakeBroker) -> None:
    streams, usage, _ = make(tmp_path, fake, records=5, window=3)
    streams.drain()
    ack(streams, "usage", 2)
    assert len(usage) == 3
    assert fake.seqs() == [1, 2, 3, 4, 5]
    assert [p["base"] for _, p in fake.sent[3:]] == [3, 3], "base: the lowest seq the device still holds"


def test_nothing_is_sent_while_no_session_is_live(tmp_path: Path, fake: FakeBroker) -> None:
    streams, _, _ = make(tmp_path, fake, records=2)
    fake.live = False
    streams.drain()
    assert fake.sent == [] and streams.sent("usage") == 0


def test_a_refused_publish_stops_the_stream_and_the_next_drain_resumes(tmp_path: Path, fake: FakeBroker) -> None:
    streams, _, _ = make(tmp_path, fake, records=3)
    fake.accept = False
    streams.drain()
    assert streams.sent("usage") == 0
    fake.accept = True
    streams.drain()
    assert fake.seqs() == [1, 2, 3]


def test_no_ack_within_the_timeout_sends_unacknowledged_records_again(tmp_path: Path, fake: FakeBroker) -> None:
    streams, _, clock = make(tmp_path, fake, records=2)
    streams.drain()
    clock.advance(ACK_TIMEOUT - 1)
    streams.check_ack_timeouts()
    assert fake.seqs() == [1, 2] and streams.stats.resends == 0
    clock.advance(2)
    streams.check_ack_timeouts()
    assert fake.seqs() == [1, 2, 1, 2] and streams.stats.resends == 1


def test_an_ack_restarts_the_timeout(tmp_path: Path, fake: FakeBroker) -> None:
    streams, _, clock = make(tmp_path, fake, records=4, window=4)
    streams.drain()
    clock.advance(ACK_TIMEOUT - 1)
    ack(streams, "usage", 1)
    clock.advance(ACK_TIMEOUT - 1)
    streams.check_ack_timeouts()
    assert streams.stats.resends == 0, "progress within the timeout: no resend"
    ack(streams, "usage", 4)
    clock.advance(10 * ACK_TIMEOUT)
    streams.check_ack_timeouts()
    assert streams.stats.resends == 0 and fake.seqs() == [1, 2, 3, 4], "nothing pending: nothing to resend"


def test_a_new_session_sends_everything_pending_again(tmp_path: Path, fake: FakeBroker) -> None:
    streams, _, _ = make(tmp_path, fake, records=2)
    streams.drain()
    ack(streams, "usage", 1)
    streams.restart()
    streams.drain()
    assert fake.seqs() == [1, 2, 2]


def test_ack_for_an_unknown_stream_is_a_protocol_error(tmp_path: Path, fake: FakeBroker) -> None:
    streams, usage, _ = make(tmp_path, fake, records=1)
    with pytest.raises(ProtocolError) as err:
        ack(streams, "nope", 1)
    assert err.value.reason == "schema" and len(usage) == 1


def test_an_unsendable_record_goes_as_a_stand_in_the_cloud_can_ack_past(tmp_path: Path, fake: FakeBroker) -> None:
    streams, usage, _ = make(tmp_path, fake)
    usage.put({"n": 1})
    usage.put({"blob": "x" * proto.MAX_MESSAGE_BYTES})
    usage.put({"n": 3})
    streams.drain()
    assert fake.seqs() == [1, 2, 3]
    stand_in = fake.sent[1][1]
    assert stand_in["body"] == {} and stand_in["rejected"] == "oversized"


def test_emit_makes_the_event_durable_then_sends_it_on_its_kinds_topic(tmp_path: Path, fake: FakeBroker) -> None:
    streams, _, _ = make(tmp_path, fake)
    fake.live = False
    seq = streams.emit("health", events.health("throttled", ICCID))
    assert seq == 1 and len(streams.events) == 1 and fake.sent == []
    fake.live = True
    streams.drain()
    topic, payload = fake.sent[0]
    assert topic == proto.topic(DEVICE, "event/health")
    assert payload["stream"] == proto.EVENT and payload["body"]["data"]["state"] == "throttled"
    assert payload["body"]["at"].endswith("+09:00")


def test_emit_refuses_a_body_the_contract_refuses_before_it_is_durable(tmp_path: Path, fake: FakeBroker) -> None:
    streams, _, _ = make(tmp_path, fake)
    with pytest.raises(ProtocolError) as err:
        streams.emit("health", {"state": "no such state"})
    assert err.value.reason == "schema"
    assert len(streams.events) == 0 and fake.sent == []


class DiskFull:
    """The events outbox's writes refused as a full state partition refuses them (ENOSPC
    from the journal's flush) while ``full``; the real Outbox.put otherwise."""

    def __init__(self, mocker: Any) -> None:
        self.full = True
        real = Outbox.put

        def put(outbox: Outbox, body: dict[str, Any]) -> int:
            if self.full and outbox.stream == proto.EVENT:
                raise JournalError("cannot append to events.outbox: No space left on device")
            return real(outbox, body)

        mocker.patch.object(Outbox, "put", autospec=True, side_effect=put)


def test_a_full_disk_holds_events_in_memory_and_writes_them_in_order_once_it_takes_writes(
        tmp_path: Path, fake: FakeBroker, mocker: Any) -> None:
    streams, _, _ = make(tmp_path, fake)
    disk = DiskFull(mocker)
    assert streams.emit("health", events.health("throttled", ICCID)) == 0  # not durable: no seq
    assert streams.emit("health", events.health("congested", ICCID)) == 0
    assert streams.stats.unwritten == 2 and len(streams.events) == 0 and fake.sent == []
    streams.check_ack_timeouts()  # a watchdog tick while still full: nothing lost, nothing sent
    assert streams.stats.unwritten == 2 and fake.sent == []
    disk.full = False
    streams.check_ack_timeouts()  # the next tick after the disk has room
    assert streams.stats.unwritten == 0 and len(streams.events) == 2
    assert [(p["seq"], p["body"]["data"]["state"]) for _, p in fake.sent] == [(1, "throttled"), (2, "congested")]
    assert streams.emit("health", events.health("ok", ICCID)) == 3  # and on, in order


def test_a_new_event_waits_behind_the_held_ones(tmp_path: Path, fake: FakeBroker, mocker: Any) -> None:
    streams, _, _ = make(tmp_path, fake)
    disk = DiskFull(mocker)
    streams.emit("health", events.health("throttled", ICCID))
    disk.full = False
    assert streams.emit("health", events.health("ok", ICCID)) == 2  # the held one first, as seq 1
    assert [p["body"]["data"]["state"] for _, p in fake.sent] == ["throttled", "ok"]


def test_held_events_are_bounded_and_the_loss_is_counted(tmp_path: Path, fake: FakeBroker, mocker: Any) -> None:
    streams, _, _ = make(tmp_path, fake)
    disk = DiskFull(mocker)
    states = ["throttled", "congested"]
    for i in range(UNWRITTEN_EVENTS_MAX + 3):
        streams.emit("health", events.health(states[i % 2], ICCID))
    assert streams.stats.unwritten == UNWRITTEN_EVENTS_MAX and streams.stats.unwritten_dropped == 3
    disk.full = False
    streams.check_ack_timeouts()
    assert len(streams.events) == UNWRITTEN_EVENTS_MAX
    assert fake.sent[0][1]["body"]["data"]["state"] == states[3 % 2]  # the three oldest went
