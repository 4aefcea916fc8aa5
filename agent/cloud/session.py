"""The paho side of the cloud link: one MQTT 5 session over TLS, kept alive by our own loop.

Everything here runs in the agent's one asyncio loop except paho's network loop, which
runs in a thread of its own per connection and hands every callback over with
``call_soon_threadsafe``. Each connection attempt builds a *fresh* paho client
(generation number ``gen``), so a callback from an old, half-dead client can be
recognised and ignored.

Why not paho's own reconnect: it retries on a fixed schedule, so a fleet that lost the
broker together comes back together. Ours is paced (agent.cloud.pacing over
agent.cloud.backoff: full jitter, a random first delay after a live connection drops),
follows the data link (no attempts while ``set_network_available(False)``), and rebuilds
the client when nothing at all has arrived for ``watchdog_idle`` seconds (a half-open TCP
connection looks alive to paho).

This part knows nothing of what the messages mean: the link (agent.cloud.link) gives it
``on_live`` (subscribe, birth, drain), ``on_message`` (the inbox), ``on_tick`` (ack
timeouts) and ``on_probe`` (a message whose PUBACK proves the path), as aiomqtt's client
leaves routing to whoever reads its messages.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.clock import Clock
from agent.cloud import pacing, paho_compat
from agent.cloud import protocol as proto
from agent.cloud.identity import SessionCounter
from agent.cloud.linkconfig import CloudConfig, LinkStats
from agent.cloud.tasks import TaskOwner
from agent.errors import ProtocolError

LOGGER = logging.getLogger(__name__)

SESSION_EXPIRY_S = 2 * 24 * 3600
"""Broker keeps our subscriptions and queued commands for 2 days offline; message
expiry on commands and assignments discards the stale ones inside that."""

SESSION_TAKEN_OVER = 0x8E
"""MQTT 5 DISCONNECT reason 142: another client connected with this client id."""
QUIESCE_S = 0.3
"""Bound on waiting for a paused session's socket to close (``quiesce``): a DISCONNECT and a
FIN take one write; the bound only keeps a stuck socket from delaying a SIM switch."""
JOIN_TIMEOUT_S = 5.0
"""How long stop() waits for paho's thread to finish after DISCONNECT."""
GOODBYE_WAIT_S = 1.0
"""stop(): how long paho may take to see the PUBACK of the offline state..."""
GOODBYE_BOUND_S = 2.0
"""...and the bound on the whole goodbye, so a dead path cannot hold up a shutdown."""


