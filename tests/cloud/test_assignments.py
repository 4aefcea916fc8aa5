"""The assignment exchange without a broker: a fake cloud answers each request through the
exchange's own reply route, with envelopes sealed the way the platform seals them."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from paho.mqtt.properties import Properties

from agent.clock import FakeClock
from agent.cloud import pacing, sealing
from agent.cloud import protocol as proto
from agent.cloud.assignments import AssignmentExchange
from agent.cloud.linkconfig import CloudConfig
from agent.errors import AssignmentUnavailable, ProtocolError, SealError
from tests.cloud.conftest import run
from tests.cloud.test_sealing import PROFILE

DEVICE = "dev-a"
TOPIC = proto.topic(DEVICE, proto.ASSIGNMENT)


class FakeCloud:
    """Answers the n-th request with ``answers[n]`` (a function of the request id), on the next loop pass."""

    def __init__(self, tmp_path: Path, answers: list[Any]):
        self.device_key = X25519PrivateKey.generate()
        self.platform_key = Ed25519PrivateKey.generate()
        (tmp_path / "sealing.key").write_bytes(sealing.private_pem(self.device_key))
        (tmp_path / "platform.pub").write_bytes(sealing.public_pem(self.platform_key.public_key()))
        self.answers = answers
        self.requests: list[tuple[dict[str, Any], Properties]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.rejects: list[tuple[str, dict[str, Any]]] = []
        self.connected = True
        self.clock = FakeClock()
        config = CloudConfig(device_id=DEVICE, host="unused", port=0, ca_file=tmp_path / "ca.pem",
                             cert_file=tmp_path / "cert.pem", key_file=tmp_path / "key.pem",
                             sealing_key_file=tmp_path / "sealing.key", platform_key_file=tmp_path / "platform.pub",
                             request_attempt=1.0)
        policy = pacing.PacingPolicy(request_window_s=0.0, backoff_base_s=0.01, backoff_cap_s=0.05)
        self.exchange = AssignmentExchange(config, DEVICE, tmp_path, clock=self.clock,
                                           pacer=pacing.Pacer(policy, random.Random(1)), publish=self.publish,
                                           wait_connected=self.wait_connected, emit=self.emit, reject=self.reject)

    async def wait_connected(self, timeout: float) -> bool:
        return self.connected

    def publish(self, topic: str, payload: bytes, props: Properties) -> bool:
        body = json.loads(payload)
        self.requests.append((body, props))
        answer = self.answers[len(self.requests) - 1]
        if answer is not None:
            reply = answer(body["request_id"])
            asyncio.get_running_loop().call_soon(self.exchange.handle_reply, reply, TOPIC,
                                                 props.CorrelationData.decode())
        return True

    def emit(self, kind: str, data: dict[str, Any]) -> int:
        self.events.append((kind, data))
        return len(self.events)

    def reject(self, exc: ProtocolError, topic: str, **extra: Any) -> None:
        self.rejects.append((exc.reason, extra))

    def ok(self, assignment_id: str = "a-1", seq: int = 1) -> Any:
        now = int(self.clock.wall())
        envelope = sealing.seal(PROFILE, device_id=DEVICE, device_public=self.device_key.public_key(),
                                platform_key=self.platform_key, assignment_id=assignment_id, seq=seq,
                                issued_at=now - 10, expires_at=now + 600)
        return lambda rid: {"status": "ok", "request_id": rid, "assignment_id": assignment_id, "seq": seq,
                            "window": {"not_before": now, "not_after": now + 600}, "envelope": envelope}


def retry(after: float) -> Any:
    return lambda rid: {"status": "retry", "request_id": rid, "retry_after": after}


def test_an_answered_request_opens_the_profile_and_guards_its_seq(tmp_path: Path) -> None:
    async def body() -> None:
        cloud = FakeCloud(tmp_path, [])
        cloud.answers = [cloud.ok("a-1", 5)]
        a = await cloud.exchange.request("swap", current_iccid="8981", timeout=5)
        assert a.assignment_id == "a-1" and a.seq == 5 and a.profile.iccid == PROFILE.iccid
        request, props = cloud.requests[0]
        assert request["reason"] == "swap" and request["current_iccid"] == "8981"
        assert props.ResponseTopic == TOPIC and props.CorrelationData == request["request_id"].encode()
        assert cloud.exchange.guard.last_seq == 5
    run(body())


def test_the_same_envelope_again_is_refused_and_reported(tmp_path: Path) -> None:
    async def body() -> None:
        cloud = FakeCloud(tmp_path, [])
        answer = cloud.ok("a-1", 5)
        cloud.answers = [answer, answer]
        await cloud.exchange.request("swap", timeout=5)
        with pytest.raises(SealError) as err:
            await cloud.exchange.request("swap", timeout=5)
        assert err.value.reason == "duplicate"
        assert cloud.rejects == [("duplicate", {"assignment_id": "a-1"})]
    run(body())


def test_busy_then_served(tmp_path: Path) -> None:
    async def body() -> None:
        cloud = FakeCloud(tmp_path, [])
        cloud.answers = [retry(0.0), retry(0.0), cloud.ok()]
        a = await cloud.exchange.request("swap", timeout=5)
        assert a.assignment_id == "a-1" and len(cloud.requests) == 3
        ids = {r["request_id"] for r, _ in cloud.requests}
        assert len(ids) == 3, "each attempt has its own correlation id"
    run(body())


def test_refused_and_unreachable_are_unavailable_with_their_reason(tmp_path: Path) -> None:
    async def body() -> None:
        cloud = FakeCloud(tmp_path, [lambda rid: {"status": "refused", "request_id": rid, "reason": "empty"}])
        with pytest.raises(AssignmentUnavailable) as err:
            await cloud.exchange.request("swap", timeout=5)
        assert err.value.reason == "refused"
        cloud.connected = False
        with pytest.raises(AssignmentUnavailable) as err:
            await cloud.exchange.request("swap", timeout=5)
        assert err.value.reason == "timeout" and len(cloud.requests) == 1
    run(body())


def test_correlation_data_must_match_the_request_id(tmp_path: Path) -> None:
    cloud = FakeCloud(tmp_path, [])
    with pytest.raises(ProtocolError) as err:
        cloud.exchange.handle_reply({"status": "retry", "request_id": "r1", "retry_after": 1}, TOPIC, "r2")
    assert err.value.reason == "schema"


def test_a_late_redelivery_is_acknowledged_again_and_an_unsolicited_one_refused(tmp_path: Path) -> None:
    async def body() -> None:
        cloud = FakeCloud(tmp_path, [])
        answer = cloud.ok("a-1", 5)
        cloud.answers = [answer]
        await cloud.exchange.request("swap", timeout=5)
        cloud.exchange.report_result("a-1", True, "applied")
        cloud.exchange.handle_reply(answer("gone"), TOPIC)  # nobody waits for "gone": a redelivery
        results = [data for kind, data in cloud.events if kind == "assignment_result"]
        assert results == [{"assignment_id": "a-1", "ok": True, "detail": "applied"}] * 2
        with pytest.raises(ProtocolError) as err:
            cloud.exchange.handle_reply(cloud.ok("a-2", 6)("gone"), TOPIC)
        assert err.value.reason == "unsolicited" and cloud.exchange.guard.last_seq == 5
    run(body())
