"""The inbox without a broker: routing by leaf, rejects (rate-limited), command de-dup,
policy versions, and callbacks run as owned tasks. Messages are paho MQTTMessage objects
built here, as the session would hand them over."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.clock import FakeClock
from agent.cloud import pacing, platformsig
from agent.cloud import protocol as proto
from agent.cloud.inbox import ERROR_EVENTS_PER_WINDOW, ERROR_WINDOW_S, LINK_LEAVES, Inbox, Rejects
from agent.cloud.linkconfig import LinkStats
from agent.errors import ProtocolError
from tests.cloud.conftest import run
from tests.cloud.test_tasks import forever

DEVICE = "dev-a"
PLATFORM = Ed25519PrivateKey.generate()
"""The platform key the rig's inbox trusts."""


def signed(policy: dict[str, Any], device: str = DEVICE, key: Ed25519PrivateKey = PLATFORM) -> dict[str, Any]:
    return platformsig.sign_policy(policy, device_id=device, key=key)


class Rig:
    """An inbox whose ack and assignment routes, and whose error events, are recorded."""

    def __init__(self, state_dir: Path):
        self.clock = FakeClock()
        self.stats = LinkStats()
        self.pacer = pacing.Pacer(pacing.PacingPolicy(), random.Random(1))
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.acks: list[dict[str, Any]] = []
        self.replies: list[tuple[dict[str, Any], str | None]] = []
        self.inbox = self.reopen(state_dir)

    def reopen(self, state_dir: Path) -> Inbox:
        """A new Inbox on the same state directory (an agent restart)."""
        return Inbox(DEVICE, state_dir, clock=self.clock, pacer=self.pacer,
                     rejects=Rejects(self.clock, self.stats, self.emit),
                     on_ack=lambda body, topic: self.acks.append(body),
                     on_assignment=lambda body, topic, corr: self.replies.append((body, corr)),
                     platform_key=PLATFORM.public_key())

    def emit(self, kind: str, data: dict[str, Any]) -> int:
        self.events.append((kind, data))
        return len(self.events)

    def errors(self) -> list[dict[str, Any]]:
        return [data for kind, data in self.events if kind == "error"]


def message(leaf: str, body: dict[str, Any] | bytes, device: str = DEVICE, correlation: bytes | None = None
            ) -> mqtt.MQTTMessage:
    msg = mqtt.MQTTMessage(topic=proto.topic(device, leaf).encode())
    msg.payload = body if isinstance(body, bytes) else proto.encode(body)
    if correlation is not None:
        msg.properties = Properties(PacketTypes.PUBLISH)
        msg.properties.CorrelationData = correlation
    return msg


def command(command_id: str, **fields: Any) -> mqtt.MQTTMessage:
    return message(proto.COMMAND, {"command_id": command_id, "action": "report", **fields})