class MqttSession:
    """Connects, reconnects and watches one device's MQTT session. ``start()``, ``stop()``."""

    def __init__(self, config: CloudConfig, device_id: str, *, clock: Clock, pacer: pacing.Pacer,
                 sessions: SessionCounter, stats: LinkStats,
                 on_live: Callable[[mqtt.Client], None], on_message: Callable[[mqtt.MQTTMessage], None],
                 on_tick: Callable[[], None], on_probe: Callable[[], None]):
        self.config = config
        self.device_id = device_id
        self.clock = clock
        self.pacer = pacer
        self.stats = stats
        self.connected = False
        self.session = 0  # this device's session number (identity.SessionCounter), in birth and will
        self.taken_over = 0  # DISCONNECTs "session taken over" not yet reported (the link reports them)
        self._sessions = sessions
        self._on_live_cb, self._on_message_cb = on_live, on_message
        self._on_tick, self._on_probe = on_tick, on_probe
        self._tasks = TaskOwner(f"cloud-{device_id}")
        self._refusal: int | None = None  # CONNACK failure reason of the current attempt
        self._own_pause = False  # the last data-link pause was our own (a swap), not an outage
        self._boot_delay = 0.0  # the first connection's spread (start() draws it)
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
        self._stopping = False

    # --- what the link uses ------------------------------------------------------------

    async def start(self) -> None:
        """Start the reconnect loop and the watchdog; returns at once (not when connected)."""
        self._loop = asyncio.get_running_loop()
        # pacing: a region powered on together must not connect (nor ask for SIMs) together
        self._boot_delay = self.pacer.after_boot()
        self._net_event = asyncio.Event()
        self._connected_event = asyncio.Event()
        if self._net_up:
            self._net_event.set()
        self._tasks.spawn(self._run(), "link")
        self._tasks.spawn(self._watchdog(), "watchdog")

    async def stop(self) -> None:
        """Say goodbye (retained offline state, so no will is needed), disconnect, end tasks."""
        self._stopping = True
        client, thread = self._client, self._thread
        if client is not None and self.connected:
            try:
                info = client.publish(proto.topic(self.device_id, proto.STATE), self.offline_state(), qos=1,
                                      retain=True)
                await asyncio.wait_for(asyncio.to_thread(info.wait_for_publish, GOODBYE_WAIT_S), GOODBYE_BOUND_S)
            except (TimeoutError, RuntimeError, ValueError, ProtocolError):
                pass
        self._end_session("stopped")
        if client is not None:
            self._teardown(client)
        await self._tasks.stop()
        if thread is not None:
            await asyncio.to_thread(thread.join, JOIN_TIMEOUT_S)
        self.connected = False

    @property
    def started(self) -> bool:
        return self._loop is not None

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        return self._tasks.pending()

    async def wait_connected(self, timeout: float) -> bool:
        """Wait until a session is live and subscribed (replies can arrive); False on timeout."""
        assert self._connected_event is not None, "start() first"
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def set_network_available(self, up: bool, *, own: bool = False) -> None:
        """See CloudLink.set_network_available."""
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
        """See CloudLink.quiesce."""
        for _ in range(3):  # let the reconnect task see the session end and tear it down
            await asyncio.sleep(0)
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, timeout)

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the link's loop, from any thread (nothing before ``start()``)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, props: Properties | None = None) -> bool:
        """QoS 1; False when no session is live or paho would not queue it (the caller retries)."""
        client = self._client
        if client is None or not self.connected:
            return False
        info = client.publish(topic, payload, qos=1, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            LOGGER.debug("publish to %s not queued: %s", topic, mqtt.error_string(info.rc))
            return False
        return True

    def subscribe(self, topic: str) -> None:
        """Subscribe on the live session (later sessions: the link's ``on_live`` does)."""
        if self._client is not None and self.connected:
            self._client.subscribe(topic, qos=1)

    def offline_state(self) -> bytes:
        """The retained goodbye, also this session's will."""
        return proto.encode({"online": False, "session": self.session})

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
        self.session = self._sessions.next()
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
        client.will_set(proto.topic(self.device_id, proto.STATE), self.offline_state(), qos=1, retain=True,
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
        props.MaximumPacketSize = proto.MAX_PACKET_BYTES  # the broker keeps bigger messages to itself
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
            # act on it; the link says so once we are back (the event is durable meanwhile).
            self.taken_over += 1
            LOGGER.error("broker: session taken over by another client using our id (%d times)", self.taken_over)
        LOGGER.info("cloud connection lost: %s", reason)
        self._end_session("dropped")

    def _cb_thread_end(self, gen: int, reason: str) -> None:
        if gen != self._gen:
            return
        if self._connect_result is not None and not self._connect_result.done():
            LOGGER.info("cloud connect failed: %s", reason)
            self._connect_result.set_result(False)
        self._end_session("dropped")

    def _cb_message(self, gen: int, msg: mqtt.MQTTMessage) -> None:
        if gen != self._gen:
            return
        self._cb_traffic(gen)
        self._on_message_cb(msg)

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
        self.stats.connects += 1
        self.connected = True  # publishing may start; wait_connected() also waits for the SUBACK
        self._last_rx = self.clock.monotonic()
        self._probe_sent = False
        LOGGER.info("cloud link up (session %d)", self.session)
        self._on_live_cb(client)

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

    # --- watchdog --------------------------------------------------------------------

    async def _watchdog(self) -> None:
        tick = max(0.05, min(1.0, self.config.ack_timeout / 4, self.config.watchdog_idle / 10))
        while not self._stopping:
            await asyncio.sleep(tick)
            if not self.connected:
                continue
            self._on_tick()
            idle = self.clock.monotonic() - self._last_rx
            if idle > self.config.watchdog_idle:
                LOGGER.warning("nothing received for %.0fs: rebuilding the MQTT client", idle)
                self._end_session("rebuilt")
            elif idle > self.config.watchdog_idle / 2 and not self._probe_sent:
                self._probe_sent = True
                self._on_probe()  # its PUBACK proves the path works


def _no_op_socket_callback(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """See MqttSession._make_client: its presence, not its action, is what matters."""
