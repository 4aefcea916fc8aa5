"""paho-mqtt 1.6.1 and 2.x behind one face: the callback API version 2 on both.

Every stable OpenWrt branch (22.03 to 25.12) and Debian 12 package paho-mqtt 1.6.1;
the agent is written against 2.x's ``CallbackAPIVersion.VERSION2``. The two differ, for
an MQTT v5 client, in four places only, and this module is the one place that knows:

- the constructor: 2.x takes the callback API version first; 1.6.1 has no such argument;
- ``on_disconnect``: 1.6.1 calls ``(client, userdata, rc, properties)``, without the
  ``flags`` 2.x passes, and ``rc`` is a bare ``MQTT_ERR_*`` int when the connection is
  lost rather than a reason code;
- ``on_publish``: 1.6.1 calls ``(client, userdata, mid)``, 2.x adds a reason code and
  properties;
- reason codes: 2.x's ``ReasonCode.is_failure`` does not exist on 1.6.1's ``ReasonCodes``
  (a failure is a value of 0x80 or more, MQTT v5 section 2.4);
- the connect timeout: a ``connect_timeout`` property on 2.x, ``_connect_timeout`` on 1.6.1;
- a broker's short DISCONNECT: 1.6.1 reads its reason code only when properties follow
  (remaining length over 2), so the two-byte form brokers send (reason code and an empty
  property length, MQTT v5 section 3.14.2) was never read: the broker's close looked like
  a lost connection and a "session taken over" (0x8E) went unseen. :func:`make_client`
  gives 1.6.1 clients 2.x's reading (:func:`_handle_disconnect`);
- 1.6.1's ``loop_start`` thread dies on an ``ssl.SSLEOFError`` raised while writing to a
  broker that just went away (2.x handles it); :func:`loop_start` keeps it alive. The
  agent's own link is not exposed: its per-connection thread catches every exception
  and rebuilds the client (link.py ``_paho_thread``).

The rest of the API the agent uses (tls_set, will_set with properties, connect with
clean_start and properties, subscribe, publish, loop, loop_forever, the socket-register
callback, queue and inflight limits) is the same in both. tests/cloud/test_link.py runs
against both versions (``make test-oldest`` runs tests/cloud on 1.6.1: packaging/oldest-deps.txt).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes

LOGGER = logging.getLogger(__name__)

try:
    from paho.mqtt.enums import CallbackAPIVersion
except ImportError:  # paho-mqtt 1.x
    CallbackAPIVersion = None  # type: ignore[assignment,misc]

PAHO_2 = CallbackAPIVersion is not None
"""True on paho-mqtt 2.x, whose callbacks already have the shape the agent uses."""

FAILURE_FROM = 0x80
"""MQTT v5 section 2.4: reason codes of 0x80 and above are failures."""


class Reason:
    """A 1.6.1 reason (``ReasonCodes`` or an ``MQTT_ERR_*`` int) with 2.x's face:
    ``is_failure``, ``value`` and a readable ``str``."""

    def __init__(self, raw: Any):
        self.raw = raw
        if isinstance(raw, int):
            self.value = raw
            self.is_failure = raw != mqtt.MQTT_ERR_SUCCESS
            self._text = mqtt.error_string(raw)
        else:
            self.value = int(raw.value)
            self.is_failure = self.value >= FAILURE_FROM
            self._text = str(raw)

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Reason({self._text!r}, value={self.value})"


def make_client(client_id: str, *, reconnect_on_failure: bool = True) -> mqtt.Client:
    """An MQTT v5 client on either paho; give it callbacks with :func:`set_callbacks`."""
    if PAHO_2:
        return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                           reconnect_on_failure=reconnect_on_failure)
    client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5, reconnect_on_failure=reconnect_on_failure)
    client._handle_disconnect = functools.partial(_handle_disconnect, client)  # type: ignore[method-assign,assignment]
    return client


def _handle_disconnect(client: mqtt.Client) -> int:
    """1.6.1: a broker's DISCONNECT read as 2.x reads it: the reason code whenever the
    packet has one (absent means 0x00, normal disconnection), properties when they follow;
    then 1.6.1's own ending (close the socket, ``on_disconnect`` with the reason)."""
    packet = client._in_packet["packet"]
    reason = ReasonCodes(PacketTypes.DISCONNECT)  # "Normal disconnection" unless the packet says
    properties = None
    if packet:
        reason.unpack(packet)
    if len(packet) > 1:
        properties = Properties(PacketTypes.DISCONNECT)
        properties.unpack(packet[1:])
    client._easy_log(mqtt.MQTT_LOG_DEBUG, "Received DISCONNECT %s %s", reason, properties)
    client._loop_rc_handle(reason, properties)  # type: ignore[arg-type,call-arg]  # 1.6.1
    return mqtt.MQTT_ERR_SUCCESS


def set_connect_timeout(client: mqtt.Client, seconds: float) -> None:
    if PAHO_2:
        client.connect_timeout = seconds
    else:
        client._connect_timeout = seconds


Callback = Callable[..., None]


def set_callbacks(client: mqtt.Client, *, on_connect: Callback | None = None,
                  on_disconnect: Callback | None = None, on_message: Callback | None = None,
                  on_publish: Callback | None = None, on_subscribe: Callback | None = None) -> None:
    """Install callbacks written for the version 2 API (the signatures in paho 2.x's
    ``CallbackAPIVersion.VERSION2``), adapting them on paho 1.6.1."""
    if PAHO_2:
        _assign(client, on_connect=on_connect, on_disconnect=on_disconnect, on_message=on_message,
                on_publish=on_publish, on_subscribe=on_subscribe)
        return
    _assign(
        client,
        on_connect=on_connect and (lambda cl, ud, flags, rc, props=None: on_connect(cl, ud, flags, Reason(rc), props)),
        on_disconnect=on_disconnect and (lambda cl, ud, rc, props=None: on_disconnect(cl, ud, None, Reason(rc), props)),
        on_message=on_message,
        on_publish=on_publish and (lambda cl, ud, mid: on_publish(cl, ud, mid, Reason(mqtt.MQTT_ERR_SUCCESS), None)),
        on_subscribe=on_subscribe and (lambda cl, ud, mid, rcs, props=None:
                                       on_subscribe(cl, ud, mid, [Reason(rc) for rc in rcs], props)),
    )


def loop_start(client: mqtt.Client) -> None:
    """``client.loop_start()``, with 1.6.1's network thread surviving a socket error that
    escapes its loop: the socket is closed, on_disconnect runs, and paho's own reconnect
    (``reconnect_delay_set``) takes over. ``client.loop_stop()`` stops it as usual."""
    if not PAHO_2:
        original = client._thread_main

        def resilient_main() -> None:
            while not client._thread_terminate:
                try:
                    original()
                    return
                except OSError as exc:
                    LOGGER.warning("paho 1.6.1 network loop failed (%s): reconnecting", exc)
                    client._sock_close()
                    client._do_on_disconnect(mqtt.MQTT_ERR_CONN_LOST)  # type: ignore[call-arg,arg-type] # 1.6.1

        client._thread_main = resilient_main  # type: ignore[method-assign]
    client.loop_start()


def _assign(client: mqtt.Client, **callbacks: Callback | None) -> None:
    for name, fn in callbacks.items():
        if fn is not None:
            setattr(client, name, fn)
