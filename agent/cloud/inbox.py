"""The inbox: what arrives from the cloud, decoded, validated and routed by topic leaf.

Inbound messages are decoded and validated (agent.cloud.protocol) before use; a bad one
is logged, answered with an "error" event upstream and dropped (``Rejects``, rate-limited
so a flood of bad messages cannot become a flood of fsyncs and uplink traffic).
Commands are de-duplicated by id (QoS 1 redelivers) and policies applied only when their
version is newer; both survive a restart in ``inbound.json``. A policy, retained or in a
``set_policy`` command, is used only if the platform signed it for this device
(agent.cloud.platformsig; issue 20): whoever can merely publish on the device's topics
cannot change its limits or pin a technician key. Its version is bounded, so not even a
signed mistake freezes later policies. A command's or policy's pacing is adopted here,
before any callback sees it, so the next reconnect already follows it.

The routing table is fixed for the link's own leaves (ack, assignment, command,
policy); other modules add theirs (``add``: certificate renewal, issue 13). Callbacks
that return an awaitable run as tasks the inbox owns (agent.cloud.tasks).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import store
from agent.clock import Clock
from agent.cloud import pacing, platformsig
from agent.cloud import protocol as proto
from agent.cloud.linkconfig import LinkStats
from agent.cloud.tasks import TaskOwner
from agent.errors import AgentError, ProtocolError
from agent.plans.update import parse_update

LOGGER = logging.getLogger(__name__)

SEEN_COMMANDS = 64
"""Command ids remembered for de-duplicating QoS 1 redeliveries (commands are rare)."""

ERROR_WINDOW_S = 60.0
ERROR_EVENTS_PER_WINDOW = 20
"""At most 20 error events (and warning lines) per minute: a flood of bad messages,
buggy or hostile, must not turn into a flood of fsyncs and uplink traffic. The next
event reports how many were suppressed (``suppressed_before``)."""

LINK_LEAVES = (proto.ACK, proto.ASSIGNMENT, proto.COMMAND, proto.POLICY)
"""Leaves the link itself subscribes to (cloud -> device)."""

Emit = Callable[[str, dict[str, Any]], int]
"""Queue a durable event (kind, data) -> seq: ReliableStreams.emit."""
Route = Callable[[dict[str, Any], str, "str | None"], None]
"""A leaf's handler: (decoded body, topic, MQTT 5 correlation data)."""


class Rejects:
    """Log, count and report upstream (rate-limited) every refused inbound message."""

    def __init__(self, clock: Clock, stats: LinkStats, emit: Emit):
        self.clock = clock
        self.stats = stats
        self._emit = emit
        self._window_start = -ERROR_WINDOW_S
        self._in_window = 0
        self._suppressed = 0

    def reject(self, exc: ProtocolError, topic: str, **extra: Any) -> None:
        self.stats.rejected += 1
        now = self.clock.monotonic()
        if now - self._window_start >= ERROR_WINDOW_S:
            self._window_start, self._in_window = now, 0
        self._in_window += 1
        if self._in_window > ERROR_EVENTS_PER_WINDOW:
            self._suppressed += 1
            LOGGER.debug("rejected message on %s (%s), error event suppressed", topic, exc.reason)
            return
        LOGGER.warning("rejected message on %s (%s): %s", topic, exc.reason, exc)
        if self._suppressed:
            extra = {**extra, "suppressed_before": self._suppressed}
            self._suppressed = 0
        try:
            self._emit("error", {"reason": exc.reason, "topic": topic, "detail": str(exc)[:300], **extra})
        except (AgentError, OSError) as err:
            LOGGER.error("could not record the error event: %s", err)


