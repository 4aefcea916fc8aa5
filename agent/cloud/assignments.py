"""The assignment exchange: ask the cloud for a SIM, open the sealed answer, refuse replays.

A request goes out on pw/v1/<dev>/assign_request with an MQTT 5 response topic and a
fresh correlation id; the reply on pw/v1/<dev>/assignment wakes the request waiting for
that id. Without an answer within ``request_attempt`` the request is sent again under a
new id (the request or its reply may have died with a broker restart), paced so a
region does not ask in step (agent.cloud.pacing). An "ok" reply carries an envelope
signed by the platform and sealed to this device (agent.cloud.sealing); it is opened
only if its sequence is above the last one accepted (``ReplayGuard``, durable), and a
redelivery of the last one is acknowledged again, never re-applied. While the replay
state cannot be read the guard is closed: each request asks for a floor (``need_floor``)
and only a reply carrying the platform's signed floor for that very request opens it
again (agent.cloud.platformsig, docs/protocol.md 4.1).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.clock import Clock
from agent.cloud import pacing, platformsig, sealing
from agent.cloud import protocol as proto
from agent.cloud.linkconfig import CloudConfig
from agent.errors import AssignmentUnavailable, ProtocolError, SealError
from agent.sim import SimProfile

LOGGER = logging.getLogger(__name__)

UNSENT_PAUSE_S = 1.0
"""A request that could not even be queued (the session died under it): wait this long,
at most, before the next attempt, rather than spin."""


@dataclass(frozen=True)
class Assignment:
    """A verified, opened assignment. ``profile`` carries Ki/OPc: give it to the modem, then drop it."""

    assignment_id: str
    seq: int
    profile: SimProfile
    expires_at: int
    window: dict[str, Any] | None = None


PublishProps = Callable[[str, bytes, Properties], bool]
"""(topic, payload, MQTT 5 properties) -> queued? QoS 1."""


class AssignmentExchange:
    """Requests in flight by correlation id, the device's and platform's keys, the replay guard."""

    def __init__(self, config: CloudConfig, device_id: str, state_dir: Path, *, clock: Clock,
                 pacer: pacing.Pacer, publish: PublishProps, wait_connected: Callable[[float], Awaitable[bool]],
                 emit: Callable[[str, dict[str, Any]], int], reject: Callable[..., None]):
        self.config = config
        self.device_id = device_id
        self.clock = clock
        self.pacer = pacer
        self.guard = sealing.ReplayGuard(state_dir / "replay.json")
        self._device_key = sealing.load_private_x25519(config.sealing_key_file)
        self._platform_key = sealing.load_public_ed25519(config.platform_key_file)
        self._publish = publish
        self._wait_connected = wait_connected
        self._emit = emit
        self._reject = reject
        self._waiters: dict[str, asyncio.Future[proto.AssignmentReply]] = {}

    @property
    def platform_key(self) -> Ed25519PublicKey:
        """The platform's pinned public key (the inbox verifies policies with it too)."""
        return self._platform_key

    async def request(self, reason: str, *, current_iccid: str | None = None,
                      evidence: dict[str, Any] | None = None, timeout: float = 60.0,
                      avoid_plmns: list[str] | None = None) -> Assignment:
        """See CloudLink.request_assignment."""
        await asyncio.sleep(self.pacer.before_request())  # pacing: after "no capacity"
        deadline = self.clock.monotonic() + timeout
        while True:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0 or not await self._wait_connected(remaining):
                raise AssignmentUnavailable(f"no assignment within {timeout:.0f}s", reason="timeout")
            reply = await self._ask_once(reason, current_iccid, evidence,
                                         min(self.config.request_attempt, deadline - self.clock.monotonic()),
                                         avoid_plmns)
            if reply is None:  # no answer at all: the platform may be overrun; do not resend in step
                await asyncio.sleep(min(self.pacer.after_silence(), max(0.0, deadline - self.clock.monotonic())))
                continue
            if reply.status == "retry":
                delay = min(self.pacer.retry_after(reply.retry_after), max(0.0, deadline - self.clock.monotonic()))
                LOGGER.info("cloud busy: retrying assignment request in %.1fs", delay)
                await asyncio.sleep(delay)
                continue
            if reply.status == "refused":
                self.pacer.no_capacity()
                raise AssignmentUnavailable(f"cloud refused assignment: {reply.reason}", reason="refused")
            self.pacer.served()
            return self._open(reply)

    def report_result(self, assignment_id: str, ok: bool, detail: str) -> None:
        """Tell the cloud how applying it went; kept, so a redelivery is answered the same."""
        result = {"assignment_id": assignment_id, "ok": bool(ok), "detail": str(detail)[:500]}
        self.guard.record_result(assignment_id, result)
        self._emit("assignment_result", result)

    def handle_reply(self, body: dict[str, Any], topic: str, correlation: str | None = None) -> None:
        """The inbox's route for pw/v1/<dev>/assignment."""
        reply = proto.validate_assignment(body, topic)
        if correlation is not None and correlation != reply.request_id:
            raise ProtocolError("correlation data differs from request_id", topic=topic, reason="schema")
        waiter = self._waiters.get(reply.request_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)
            return
        self._late(reply, topic)

    def _late(self, reply: proto.AssignmentReply, topic: str) -> None:
        """A reply nobody waits for: a redelivery (acknowledge again) or too late (not applied)."""
        if reply.status != "ok" or reply.envelope is None:
            LOGGER.info("late %s reply to request %s ignored", reply.status, reply.request_id)
            return
        if reply.seq == self.guard.last_seq and reply.assignment_id == self.guard.last_assignment_id:
            LOGGER.info("assignment %s redelivered: acknowledged again, not re-applied", reply.assignment_id)
            if self.guard.last_result is not None:
                self._emit("assignment_result", dict(self.guard.last_result))
            return
        raise ProtocolError(f"assignment {reply.assignment_id!r} answers no pending request; not applied",
                            topic=topic, reason="unsolicited")

    async def _ask_once(self, reason: str, current_iccid: str | None, evidence: dict[str, Any] | None,
                        timeout: float, avoid_plmns: list[str] | None = None) -> proto.AssignmentReply | None:
        request_id = uuid.uuid4().hex
        body: dict[str, Any] = {"request_id": request_id, "reason": reason, "current_iccid": current_iccid,
                                "evidence": evidence or {}}
        if avoid_plmns:  # an escape from a dead carrier: a SIM on another one (docs/protocol.md 3.4)
            body["avoid_plmns"] = list(avoid_plmns)
        if self.guard.closed:
            body["need_floor"] = True
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = proto.topic(self.device_id, proto.ASSIGNMENT)
        props.CorrelationData = request_id.encode()
        props.MessageExpiryInterval = proto.REQUEST_EXPIRY_S
        fut: asyncio.Future[proto.AssignmentReply] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = fut
        try:
            if not self._publish(proto.topic(self.device_id, proto.ASSIGN_REQUEST), proto.encode(body), props):
                await asyncio.sleep(min(UNSENT_PAUSE_S, max(timeout, 0.0)))
                return None
            return await asyncio.wait_for(fut, max(timeout, 0.0))
        except TimeoutError:
            LOGGER.info("no answer to assignment request %s within %.0fs", request_id, timeout)
            return None
        finally:
            self._waiters.pop(request_id, None)

    def _open(self, reply: proto.AssignmentReply) -> Assignment:
        """Verify and open the envelope, guarding against replays; errors go upstream too."""
        topic = proto.topic(self.device_id, proto.ASSIGNMENT)
        now = self.clock.wall() if self.clock.wall_trusted() else None
        try:
            header, _ = sealing.verify_header(reply.envelope, device_id=self.device_id,
                                              platform_public=self._platform_key, now=now)
            if header["assignment_id"] != reply.assignment_id or header["seq"] != reply.seq:
                raise SealError("signed header differs from the reply's assignment id/seq", reason="mismatch")
            if self.guard.closed:
                self._reestablish(reply, topic)
            if self.guard.check(reply.assignment_id, reply.seq) == "duplicate":
                raise SealError(f"assignment {reply.assignment_id!r} was already applied", reason="duplicate")
            opened = sealing.open_envelope(header, device_id=self.device_id, device_key=self._device_key,
                                           platform_public=self._platform_key, now=now)
        except SealError as exc:
            self._reject(exc, topic, assignment_id=reply.assignment_id)
            raise
        try:
            self.guard.accept(opened.assignment_id, opened.seq)
        except SealError as exc:  # the new seq did not reach flash: the profile is not used
            self._reject(exc, topic, assignment_id=reply.assignment_id)
            raise
        LOGGER.info("assignment %s (seq %d) opened: %s", opened.assignment_id, opened.seq, opened.profile.public())
        return Assignment(opened.assignment_id, opened.seq, opened.profile, opened.expires_at, reply.window)

    def _reestablish(self, reply: proto.AssignmentReply, topic: str) -> None:
        """Open a closed replay guard with the floor the platform signed for this request
        (the reply answers a request this process sent, so its ``request_id`` is fresh)."""
        if reply.floor is None:
            raise SealError(f"replay state {self.guard.closed_because} and the cloud sent no floor",
                            reason=sealing.REPLAY_STATE_REASON)
        try:
            floor = platformsig.verify_floor(reply.floor, device_id=self.device_id, request_id=reply.request_id,
                                             public=self._platform_key, topic=topic)
        except ProtocolError as exc:
            raise SealError(str(exc), reason=exc.reason) from None
        self.guard.reestablish(floor)
