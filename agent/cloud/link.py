"""The cloud link: one MQTT 5 session over TLS, kept alive by our own reconnect loop.

How it fits the agent (architecture.md, "Concurrency"): everything here runs in the
agent's one asyncio loop except paho's network loop, which runs in a thread of its
own per connection and hands every callback over with ``call_soon_threadsafe``.
Each connection attempt builds a *fresh* paho client (generation number ``gen``), so a
callback from an old, half-dead client can be recognised and ignored.

Why not paho's own reconnect: it retries on a fixed schedule, so a fleet that lost the
broker together comes back together. Ours (agent.cloud.backoff) uses full jitter and a
random first delay after a live connection drops, follows the data link (no attempts
while ``set_network_available(False)``), and rebuilds the client when nothing at all has
arrived for ``watchdog_idle`` seconds (a half-open TCP connection looks alive to paho).

Reliable delivery: every ReliableSource (usage journal, our own event Outbox) is
drained in sequence order, at most ``window`` records in flight per stream; a record is
forgotten only on the cloud's application ack (pw/v1/<dev>/ack), never on PUBACK. After
a reconnect, or ``ack_timeout`` without progress, unacknowledged records are sent again;
the cloud de-duplicates by (device, stream, seq).

Inbound messages are decoded and validated (agent.cloud.protocol) before use; a bad one
is logged, answered with an "error" event upstream and dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import store
from agent.clock import JST, Clock
from agent.cloud import pacing, paho_compat, sealing
from agent.cloud import protocol as proto
from agent.cloud.backoff import BASE_S, CAP_S, FIRST_DELAY_MAX_S
from agent.cloud.identity import SessionCounter, check_device_id
from agent.cloud.outbox import Outbox, ReliableSource
from agent.cloud.schema import validate_event_data
from agent.errors import AgentError, AssignmentUnavailable, JournalError, ProtocolError, SealError
from agent.sim import SimProfile

LOGGER = logging.getLogger(__name__)

KEEPALIVE_S = 60
"""MQTT keepalive: cellular NATs commonly drop idle UDP/TCP mappings after 2-5 minutes;
60 s keeps the mapping and detects a dead path within ~90 s (1.5 x keepalive)."""

CONNECT_TIMEOUT_S = 15.0
"""TCP + TLS + CONNACK over a congested cellular link take a few seconds; 15 s is
generous without leaving a device stuck on a black-holed SYN."""

ACK_TIMEOUT_S = 30.0
"""No application ack for this long while records are in flight: send them again
(the cloud may have lost them in a restart). Cloud ingest takes milliseconds."""

WATCHDOG_IDLE_S = 600.0
"""Ten minutes with nothing received (no message, PUBACK or SUBACK) although we
probe halfway through: the connection is dead in a way paho cannot see. Rebuild."""

WINDOW = 100
"""Records in flight per stream: enough to fill a cellular RTT, small enough that a
resend after a lost session costs little."""

MAX_INFLIGHT = 20
"""paho's QoS 1 inflight limit (its default is 20; set explicitly so it is a decision)."""

MAX_QUEUED = 500
"""paho's outgoing queue bound (its default is unbounded); above WINDOW x streams."""

SESSION_EXPIRY_S = 2 * 24 * 3600
"""Broker keeps our subscriptions and queued commands for 2 days offline; message
expiry on commands and assignments discards the stale ones inside that."""

REQUEST_ATTEMPT_S = 20.0
"""Re-send an assignment request with a new correlation id after this long without
an answer (the request or its reply may have died with a broker restart)."""

SEEN_COMMANDS = 64
"""Command ids remembered for de-duplicating QoS 1 redeliveries (commands are rare)."""

ERROR_WINDOW_S = 60.0
ERROR_EVENTS_PER_WINDOW = 20
"""At most 20 error events (and warning lines) per minute: a flood of bad messages,
buggy or hostile, must not turn into a flood of fsyncs and uplink traffic. The next
event reports how many were suppressed (``suppressed_before``)."""

SESSION_TAKEN_OVER = 0x8E
"""MQTT 5 DISCONNECT reason 142: another client connected with this client id."""
QUIESCE_S = 0.3
"""Bound on waiting for a paused session's socket to close (``quiesce``): a DISCONNECT and a
FIN take one write; the bound only keeps a stuck socket from delaying a SIM switch."""
JOIN_TIMEOUT_S = 5.0
"""How long stop() waits for paho's thread to finish after DISCONNECT."""