class Inbox:
    """Routes pw/v1/<dev>/<leaf> messages; remembers handled commands and the policy version."""

    def __init__(self, device_id: str, state_dir: Path, *, clock: Clock, pacer: pacing.Pacer, rejects: Rejects,
                 on_ack: Callable[[dict[str, Any], str], None], on_assignment: Route,
                 platform_key: Ed25519PublicKey):
        self.device_id = device_id
        self.platform_key = platform_key
        """The platform's pinned public key: a policy it did not sign is refused."""
        self.state_dir = state_dir
        self.clock = clock
        self.pacer = pacer
        self.rejects = rejects
        self.tasks = TaskOwner(f"cloud-inbox-{device_id}")
        seen = store.read_json(self.state_dir / "inbound.json", default={}) or {}
        self._seen_commands: list[str] = list(seen.get("commands", []))
        self._policy_version: int = int(seen.get("policy_version", -1))
        self._command_cbs: list[Callable[[proto.Command], Any]] = []
        self._policy_cbs: list[Callable[[dict[str, Any]], Any]] = []
        self._routes: dict[str, Route] = {
            proto.ACK: lambda body, topic, _corr: on_ack(body, topic),
            proto.ASSIGNMENT: on_assignment,
            proto.COMMAND: lambda body, topic, _corr: self._handle_command(body, topic),
            proto.POLICY: lambda body, topic, _corr: self._handle_policy(body, topic),
        }
        self._extra: dict[str, Callable[[dict[str, Any]], Any]] = {}

    def add(self, leaf: str, cb: Callable[[dict[str, Any]], Any]) -> None:
        """Another module's leaf: decoded bodies go to ``cb`` (a ProtocolError it raises is a reject)."""
        self._extra[leaf] = cb

    def leaves(self) -> tuple[str, ...]:
        """Every leaf a session subscribes to."""
        return (*LINK_LEAVES, *self._extra)

    def on_command(self, cb: Callable[[proto.Command], Any]) -> None:
        self._command_cbs.append(cb)

    def on_policy(self, cb: Callable[[dict[str, Any]], Any]) -> None:
        self._policy_cbs.append(cb)

    async def stop(self) -> None:
        """Cancel the callbacks' tasks still running."""
        await self.tasks.stop()

    def deliver(self, msg: mqtt.MQTTMessage) -> None:
        """One message from the session: route it, or reject it (never raises)."""
        topic = msg.topic
        try:
            parsed = proto.parse_topic(topic)
            if parsed.device_id != self.device_id:
                raise ProtocolError(f"message for another device on {topic!r}", topic=topic, reason="topic")
            body = proto.decode(bytes(msg.payload), topic)
            route = self._routes.get(parsed.leaf)
            if route is not None:
                route(body, topic, _correlation(msg))
            elif parsed.leaf in self._extra:
                self._extra[parsed.leaf](body)
            else:
                raise ProtocolError(f"no inbound messages expected on {topic!r}", topic=topic, reason="topic")
        except ProtocolError as exc:
            self.rejects.reject(exc, topic)
        except Exception as exc:
            LOGGER.exception("error handling message on %s", topic)
            self.rejects.reject(ProtocolError(f"internal error {exc.__class__.__name__}", topic=topic,
                                              reason="internal"), topic)

    def _handle_command(self, body: dict[str, Any], topic: str) -> None:
        cmd = proto.validate_command(body, topic)
        if cmd.expires_at is not None and self.clock.wall_trusted() and self.clock.wall() > cmd.expires_at:
            raise ProtocolError(f"command {cmd.command_id!r} expired at {cmd.expires_at}", topic=topic,
                                reason="expired")
        if cmd.command_id in self._seen_commands:
            LOGGER.info("command %s redelivered: already handled", cmd.command_id)
            return
        if cmd.action == "set_policy" and cmd.policy is not None:
            policy = proto.validate_policy(self._signed(cmd.policy, topic), topic)  # 3.7: the shape of 3.8
            platformsig.check_version(policy.get("version"), self._policy_version, topic=topic)
            cmd = replace(cmd, policy=policy)
            self._apply_pacing(policy)
        if cmd.action == "plan_update":
            # docs/protocol.md 4.3 steps 1-2: the signature first, then the fields (PlanError
            # names the field; a ProtocolError: rejected, reported as an error event).
            signed = platformsig.verify_plan_update(cmd.plan_update, device_id=self.device_id,
                                                    public=self.platform_key, topic=topic)
            cmd = replace(cmd, plan_update=parse_update(signed))
        self._seen_commands = [*self._seen_commands, cmd.command_id][-SEEN_COMMANDS:]
        self._save()
        LOGGER.info("command %s: %s", cmd.command_id, cmd.action)
        self._dispatch(self._command_cbs, cmd)

    def _handle_policy(self, body: dict[str, Any], topic: str) -> None:
        policy = proto.validate_policy(self._signed(body, topic), topic)  # the signature before anything else
        if policy["version"] <= self._policy_version:
            return
        platformsig.check_version(policy["version"], self._policy_version, topic=topic)
        self._apply_pacing(policy)
        self._policy_version = int(policy["version"])
        self._save()
        self._dispatch(self._policy_cbs, policy)

    def _signed(self, policy: dict[str, Any], topic: str) -> dict[str, Any]:
        """The policy without its signature, if the platform signed it for this device
        (ProtocolError ``signature`` or ``wrong_device`` otherwise: a reject, reported)."""
        return platformsig.verify_policy(policy, device_id=self.device_id, public=self.platform_key, topic=topic)

    def _apply_pacing(self, policy: dict[str, Any]) -> None:
        """Adopt and persist a policy's pacing; PacingError (a ProtocolError) refuses the whole policy."""
        paced = pacing.from_policy(policy, self.pacer.policy)
        if paced is not None:
            pacing.save(self.state_dir, paced)
            self.pacer.set_policy(paced)
            LOGGER.info("pacing policy %d in force: %s", paced.version, paced.to_dict())

    def _save(self) -> None:
        store.atomic_write_json(self.state_dir / "inbound.json",
                                {"commands": self._seen_commands, "policy_version": self._policy_version})

    def _dispatch(self, callbacks: list[Callable[[Any], Any]], value: Any) -> None:
        """Call each callback; an awaitable it returns runs as a task this inbox owns."""
        for cb in callbacks:
            try:
                result = cb(value)
                if inspect.isawaitable(result):
                    self.tasks.spawn(result, "callback")
            except Exception:
                LOGGER.exception("callback %r failed", cb)


def _correlation(msg: mqtt.MQTTMessage) -> str | None:
    props = getattr(msg, "properties", None)
    data = getattr(props, "CorrelationData", None) if props is not None else None
    if data is None:
        return None
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
