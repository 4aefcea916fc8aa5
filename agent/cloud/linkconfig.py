"""What the cloud link's parts share: their settings (``CloudConfig``) and counters (``LinkStats``).

The link is split into parts with one job each (agent.cloud.link's docstring); they all
read one frozen ``CloudConfig`` and count into one ``LinkStats``, so the timers below are
declared once, with their reasons, whichever part runs them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.cloud import pacing
from agent.cloud.backoff import BASE_S, CAP_S, FIRST_DELAY_MAX_S
from agent.config import CloudSection

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

WATCHDOG_PER_KEEPALIVE = 4.0
"""Issue 10: in the daemon the idle watchdog follows the keep-alive (20 min at the
default 300 s; its probe at half that): paho already finds a dead path by the missing
PINGRESP within 1.5 keep-alives, so the watchdog only catches what paho cannot see."""

WINDOW = 100
"""Records in flight per stream: enough to fill a cellular RTT, small enough that a
resend after a lost session costs little."""

MAX_INFLIGHT = 20
"""paho's QoS 1 inflight limit (its default is 20; set explicitly so it is a decision)."""

MAX_QUEUED = 500
"""paho's outgoing queue bound (its default is unbounded); above WINDOW x streams."""

REQUEST_ATTEMPT_S = 20.0
"""Re-send an assignment request with a new correlation id after this long without
an answer (the request or its reply may have died with a broker restart)."""


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

    @classmethod
    def from_section(cls, device_id: str, section: CloudSection, **overrides: Any) -> CloudConfig:
        """The link's settings from the agent's ``[cloud]`` table, in one place.

        The file names the broker, the keys and the keep-alive; the watchdog follows the
        keep-alive (``WATCHDOG_PER_KEEPALIVE``). ``overrides`` (any field above) are for
        the tools and tests that pace a link faster than a device would.
        """
        config = cls(device_id=device_id, host=section.host, port=section.port, ca_file=section.ca,
                     cert_file=section.cert, key_file=section.key, sealing_key_file=section.sealing_key,
                     platform_key_file=section.platform_key, keepalive=section.keepalive_s,
                     watchdog_idle=WATCHDOG_PER_KEEPALIVE * section.keepalive_s)
        return dataclasses.replace(config, **overrides)


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
    unwritten: int = 0
    """Events not yet durable: the state partition refused them (full, read-only); held in
    memory and written first when it takes writes again (``ReliableStreams.emit``)."""
    unwritten_dropped: int = 0
    """Events lost because more than ``UNWRITTEN_EVENTS_MAX`` waited for a writable disk."""
    usage_acks: int = 0
    """Acknowledgements of the usage stream: the update's health gate wants one (agent/update/gate.py)."""
    delays: list[float] = field(default_factory=list)