@dataclass(frozen=True)
class CloudConfig:
    device_id: str
    host: str
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path
    sealing_key_file: Path
    """This device's X25519 private key: sealed profiles are encrypted to it."""
    platform_key_file: Path
    """The platform's Ed25519 public key, pinned at provisioning: profiles must carry its signature."""
    keepalive: int = KEEPALIVE_S
    backoff_base: float = BASE_S
    backoff_cap: float = CAP_S
    first_delay_max: float = FIRST_DELAY_MAX_S
    connect_timeout: float = CONNECT_TIMEOUT_S
    ack_timeout: float = ACK_TIMEOUT_S
    watchdog_idle: float = WATCHDOG_IDLE_S
    window: int = WINDOW
    max_inflight: int = MAX_INFLIGHT
    max_queued: int = MAX_QUEUED
    request_attempt: float = REQUEST_ATTEMPT_S
    request_window: float = pacing.REQUEST_WINDOW_S  # pacing: until the platform sets one


@dataclass(frozen=True)
class Assignment:
    """A verified, opened assignment. ``profile`` carries Ki/OPc: give it to the modem, then drop it."""

    assignment_id: str
    seq: int
    profile: SimProfile
    expires_at: int
    window: dict[str, Any] | None = None


@dataclass
class LinkStats:
    """Counters for the bench, the console and tests."""

    attempts: int = 0
    connects: int = 0
    failures: int = 0
    drops: int = 0
    rebuilds: int = 0
    resends: int = 0
    rejected: int = 0
    delays: list[float] = field(default_factory=list)