def test_each_leaf_goes_to_its_route(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.inbox.deliver(message(proto.ACK, {"stream": "usage", "upto": 3}))
    rig.inbox.deliver(message(proto.ASSIGNMENT, {"status": "retry"}, correlation=b"r1"))
    assert [a["upto"] for a in rig.acks] == [3]
    assert rig.replies[0][1] == "r1", "the assignment route gets the correlation data"
    assert rig.errors() == [] and rig.stats.rejected == 0


def test_a_message_for_another_device_or_an_unknown_leaf_is_rejected_upstream(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.inbox.deliver(message(proto.ACK, {"stream": "usage", "upto": 3}, device="dev-b"))
    rig.inbox.deliver(message("nothing-here", {}))
    rig.inbox.deliver(message(proto.COMMAND, b"not json"))
    assert rig.acks == [] and rig.stats.rejected == 3
    assert [e["reason"] for e in rig.errors()] == ["topic", "topic", "malformed"]


def test_an_added_leaf_is_subscribed_and_routed_and_may_reject(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    got: list[dict[str, Any]] = []

    def on_cert(body: dict[str, Any]) -> None:
        if "cert" not in body:
            raise ProtocolError("no cert", reason="schema")
        got.append(body)
    rig.inbox.add(proto.CERT, on_cert)
    assert rig.inbox.leaves() == (*LINK_LEAVES, proto.CERT)
    rig.inbox.deliver(message(proto.CERT, {"cert": "pem"}))
    rig.inbox.deliver(message(proto.CERT, {}))
    assert got == [{"v": proto.VERSION, "cert": "pem"}]
    assert [e["reason"] for e in rig.errors()] == ["schema"]


def test_a_crashing_route_is_an_internal_reject_not_a_crash(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.inbox.add("boom", lambda body: 1 / 0)
    rig.inbox.deliver(message("boom", {}))
    assert [e["reason"] for e in rig.errors()] == ["internal"]


def test_error_events_are_rate_limited_and_the_next_one_counts_the_suppressed(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    for _ in range(ERROR_EVENTS_PER_WINDOW + 5):
        rig.inbox.deliver(message("nothing-here", {}))
    assert len(rig.errors()) == ERROR_EVENTS_PER_WINDOW and rig.stats.rejected == ERROR_EVENTS_PER_WINDOW + 5
    rig.clock.advance(ERROR_WINDOW_S)
    rig.inbox.deliver(message("nothing-here", {}))
    assert rig.errors()[-1]["suppressed_before"] == 5


def test_a_command_is_handled_once_even_across_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    seen: list[str] = []
    rig.inbox.on_command(lambda cmd: seen.append(cmd.command_id))
    rig.inbox.deliver(command("c1"))
    rig.inbox.deliver(command("c1"))
    again = rig.reopen(tmp_path)
    again.on_command(lambda cmd: seen.append(cmd.command_id))
    again.deliver(command("c1"))
    again.deliver(command("c2"))
    assert seen == ["c1", "c2"]


def test_an_expired_command_is_rejected(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    seen: list[str] = []
    rig.inbox.on_command(lambda cmd: seen.append(cmd.command_id))
    rig.inbox.deliver(command("old", expires_at=rig.clock.wall() - 1))
    assert seen == [] and [e["reason"] for e in rig.errors()] == ["expired"]


def test_only_a_newer_policy_is_applied_and_its_version_survives_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    applied: list[int] = []
    rig.inbox.on_policy(lambda policy: applied.append(policy["version"]))
    for version in (3, 3, 2, 4):
        rig.inbox.deliver(message(proto.POLICY, signed({"version": version})))
    again = rig.reopen(tmp_path)
    again.on_policy(lambda policy: applied.append(policy["version"]))
    again.deliver(message(proto.POLICY, signed({"version": 4})))
    again.deliver(message(proto.POLICY, signed({"version": 5})))
    assert applied == [3, 4, 5]


def test_a_policys_pacing_is_in_force_before_callbacks_see_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    caps: list[float] = []
    rig.inbox.on_policy(lambda policy: caps.append(rig.pacer.policy.backoff_cap_s))
    rig.inbox.deliver(message(proto.POLICY, signed({"version": 2, "pacing": {"backoff_cap_s": 600}})))
    assert caps == [600] and pacing.load(tmp_path, pacing.PacingPolicy()).backoff_cap_s == 600


def test_an_async_command_callback_runs_as_an_owned_task_cancelled_on_stop(tmp_path: Path) -> None:
    async def body() -> None:
        rig = Rig(tmp_path)
        started, cancelled = asyncio.Event(), []
        rig.inbox.on_command(lambda cmd: forever(started, cancelled))
        rig.inbox.deliver(command("c1"))
        await started.wait()
        assert len(rig.inbox.tasks.pending()) == 1
        await rig.inbox.stop()
        assert cancelled == [True] and rig.inbox.tasks.pending() == []
    run(body())


def test_a_failing_callback_does_not_stop_the_others(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    seen: list[str] = []
    rig.inbox.on_command(lambda cmd: 1 / 0)
    rig.inbox.on_command(lambda cmd: seen.append(cmd.command_id))
    rig.inbox.deliver(command("c1"))
    assert seen == ["c1"] and rig.errors() == []


# --- signed policies (issue 20, finding 5) -------------------------------------------

def test_a_policy_the_platform_did_not_sign_for_this_device_is_refused_and_reported(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    applied: list[Any] = []
    rig.inbox.on_policy(applied.append)
    tampered = signed({"version": 3, "max_per_hour": 6})
    tampered["max_per_hour"] = 30
    for body in ({"version": 3, "max_per_hour": 30},                      # unsigned
                 signed({"version": 3}, key=Ed25519PrivateKey.generate()),  # someone else's key
                 tampered,                                                  # signed, then edited
                 {**signed({"version": 3}), "sig": "not base64!"},
                 signed({"version": 3}, device="dev-b")):                   # another device's policy
        rig.inbox.deliver(message(proto.POLICY, body))
    assert applied == []
    assert [e["reason"] for e in rig.errors()] == ["signature"] * 4 + ["wrong_device"]
    rig.inbox.deliver(message(proto.POLICY, signed({"version": 3})))
    assert [p["version"] for p in applied] == [3] and "sig" not in applied[0]


def test_a_set_policy_command_needs_a_signed_policy_too(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    seen: list[Any] = []
    rig.inbox.on_command(seen.append)
    rig.inbox.deliver(message(proto.COMMAND, {"command_id": "c1", "action": "set_policy",
                                              "policy": {"version": 1, "pacing": {"backoff_cap_s": 600}}}))
    assert seen == [] and [e["reason"] for e in rig.errors()] == ["signature"]
    assert rig.pacer.policy.backoff_cap_s != 600
    rig.inbox.deliver(message(proto.COMMAND, {"command_id": "c2", "action": "set_policy",
                                              "policy": signed({"version": 1, "pacing": {"backoff_cap_s": 600}})}))
    assert [c.command_id for c in seen] == ["c2"] and "sig" not in seen[0].policy
    assert rig.pacer.policy.backoff_cap_s == 600


def test_policy_versions_are_bounded_so_no_policy_freezes_the_next(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    applied: list[int] = []
    rig.inbox.on_policy(lambda policy: applied.append(policy["version"]))
    for version in (2**62, platformsig.MAX_POLICY_VERSION + 1, platformsig.MAX_VERSION_STEP + 1):
        rig.inbox.deliver(message(proto.POLICY, signed({"version": version})))
    rig.inbox.deliver(message(proto.POLICY, signed({"version": 7})))
    rig.inbox.deliver(message(proto.POLICY, signed({"version": 7 + platformsig.MAX_VERSION_STEP})))
    assert applied == [7, 7 + platformsig.MAX_VERSION_STEP]
    assert [e["reason"] for e in rig.errors()] == ["policy_bounds"] * 3
