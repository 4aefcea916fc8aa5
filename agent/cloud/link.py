"""The cloud link: one MQTT 5 session over TLS to the platform, in four parts behind one face.

``CloudLink`` is what the supervisor and the tests hold; it only wires the parts, each
with one job (docs/architecture.md, "The cloud link"):

- ``session.MqttSession``: the paho client per generation, its network thread and
  callbacks, the paced reconnect loop, the idle watchdog, pause and resume with the data
  link, quiesce before a SIM switch;
- ``streams.ReliableStreams``: the reliable streams (usage journal, our own events),
  drained in order and forgotten only on the cloud's application ack, resent after a
  reconnect or an ack timeout; it publishes through a function, so it is tested without
  a broker;
- ``inbox.Inbox``: the routing table from topic leaf to handler, rate-limited rejects
  (``inbox.Rejects``), command de-duplication, policy versions and their pacing;
- ``assignments.AssignmentExchange``: the SIM request, the sealed answer opened and
  verified, the replay guard.

As in aiomqtt, where the client owns the connection and a router decides what each
message is for, the session never looks inside a message and the inbox never touches
paho's client. Every task any part starts has an owner (agent.cloud.tasks) that keeps
it, logs its crash and cancels it on ``stop()``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import store
from agent.clock import Clock
from agent.cloud import pacing
from agent.cloud import protocol as proto
from agent.cloud.assignments import Assignment, AssignmentExchange
from agent.cloud.identity import SessionCounter, check_device_id
from agent.cloud.inbox import ERROR_EVENTS_PER_WINDOW, Inbox, Rejects
from agent.cloud.linkconfig import CONNECT_TIMEOUT_S, REQUEST_ATTEMPT_S, CloudConfig, LinkStats
from agent.cloud.outbox import Outbox, ReliableSource
from agent.cloud.session import QUIESCE_S, MqttSession
from agent.cloud.streams import ReliableStreams
from agent.errors import AssignmentUnavailable

__all__ = ["CONNECT_TIMEOUT_S", "ERROR_EVENTS_PER_WINDOW", "REQUEST_ATTEMPT_S", "Assignment",
           "AssignmentUnavailable", "CloudConfig", "CloudLink", "LinkStats"]


class CloudLink:
    """See the module docstring. Construct, ``await start()``, ``await stop()``."""

    def __init__(self, config: CloudConfig, *, state_dir: Path, clock: Clock | None = None,
                 sources: list[ReliableSource] | None = None, rng: random.Random | None = None,
                 check_identity: bool = True):
        self.config = config
        self.device_id = check_device_id(config.device_id, config.cert_file) if check_identity else config.device_id
        self.clock = clock or Clock()
        self.state_dir = store.ensure_private_dir(state_dir)
        self.stats = LinkStats()
        # pacing (issue 15): the platform's persisted policy, else this config's values
        local = pacing.PacingPolicy(reconnect_window_s=config.first_delay_max, resume_window_s=config.first_delay_max,
                                    request_window_s=config.request_window, backoff_base_s=config.backoff_base,
                                    backoff_cap_s=config.backoff_cap)
        self.pacer = pacing.Pacer(pacing.load(self.state_dir, local), rng or random.Random())
        # The session calls into the inbox and the streams, built just below: the lambdas
        # look them up when a message or a tick arrives, which is after start().
        self.session = MqttSession(config, self.device_id, clock=self.clock, pacer=self.pacer,
                                   sessions=SessionCounter(self.state_dir), stats=self.stats,
                                   on_live=self._on_live, on_message=lambda msg: self.inbox.deliver(msg),
                                   on_tick=lambda: self.streams.check_ack_timeouts(),
                                   on_probe=self._publish_birth)
        self.streams = ReliableStreams(self.device_id, sources or [],
                                       Outbox(self.state_dir / "events.outbox", proto.EVENT),
                                       window=config.window, ack_timeout=config.ack_timeout, clock=self.clock,
                                       publish=lambda topic, payload: self.session.publish(topic, payload),
                                       is_live=lambda: self.session.connected, stats=self.stats)
        rejects = Rejects(self.clock, self.stats, self.streams.emit)
        self.assignments = AssignmentExchange(
            config, self.device_id, self.state_dir, clock=self.clock, pacer=self.pacer,
            publish=lambda topic, payload, props: self.session.publish(topic, payload, props=props),
            wait_connected=self.session.wait_connected, emit=self.streams.emit, reject=rejects.reject)
        self.inbox = Inbox(self.device_id, self.state_dir, clock=self.clock, pacer=self.pacer, rejects=rejects,
                           on_ack=self.streams.handle_ack, on_assignment=self.assignments.handle_reply,
                           platform_key=self.assignments.platform_key)
        self._state_body: dict[str, Any] = {}

    @property
    def connected(self) -> bool:
        """A session is live (publishing may start; ``wait_connected`` also waits for the SUBACK)."""
        return self.session.connected

    @property
    def events(self) -> Outbox:
        """Our own durable events (the "event" stream)."""
        return self.streams.events

    @property
    def sources(self) -> dict[str, ReliableSource]:
        return self.streams.sources

    # --- extensions: other modules' messages over this session (issue 13: certificate renewal) ---

    def add_inbound(self, leaf: str, cb: Callable[[dict[str, Any]], Any]) -> None:
        """Subscribe to pw/v1/<dev>/<leaf> on every session; decoded bodies go to ``cb``."""
        self.inbox.add(leaf, cb)
        self.session.subscribe(proto.topic(self.device_id, leaf))

    def publish_leaf(self, leaf: str, body: dict[str, Any], *, expiry: int | None = None) -> bool:
        """QoS 1 publish of ``body`` on pw/v1/<dev>/<leaf>; False when not connected (caller retries)."""
        props = Properties(PacketTypes.PUBLISH)
        if expiry is not None:
            props.MessageExpiryInterval = expiry
        return self.session.publish(proto.topic(self.device_id, leaf), proto.encode(body), props=props)

    # --- public API ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the reconnect loop and the watchdog; returns at once (not when connected)."""
        await self.session.start()

    async def stop(self) -> None:
        """Say goodbye (retained offline state, so no will is needed), disconnect, end every task."""
        await self.session.stop()
        await self.inbox.stop()

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """Tasks of this link not yet done: none after ``stop()``."""
        return [*self.session.pending_tasks(), *self.inbox.tasks.pending()]

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until a session is live and subscribed (replies can arrive); False on timeout."""
        return await self.session.wait_connected(timeout)

    def set_network_available(self, up: bool, *, own: bool = False) -> None:
        """Follow the data link: no broker attempts while it is down; a random delay when it returns.

        ``own`` (with ``up=False``): this device pauses the link itself for a moment (a SIM
        swap), so on return it waits only a short delay of its own, not the resume window
        that spreads a whole region coming back after an outage (pacing, issue 15)."""
        self.session.set_network_available(up, own=own)

    async def quiesce(self, timeout: float = QUIESCE_S) -> None:
        """After ``set_network_available(False)``: wait, bounded, until the session's socket
        is closed, so its goodbye (DISCONNECT, FIN) leaves on the bearer that is going.
        Otherwise the kernel sends it later over the next bearer with the old source
        address, bytes the device counts and no carrier carries."""
        await self.session.quiesce(timeout)

    def on_command(self, cb: Callable[[proto.Command], Any]) -> None:
        self.inbox.on_command(cb)

    def on_policy(self, cb: Callable[[dict[str, Any]], Any]) -> None:
        self.inbox.on_policy(cb)

    def kick(self) -> None:
        """Drain the sources now (e.g. the usage journal just flushed a record); any thread."""
        self.session.call_soon(self.streams.drain)

    async def emit(self, kind: str, body: dict[str, Any]) -> int:
        """Queue a durable event ("health", "outage", "assignment_result", "error"); returns its seq."""
        return self.streams.emit(kind, body)

    async def publish_state(self, body: dict[str, Any]) -> None:
        """Retained device state; remembered and re-sent as the birth message of every session."""
        self._state_body = dict(body)
        if self.connected:
            self._publish_birth()

    async def report_assignment_result(self, assignment_id: str, ok: bool, detail: str) -> None:
        self.assignments.report_result(assignment_id, ok, detail)

    async def request_assignment(self, reason: str, *, current_iccid: str | None = None,
                                 evidence: dict[str, Any] | None = None, timeout: float = 60.0,
                                 avoid_plmns: list[str] | None = None) -> Assignment:
        """Ask for a SIM; honours "retry after" with jitter; returns the opened, verified profile.

        Raises AssignmentUnavailable (timeout, refused) or SealError (the envelope failed
        verification: also reported upstream as an "error" event).
        """
        assert self.session.started, "start() first"
        return await self.assignments.request(reason, current_iccid=current_iccid, evidence=evidence,
                                              timeout=timeout, avoid_plmns=avoid_plmns)

    # --- a session goes live ------------------------------------------------------------

    def _on_live(self, client: mqtt.Client) -> None:
        """Subscribe, announce ourselves, report a takeover, and send everything not yet acked."""
        client.subscribe([(proto.topic(self.device_id, leaf), 1) for leaf in self.inbox.leaves()])
        self._publish_birth()
        if self.session.taken_over:
            # Another client connected with our client id: a cloned certificate, or a
            # broker that does not bind client ids to certificates. Only the platform can act.
            self.streams.emit("security", {"reason": "session_taken_over", "count": self.session.taken_over,
                                           "detail": "the broker handed our session to another client "
                                                     "with this device's client id"})
            self.session.taken_over = 0
        self.streams.restart()
        self.streams.drain()

    def _publish_birth(self) -> None:
        body = {**self._state_body, "online": True, "session": self.session.session}
        self.session.publish(proto.topic(self.device_id, proto.STATE), proto.encode(body), retain=True)