class CloudLink:
    """See the module docstring. Construct, ``await start()``, ``await stop()``."""

    def __init__(self, config: CloudConfig, *, state_dir: Path, clock: Clock | None = None,
                 sources: list[ReliableSource] | None = None, rng: random.Random | None = None,
                 check_identity: bool = True):
        self.config = config
        self.device_id = check_device_id(config.device_id, config.cert_file) if check_identity else config.device_id
        self.clock = clock or Clock()
        self.state_dir = store.ensure_private_dir(state_dir)
        self.events = Outbox(self.state_dir / "events.outbox", proto.EVENT)
        self.sources: dict[str, ReliableSource] = {s.stream: s for s in [*(sources or []), self.events]}
        self.stats = LinkStats()
        self.connected = False
        self._rng = rng or random.Random()
        # pacing (issue 15): the platform's persisted policy, else this config's values
        local = pacing.PacingPolicy(reconnect_window_s=config.first_delay_max, resume_window_s=config.first_delay_max,
                                    request_window_s=config.request_window, backoff_base_s=config.backoff_base,
                                    backoff_cap_s=config.backoff_cap)
        self.pacer = pacing.Pacer(pacing.load(self.state_dir, local), self._rng)
        self._refusal: int | None = None  # CONNACK failure reason of the current attempt
        self._own_pause = False  # the last data-link pause was our own (a swap), not an outage
        self._boot_delay = 0.0  # the first connection's spread (start() draws it)
        self._guard = sealing.ReplayGuard(self.state_dir / "replay.json")
        self._sessions = SessionCounter(self.state_dir)
        self._device_key = sealing.load_private_x25519(config.sealing_key_file)
        self._platform_key = sealing.load_public_ed25519(config.platform_key_file)
        seen = store.read_json(self.state_dir / "inbound.json", default={}) or {}
        self._seen_commands: list[str] = list(seen.get("commands", []))
        self._policy_version: int = int(seen.get("policy_version", -1))
        self._command_cbs: list[Callable[[proto.Command], Any]] = []
        self._policy_cbs: list[Callable[[dict[str, Any]], Any]] = []
        self._waiters: dict[str, asyncio.Future[proto.AssignmentReply]] = {}
        self._sent: dict[str, int] = {}
        self._progress_at: dict[str, float] = {}
        self._state_body: dict[str, Any] = {}
        self._session = 0
        self._gen = 0
        self._client: mqtt.Client | None = None
        self._thread: threading.Thread | None = None
        self._net_up = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._net_event: asyncio.Event | None = None
        self._connected_event: asyncio.Event | None = None
        self._connect_result: asyncio.Future[bool] | None = None
        self._session_end: asyncio.Future[str] | None = None
        self._last_rx = 0.0
        self._probe_sent = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self._error_window_start = -ERROR_WINDOW_S
        self._errors_in_window = 0
        self._errors_suppressed = 0
        self._taken_over = 0
        self._extra_inbound: dict[str, Callable[[dict[str, Any]], Any]] = {}  # add_inbound()

    # --- extensions: other modules' messages over this session (issue 13: certificate renewal) ---

    def add_inbound(self, leaf: str, cb: Callable[[dict[str, Any]], Any]) -> None:
        """Subscribe to pw/v1/<dev>/<leaf> on every session; decoded bodies go to ``cb``."""
        self._extra_inbound[leaf] = cb
        if self._client is not None and self.connected:
            self._client.subscribe(proto.topic(self.device_id, leaf), qos=1)

    def publish_leaf(self, leaf: str, body: dict[str, Any], *, expiry: int | None = None) -> bool:
        """QoS 1 publish of ``body`` on pw/v1/<dev>/<leaf>; False when not connected (caller retries)."""
        props = Properties(PacketTypes.PUBLISH)
        if expiry is not None:
            props.MessageExpiryInterval = expiry
        return self._publish(proto.topic(self.device_id, leaf), proto.encode(body), props=props)

    # --- public API ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the reconnect loop and the watchdog; returns at once (not when connected)."""
        self._loop = asyncio.get_running_loop()
        # pacing: a region powered on together must not connect (nor ask for SIMs) together
        self._boot_delay = self.pacer.after_boot()
        self._net_event = asyncio.Event()
        self._connected_event = asyncio.Event()
        if self._net_up:
            self._net_event.set()
        self._tasks = [asyncio.create_task(self._run(), name=f"cloud-link-{self.device_id}"),
                       asyncio.create_task(self._watchdog(), name=f"cloud-watchdog-{self.device_id}")]

    async def stop(self) -> None:
        """Say goodbye (retained offline state, so no will is needed), disconnect, end tasks."""
        self._stopping = True
        client, thread = self._client, self._thread
        if client is not None and self.connected:
            try:
                info = client.publish(proto.topic(self.device_id, proto.STATE),
                                      proto.encode({"online": False, "session": self._session}), qos=1, retain=True)
                await asyncio.wait_for(asyncio.to_thread(info.wait_for_publish, 1.0), 2.0)
            except (TimeoutError, RuntimeError, ValueError, ProtocolError):
                pass
        self._end_session("stopped")
        if client is not None:
            self._teardown(client)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if thread is not None:
            await asyncio.to_thread(thread.join, JOIN_TIMEOUT_S)
        self.connected = False

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until a session is live and subscribed (replies can arrive); False on timeout."""
        assert self._connected_event is not None, "start() first"
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def set_network_available(self, up: bool, *, own: bool = False) -> None:
        """Follow the data link: no broker attempts while it is down; a random delay when it returns.

        ``own`` (with ``up=False``): this device pauses the link itself for a moment (a SIM
        swap), so on return it waits only a short delay of its own, not the resume window
        that spreads a whole region coming back after an outage (pacing, issue 15)."""
        if up == self._net_up:
            return
        self._net_up = up
        if not up:
            self._own_pause = own
        LOGGER.info("data link %s: cloud link %s", "up" if up else "down", "resumes" if up else "pauses")
        if self._net_event is not None:
            (self._net_event.set if up else self._net_event.clear)()
        if not up:
            self._end_session("net_down")

    async def quiesce(self, timeout: float = QUIESCE_S) -> None:
        """After ``set_network_available(False)``: wait, bounded, until the session's socket
        is closed, so its goodbye (DISCONNECT, FIN) leaves on the bearer that is going.
        Otherwise the kernel sends it later over the next bearer with the old source
        address, bytes the device counts and no carrier carries."""
        for _ in range(3):  # let the reconnect task see the session end and tear it down
            await asyncio.sleep(0)
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, timeout)

    def on_command(self, cb: Callable[[proto.Command], Any]) -> None:
        self._command_cbs.append(cb)

    def on_policy(self, cb: Callable[[dict[str, Any]], Any]) -> None:
        self._policy_cbs.append(cb)

    def kick(self) -> None:
        """Drain the sources now (e.g. the usage journal just flushed a record)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._drain)

    async def emit(self, kind: str, body: dict[str, Any]) -> int:
        """Queue a durable event ("health", "outage", "assignment_result", "error"); returns its seq."""
        return self._emit_nowait(kind, body)

    async def publish_state(self, body: dict[str, Any]) -> None:
        """Retained device state; remembered and re-sent as the birth message of every session."""
        self._state_body = dict(body)
        if self.connected:
            self._publish_birth()

    async def report_assignment_result(self, assignment_id: str, ok: bool, detail: str) -> None:
        result = {"assignment_id": assignment_id, "ok": bool(ok), "detail": str(detail)[:500]}
        self._guard.record_result(assignment_id, result)
        self._emit_nowait("assignment_result", result)

    async def request_assignment(self, reason: str, *, current_iccid: str | None = None,
                                 evidence: dict[str, Any] | None = None, timeout: float = 60.0) -> Assignment:
        """Ask for a SIM; honours "retry after" with jitter; returns the opened, verified profile.

        Raises AssignmentUnavailable (timeout, refused) or SealError (the envelope failed
        verification: also reported upstream as an "error" event).
        """
        assert self._loop is not None, "start() first"
        await asyncio.sleep(self.pacer.before_request())  # pacing: after "no capacity"
        deadline = self.clock.monotonic() + timeout
        while True:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0 or not await self.wait_connected(remaining):
                raise AssignmentUnavailable(f"no assignment within {timeout:.0f}s", reason="timeout")
            reply = await self._ask_once(reason, current_iccid, evidence,
                                         min(self.config.request_attempt, deadline - self.clock.monotonic()))
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

    # --- reconnect loop ---------------------------------------------------------------

    async def _run(self) -> None:
        assert self._net_event is not None
        delay = self._boot_delay
        while not self._stopping:
            await self._net_event.wait()
            if delay > 0:
                self.stats.delays.append(delay)
                await asyncio.sleep(delay)
                if not self._net_up:
                    continue  # the data link went down meanwhile: wait for it again
            outcome = await self._session_once()
            if outcome == "failed":
                delay = self.pacer.after_failure()
            elif outcome == "refused":
                assert self._refusal is not None
                delay = self.pacer.after_refusal(self._refusal)
            elif outcome == "net_down":
                delay = self.pacer.after_own_pause() if self._own_pause else self.pacer.after_resume()
            elif outcome in ("dropped", "rebuilt"):
                delay = self.pacer.after_drop()
            else:
                return

    async def _session_once(self) -> str:
        """One connection from attempt to end; returns why it ended."""
        loop = self._loop
        assert loop is not None
        self._gen += 1
        gen = self._gen
        self._session = self._sessions.next()
        self._connect_result = loop.create_future()
        self._session_end = loop.create_future()
        self._refusal = None
        self.stats.attempts += 1
        client = self._make_client(gen)
        self._client = client
        self._thread = threading.Thread(target=self._paho_thread, args=(client, gen), daemon=True,
                                        name=f"paho-{self.device_id}-{gen}")
        self._thread.start()
        try:
            ok = await asyncio.wait_for(asyncio.shield(self._connect_result), self.config.connect_timeout + 5)
        except TimeoutError:
            ok = False
        if not ok or self._session_end.done():
            self.stats.failures += 1
            self._teardown(client)
            if self._refusal is not None:
                return "refused"  # even if the broker's close was seen first: the answer decides
            ended = self._session_end.result() if self._session_end.done() else "failed"
            return "failed" if ended == "dropped" else ended  # never live: not a drop, so the back-off grows
        self._on_live(client)
        outcome = await self._session_end
        self._on_dead(client, outcome)
        return outcome

    def _make_client(self, gen: int) -> mqtt.Client:
        c = self.config
        client = paho_compat.make_client(self.device_id, reconnect_on_failure=False)  # paho 1.6.1 or 2.x
        client.tls_set(ca_certs=str(c.ca_file), certfile=str(c.cert_file), keyfile=str(c.key_file))
        client.max_inflight_messages_set(c.max_inflight)
        client.max_queued_messages_set(c.max_queued)
        paho_compat.set_connect_timeout(client, c.connect_timeout)
        # With a socket-register-write callback installed, publish() from the asyncio
        # thread only queues the packet and wakes paho's loop through its socket pair;
        # without one, paho writes to the TLS socket from the caller's thread when no
        # loop_start() thread exists, racing our network thread and corrupting the stream.
        client.on_socket_register_write = _no_op_socket_callback
        will = Properties(PacketTypes.WILLMESSAGE)
        client.will_set(proto.topic(self.device_id, proto.STATE),
                        proto.encode({"online": False, "session": self._session}), qos=1, retain=True,
                        properties=will)
        post = self._post
        paho_compat.set_callbacks(
            client,
            on_connect=lambda cl, ud, flags, rc, props: post(self._cb_connect, gen, not rc.is_failure, str(rc),
                                                              getattr(rc, "value", None)),
            on_disconnect=lambda cl, ud, flags, rc, props: post(self._cb_disconnect, gen, str(rc),
                                                                 getattr(rc, "value", None)),
            on_message=lambda cl, ud, msg: post(self._cb_message, gen, msg),
            on_publish=lambda cl, ud, mid, rc, props: post(self._cb_traffic, gen),
            on_subscribe=lambda cl, ud, mid, rcs, props: post(self._cb_subscribe, gen, rcs),
        )
        return client

    def _paho_thread(self, client: mqtt.Client, gen: int) -> None:
        """paho's side: connect (blocking TCP + TLS), then its network loop until the connection ends.

        The thread always reports its end (``_cb_thread_end``), even when paho's loop
        stops without an on_disconnect (it does on some socket errors), so a session can
        never hang half-dead.
        """
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        try:
            client.connect(self.config.host, self.config.port, self.config.keepalive, clean_start=False,
                           properties=props)
            # One loop() pass creates paho's wake-up socket pair (loop_forever alone does
            # not), so a publish() from the asyncio thread wakes the select at once.
            client.loop(timeout=0.0)
            client.loop_forever()  # reconnect_on_failure=False: returns when the connection ends
            reason = "network loop ended"
        except Exception as exc:  # noqa: BLE001 - any failure here ends the session
            reason = f"{exc.__class__.__name__}: {exc}"
        self._post(self._cb_thread_end, gen, reason)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        """paho thread -> asyncio loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop closed while paho was finishing

    # --- paho callbacks, now on the asyncio loop ----------------------------------

    def _cb_connect(self, gen: int, ok: bool, reason: str, code: int = 0) -> None:
        if gen != self._gen or self._connect_result is None:
            return
        if not ok:
            LOGGER.warning("broker refused connection: %s (0x%02X)", reason, code)
            self._refusal = code
        if not self._connect_result.done():
            self._connect_result.set_result(ok)

    def _cb_disconnect(self, gen: int, reason: str, code: int | None = None) -> None:
        if gen != self._gen:
            return
        if code == SESSION_TAKEN_OVER:
            # Another client connected with our client id: a cloned certificate, or a
            # broker that does not bind client ids to certificates. Only the platform can
            # act on it; say so once we are back (the event is durable meanwhile).
            self._taken_over += 1
            LOGGER.error("broker: session taken over by another client using our id (%d times)", self._taken_over)
        LOGGER.info("cloud connection lost: %s", reason)
        self._end_session("dropped")

    def _cb_thread_end(self, gen: int, reason: str) -> None:
        if gen != self._gen:
            return
        if self._connect_result is not None and not self._connect_result.done():
            LOGGER.info("cloud connect failed: %s", reason)
            self._connect_result.set_result(False)
        self._end_session("dropped")

    def _cb_traffic(self, gen: int) -> None:
        if gen == self._gen:
            self._last_rx = self.clock.monotonic()
            self._probe_sent = False

    def _cb_subscribe(self, gen: int, reason_codes: list[Any]) -> None:
        self._cb_traffic(gen)
        bad = [str(rc) for rc in reason_codes if rc.is_failure]
        if bad:
            LOGGER.error("broker refused our subscriptions: %s", bad)
        elif gen == self._gen and self.connected and self._connected_event is not None:
            self._connected_event.set()  # replies and commands can reach us now

    def _end_session(self, outcome: str) -> None:
        if self._session_end is not None and not self._session_end.done():
            self._session_end.set_result(outcome)
        if self._connect_result is not None and not self._connect_result.done():
            self._connect_result.set_result(False)

    # --- session life -----------------------------------------------------------------

    def _on_live(self, client: mqtt.Client) -> None:
        assert self._connected_event is not None
        self.stats.connects += 1
        self.connected = True  # publishing may start; wait_connected() also waits for the SUBACK
        self._last_rx = self.clock.monotonic()
        self._probe_sent = False
        LOGGER.info("cloud link up (session %d)", self._session)
        client.subscribe([(proto.topic(self.device_id, leaf), 1) for leaf in (*proto_inbound(), *self._extra_inbound)])
        self._publish_birth()
        if self._taken_over:
            self._emit_nowait("security", {"reason": "session_taken_over", "count": self._taken_over,
                                           "detail": "the broker handed our session to another client "
                                                     "with this device's client id"})
            self._taken_over = 0
        self._sent.clear()
        self._progress_at.clear()
        self._drain()

    def _on_dead(self, client: mqtt.Client, outcome: str) -> None:
        assert self._connected_event is not None
        self.connected = False
        self._connected_event.clear()
        if outcome == "dropped":
            self.stats.drops += 1
        elif outcome == "rebuilt":
            self.stats.rebuilds += 1
        LOGGER.info("cloud link down (%s)", outcome)
        self._teardown(client)

    def _teardown(self, client: mqtt.Client) -> None:
        """Stop a client whatever its state; its late callbacks carry an old gen and are ignored."""
        try:
            client.disconnect()
        except Exception as exc:  # noqa: BLE001 - already gone
            LOGGER.debug("disconnect of an old client failed: %s", exc)

    def _publish_birth(self) -> None:
        body = {**self._state_body, "online": True, "session": self._session}
        self._publish(proto.topic(self.device_id, proto.STATE), proto.encode(body), retain=True)

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False, props: Properties | None = None) -> bool:
        client = self._client
        if client is None or not self.connected:
            return False
        info = client.publish(topic, payload, qos=1, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            LOGGER.debug("publish to %s not queued: %s", topic, mqtt.error_string(info.rc))
            return False
        return True

    # --- reliable streams --------------------------------------------------------------

    def _drain(self) -> None:
        """Publish every stream's unsent records, keeping at most ``window`` in flight."""
        if not self.connected:
            return
        for stream, source in self.sources.items():
            try:
                pending = source.pending(self.config.window)
            except AgentError as exc:
                LOGGER.error("source %s cannot list pending records: %s", stream, exc)
                continue
            if not pending:
                self._progress_at.pop(stream, None)
                continue
            base = pending[0][0]
            sent = self._sent.get(stream, 0)
            for seq, body in pending:
                if seq <= sent:
                    continue
                if not self._publish(proto.stream_topic(self.device_id, stream, body),
                                     self._record_payload(stream, seq, base, body)):
                    break
                sent = seq
                self._progress_at.setdefault(stream, self.clock.monotonic())
            self._sent[stream] = sent

    def _record_payload(self, stream: str, seq: int, base: int, body: dict[str, Any]) -> bytes:
        try:
            return proto.encode({"stream": stream, "seq": seq, "base": base, "body": body})
        except ProtocolError as exc:
            # Unsendable as is: send a stand-in so the cloud can record the loss and ack past it.
            LOGGER.error("record %s/%d cannot be sent: %s", stream, seq, exc)
            return proto.encode({"stream": stream, "seq": seq, "base": base, "body": {}, "rejected": exc.reason})

    def _handle_ack(self, body: dict[str, Any], topic: str) -> None:
        stream, upto = proto.validate_ack(body, topic)
        source = self.sources.get(stream)
        if source is None:
            raise ProtocolError(f"ack for unknown stream {stream!r}", topic=topic, reason="schema")
        try:
            source.ack(upto)
        except JournalError as exc:
            LOGGER.error("cannot record ack %s<=%d: %s", stream, upto, exc)
        self._progress_at[stream] = self.clock.monotonic()
        self._drain()

    def _check_ack_timeouts(self) -> None:
        now = self.clock.monotonic()
        for stream, since in list(self._progress_at.items()):
            if now - since > self.config.ack_timeout and self._sent.get(stream):
                LOGGER.warning("no ack on %s for %.0fs: sending unacknowledged records again", stream, now - since)
                self.stats.resends += 1
                self._sent[stream] = 0
                self._progress_at[stream] = now
        self._drain()

    def _emit_nowait(self, kind: str, data: dict[str, Any]) -> int:
        validate_event_data(kind, data)  # our own bug is caught here, loudly, not at the cloud
        body = {"kind": kind, "at": self.clock.now(JST).isoformat(timespec="seconds"), "data": data}
        proto.encode({"stream": proto.EVENT, "seq": 0, "base": 0, "body": body})  # size check before it is durable
        seq = self.events.put(body)
        self._drain()
        return seq

    # --- inbound -------------------------------------------------------------------------

    def _cb_message(self, gen: int, msg: mqtt.MQTTMessage) -> None:
        if gen != self._gen:
            return
        self._cb_traffic(gen)
        topic = msg.topic
        try:
            parsed = proto.parse_topic(topic)
            if parsed.device_id != self.device_id:
                raise ProtocolError(f"message for another device on {topic!r}", topic=topic, reason="topic")
            body = proto.decode(bytes(msg.payload), topic)
            handler = {proto.ACK: self._handle_ack, proto.ASSIGNMENT: self._handle_assignment,
                       proto.COMMAND: self._handle_command, proto.POLICY: self._handle_policy}.get(parsed.leaf)
            if handler is None and parsed.leaf in self._extra_inbound:
                self._extra_inbound[parsed.leaf](body)  # a ProtocolError it raises is rejected below
                return
            if handler is None:
                raise ProtocolError(f"no inbound messages expected on {topic!r}", topic=topic, reason="topic")
            if parsed.leaf == proto.ASSIGNMENT:
                self._handle_assignment(body, topic, _correlation(msg))
            else:
                handler(body, topic)
        except ProtocolError as exc:
            self._reject(exc, topic)
        except Exception as exc:
            LOGGER.exception("error handling message on %s", topic)
            self._reject(ProtocolError(f"internal error {exc.__class__.__name__}", topic=topic, reason="internal"),
                         topic)

    def _reject(self, exc: ProtocolError, topic: str, **extra: Any) -> None:
        """Log, count and report upstream (rate-limited) a refused inbound message."""
        self.stats.rejected += 1
        now = self.clock.monotonic()
        if now - self._error_window_start >= ERROR_WINDOW_S:
            self._error_window_start, self._errors_in_window = now, 0
        self._errors_in_window += 1
        if self._errors_in_window > ERROR_EVENTS_PER_WINDOW:
            self._errors_suppressed += 1
            LOGGER.debug("rejected message on %s (%s), error event suppressed", topic, exc.reason)
            return
        LOGGER.warning("rejected message on %s (%s): %s", topic, exc.reason, exc)
        if self._errors_suppressed:
            extra = {**extra, "suppressed_before": self._errors_suppressed}
            self._errors_suppressed = 0
        try:
            self._emit_nowait("error", {"reason": exc.reason, "topic": topic, "detail": str(exc)[:300], **extra})
        except (AgentError, OSError) as err:
            LOGGER.error("could not record the error event: %s", err)

    def _handle_assignment(self, body: dict[str, Any], topic: str, correlation: str | None = None) -> None:
        reply = proto.validate_assignment(body, topic)
        if correlation is not None and correlation != reply.request_id:
            raise ProtocolError("correlation data differs from request_id", topic=topic, reason="schema")
        waiter = self._waiters.get(reply.request_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)
            return
        self._late_assignment(reply, topic)

    def _late_assignment(self, reply: proto.AssignmentReply, topic: str) -> None:
        """A reply nobody waits for: a redelivery (acknowledge again) or too late (not applied)."""
        if reply.status != "ok" or reply.envelope is None:
            LOGGER.info("late %s reply to request %s ignored", reply.status, reply.request_id)
            return
        if reply.seq == self._guard.last_seq and reply.assignment_id == self._guard.last_assignment_id:
            LOGGER.info("assignment %s redelivered: acknowledged again, not re-applied", reply.assignment_id)
            if self._guard.last_result is not None:
                self._emit_nowait("assignment_result", dict(self._guard.last_result))
            return
        raise ProtocolError(f"assignment {reply.assignment_id!r} answers no pending request; not applied",
                            topic=topic, reason="unsolicited")

    async def _ask_once(self, reason: str, current_iccid: str | None, evidence: dict[str, Any] | None,
                        timeout: float) -> proto.AssignmentReply | None:
        assert self._loop is not None
        request_id = uuid.uuid4().hex
        body = {"request_id": request_id, "reason": reason, "current_iccid": current_iccid,
                "evidence": evidence or {}}
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = proto.topic(self.device_id, proto.ASSIGNMENT)
        props.CorrelationData = request_id.encode()
        props.MessageExpiryInterval = proto.REQUEST_EXPIRY_S
        fut: asyncio.Future[proto.AssignmentReply] = self._loop.create_future()
        self._waiters[request_id] = fut
        try:
            if not self._publish(proto.topic(self.device_id, proto.ASSIGN_REQUEST), proto.encode(body), props=props):
                await asyncio.sleep(min(1.0, max(timeout, 0.0)))
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
            if self._guard.check(reply.assignment_id, reply.seq) == "duplicate":
                raise SealError(f"assignment {reply.assignment_id!r} was already applied", reason="duplicate")
            opened = sealing.open_envelope(header, device_id=self.device_id, device_key=self._device_key,
                                           platform_public=self._platform_key, now=now)
        except SealError as exc:
            self._reject(exc, topic, assignment_id=reply.assignment_id)
            raise
        self._guard.accept(opened.assignment_id, opened.seq)
        LOGGER.info("assignment %s (seq %d) opened: %s", opened.assignment_id, opened.seq, opened.profile.public())
        return Assignment(opened.assignment_id, opened.seq, opened.profile, opened.expires_at, reply.window)

    def _handle_command(self, body: dict[str, Any], topic: str) -> None:
        cmd = proto.validate_command(body, topic)
        if cmd.expires_at is not None and self.clock.wall_trusted() and self.clock.wall() > cmd.expires_at:
            raise ProtocolError(f"command {cmd.command_id!r} expired at {cmd.expires_at}", topic=topic,
                                reason="expired")
        if cmd.command_id in self._seen_commands:
            LOGGER.info("command %s redelivered: already handled", cmd.command_id)
            return
        if cmd.action == "set_policy" and cmd.policy is not None:
            self._apply_pacing(cmd.policy)
        self._seen_commands = [*self._seen_commands, cmd.command_id][-SEEN_COMMANDS:]
        self._save_inbound()
        LOGGER.info("command %s: %s", cmd.command_id, cmd.action)
        self._dispatch(self._command_cbs, cmd)

    def _handle_policy(self, body: dict[str, Any], topic: str) -> None:
        policy = proto.validate_policy(body, topic)
        if policy["version"] <= self._policy_version:
            return
        self._apply_pacing(policy)
        self._policy_version = int(policy["version"])
        self._save_inbound()
        self._dispatch(self._policy_cbs, policy)

    def _apply_pacing(self, policy: dict[str, Any]) -> None:
        """Adopt and persist a policy's pacing; PacingError (a ProtocolError) refuses the whole policy."""
        paced = pacing.from_policy(policy, self.pacer.policy)
        if paced is not None:
            pacing.save(self.state_dir, paced)
            self.pacer.set_policy(paced)
            LOGGER.info("pacing policy %d in force: %s", paced.version, paced.to_dict())

    def _save_inbound(self) -> None:
        store.atomic_write_json(self.state_dir / "inbound.json",
                                {"commands": self._seen_commands, "policy_version": self._policy_version})

    def _dispatch(self, callbacks: list[Callable[[Any], Any]], value: Any) -> None:
        for cb in callbacks:
            try:
                result = cb(value)
                if inspect.isawaitable(result):
                    asyncio.ensure_future(result)
            except Exception:
                LOGGER.exception("callback %r failed", cb)

    # --- watchdog --------------------------------------------------------------------

    async def _watchdog(self) -> None:
        tick = max(0.05, min(1.0, self.config.ack_timeout / 4, self.config.watchdog_idle / 10))
        while not self._stopping:
            await asyncio.sleep(tick)
            if not self.connected:
                continue
            self._check_ack_timeouts()
            idle = self.clock.monotonic() - self._last_rx
            if idle > self.config.watchdog_idle:
                LOGGER.warning("nothing received for %.0fs: rebuilding the MQTT client", idle)
                self._end_session("rebuilt")
            elif idle > self.config.watchdog_idle / 2 and not self._probe_sent:
                self._probe_sent = True
                self._publish_birth()  # its PUBACK proves the path works


def _no_op_socket_callback(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """See _make_client: its presence, not its action, is what matters."""


def proto_inbound() -> tuple[str, ...]:
    """Leaves a device subscribes to (cloud -> device)."""
    return (proto.ACK, proto.ASSIGNMENT, proto.COMMAND, proto.POLICY)


def _correlation(msg: mqtt.MQTTMessage) -> str | None:
    props = getattr(msg, "properties", None)
    data = getattr(props, "CorrelationData", None) if props is not None else None
    if data is None:
        return None
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
