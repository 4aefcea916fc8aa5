"""The contract's validators: every message shape in docs/protocol.md, and what they refuse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent.cloud import protocol as proto
from agent.cloud.backoff import Backoff
from agent.errors import ProtocolError
from tests.cloud import events

USAGE = {"iccid": "8981100000001000019", "imsi": "440100000100001", "day": "2026-01-31", "month": "2026-01",
         "tz": "+09:00", "mcc": ["440"], "rx_bytes": 123456, "tx_bytes": 7890,
         "start": "2026-01-31T23:00:00+09:00", "end": "2026-01-31T23:59:59+09:00"}


def test_encode_decode_roundtrip_stamps_version() -> None:
    body = proto.decode(proto.encode({"stream": "usage", "seq": 1, "base": 1, "body": USAGE}))
    assert body["v"] == proto.VERSION
    assert proto.validate_record(body) == ("usage", 1, 1, USAGE)


@pytest.mark.parametrize("payload, reason", [
    (b"{not json", "malformed"),
    (b"\xff\xfe", "malformed"),
    (b"[1, 2]", "malformed"),
    (b'{"v": 2}', "version"),
    (b'{"x": 1}', "version"),
    (b'{"v": 1, "pad": "' + b"x" * proto.MAX_MESSAGE_BYTES + b'"}', "oversized"),
])
def test_decode_refuses_with_reason_and_excerpt(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as err:
        proto.decode(payload, "pw/v1/dev-a/command")
    assert err.value.reason == reason and err.value.topic == "pw/v1/dev-a/command"
    assert len(str(err.value)) < 300  # an excerpt, not the whole payload


@pytest.mark.parametrize("change", [
    {"rx_bytes": -1}, {"rx_bytes": 1.5}, {"rx_bytes": True}, {"tx_bytes": "12"}, {"iccid": "1234"},
    {"imsi": "abc"}, {"day": "2026-1-31"}, {"month": "2026-02"}, {"tz": "JST"}, {"mcc": []}, {"mcc": ["44"]},
    {"extra": 1}, {"start": None},
])
def test_usage_shape_is_exact(change: dict) -> None:
    with pytest.raises(ProtocolError) as err:
        proto.validate_usage({**USAGE, **change})
    assert err.value.reason == "schema"


def test_usage_missing_field_refused() -> None:
    body = dict(USAGE)
    del body["end"]
    with pytest.raises(ProtocolError, match="missing field 'end'"):
        proto.validate_usage(body)


def test_event_kinds_and_minimum_fields() -> None:
    ok = {"kind": "health", "at": "2026-01-01T00:00:00+09:00",
          "data": events.health("throttled", "8981100000001000019")}
    assert proto.validate_event(ok) == ok
    for bad in ({**ok, "kind": "party"}, {**ok, "data": {}}, {**ok, "data": []}, {**ok, "extra": 1}):
        with pytest.raises(ProtocolError):
            proto.validate_event(bad)


@pytest.mark.parametrize("change, why", [
    ({"iccid": None}, "must name the SIM"),
    ({"kbps": None}, "must name the SIM"),
    ({"plmn": "LAB MOBILE"}, "'plmn' is malformed"),
    ({"since": 18.3}, "'since' has type float"),
    ({"since": "2026-01-01T00:00:00"}, "'since' is malformed"),
    ({"since": None}, "null while the clock is trusted"),
    ({"rate_kbps": 128}, "unexpected field 'rate_kbps'"),
    ({"sim": {"iccid": "8981100000001000019"}}, "unexpected field 'sim'"),
    ({"mechanism": "magic"}, "'mechanism' is not one of"),
    ({"age_s": -1}, "below"),
    ({"clock_trusted": "yes"}, "'clock_trusted' has type str"),
])
def test_health_event_is_the_contracts_words(change: dict, why: str) -> None:
    """The 2020 gap: a throttled report the platform cannot read is refused, with the reason."""
    data = {**events.health("throttled", "8981100000001000019"), **change}
    with pytest.raises(ProtocolError, match=re.escape(why)) as err:
        proto.validate_event({"kind": "health", "at": "2026-01-01T00:00:00+09:00", "data": data})
    assert err.value.reason == "schema"


def test_untrusted_clock_health_event_has_no_since_but_an_age() -> None:
    data = events.health("throttled", "8981100000001000019", since=None, clock_trusted=False, age_s=12.5)
    assert proto.validate_event({"kind": "health", "at": "1970-01-01T09:00:00+09:00", "data": data})


def test_assignment_replies() -> None:
    r = proto.validate_assignment({"status": "retry", "request_id": "r1", "retry_after": 5})
    assert (r.status, r.retry_after) == ("retry", 5.0)
    with pytest.raises(ProtocolError):
        proto.validate_assignment({"status": "retry", "request_id": "r1", "retry_after": 1e9})
    with pytest.raises(ProtocolError):
        proto.validate_assignment({"status": "ok", "request_id": "r1", "assignment_id": "a", "seq": 1})


def test_commands() -> None:
    cmd = proto.validate_command({"command_id": "c1", "action": "swap", "window": {"not_before": 1, "not_after": 2},
                                  "expires_at": 3})
    assert (cmd.action, cmd.not_before, cmd.not_after, cmd.expires_at) == ("swap", 1, 2, 3)
    for bad in ({"command_id": "c", "action": "selfdestruct"}, {"command_id": "c", "action": "set_policy"},
                {"action": "report"}, {"command_id": "c", "action": "swap", "window": {"not_before": "soon"}}):
        with pytest.raises(ProtocolError):
            proto.validate_command(bad)


def test_topics() -> None:
    assert proto.stream_topic("dev-a", "event", {"kind": "outage"}) == "pw/v1/dev-a/event/outage"
    assert proto.parse_topic("pw/v1/dev-a/event/health") == proto.ParsedTopic("dev-a", "event/health")
    for bad in ("pw/v2/dev-a/state", "pw/v1/+/state", "x"):
        with pytest.raises(ProtocolError):
            proto.parse_topic(bad)


def test_encode_refuses_oversized() -> None:
    with pytest.raises(ProtocolError):
        proto.encode({"pad": "x" * proto.MAX_MESSAGE_BYTES})


def test_backoff_full_jitter_bounds() -> None:
    import random
    b = Backoff(base=1.0, cap=8.0, first_delay_max=3.0, rng=random.Random(1))
    ceilings = []
    for _ in range(8):
        ceilings.append(b.ceiling())
        assert 0 <= b.next_delay() <= 8.0
    assert ceilings == [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(0 <= b.first_delay() <= 3.0 for _ in range(100))
    b.reset()
    assert b.ceiling() == 1.0
    delays = [Backoff(cap=100.0, rng=random.Random(i)).next_delay() for i in range(200)]
    assert 0.3 < sum(delays) / len(delays) < 0.7  # uniform over [0, 1]: not all at the ceiling


DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
EXAMPLE_RE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", re.DOTALL)


def doc_examples() -> dict[str, list[dict]]:
    """``<!-- example: NAME -->`` followed by a json code block, for every NAME in the doc."""
    out: dict[str, list[dict]] = {}
    for name, text in EXAMPLE_RE.findall(DOC.read_text()):
        out.setdefault(name, []).append(json.loads(text))
    return out


def test_doc_examples_validate() -> None:
    """Every JSON example in docs/protocol.md tagged with a message name passes its validator."""
    validators = {"usage": proto.validate_record, "event": proto.validate_record, "state": proto.validate_state,
                  "request": proto.validate_request, "assignment": proto.validate_assignment,
                  "command": proto.validate_command, "policy": proto.validate_policy, "ack": proto.validate_ack}
    found = doc_examples()
    assert set(found) >= set(validators)
    for name, bodies in found.items():
        for body in bodies:
            assert body["v"] == proto.VERSION
            if name in validators:
                validators[name](body)
            json.dumps(body)
