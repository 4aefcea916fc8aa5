"""Flows through the router, read from the kernel's conntrack table over netlink.

No subprocess and no ``conntrack`` tool (a stock OpenWrt image has none): pyroute2's
``NFCTSocket`` dumps the table directly. A flow counts as *active* when its byte count
moved in the last ``FLOW_ACTIVE_SECONDS``, which needs the kernel's per-flow byte
accounting (``net.netfilter.nf_conntrack_acct``, off by default): ``enable_accounting``
switches it on where the kernel allows (root, the sysctl present).

Where conntrack is absent (no module, no permission, accounting refused) ``available``
is False with the ``reason``; the sampler then falls back to LAN-side counters and the
health evidence says so (docs/health.md).

The router's own flows (its original source is one of the router's addresses: the echo,
the active check, the broker connection) are not user demand: they are left out of the
count. A LAN client's flow is forwarded, so its original source is the client's address,
even when it goes to the same server and port as the agent's (in the lab the probe
endpoint and the users' byte source are one server). The bytes of the router's flows to
the endpoints named with ``own()`` (the broker) are summed as the agent's own traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import NetError

LOGGER = logging.getLogger(__name__)

FLOW_ACTIVE_SECONDS = 3.0
"""A flow that moved bytes in the last 3 s is "active": longer than a web page's
think-time gap between objects, shorter than the idle hold of the classifier."""

ACCT_SYSCTL = Path("/proc/sys/net/netfilter/nf_conntrack_acct")
"""Per-flow byte accounting switch (0 by default in the kernel and on OpenWrt)."""

FlowKey = tuple[int, str, str, int, int]
"""(protocol number, source, destination, source port, destination port) of the original direction."""


@dataclass(frozen=True)
class FlowBytes:
    key: FlowKey
    bytes: int
    """Both directions, as the kernel counted them (IP bytes)."""


def enable_accounting(path: Path = ACCT_SYSCTL) -> tuple[bool, str]:
    """Switch per-flow byte accounting on; (on, why not) — never raises."""
    try:
        if path.read_text().strip() == "1":
            return True, ""
        path.write_text("1\n")
        return path.read_text().strip() == "1", ""
    except OSError as exc:
        return False, f"cannot enable {path.name}: {exc.strerror or exc}"


def _attr(msg: Any, *names: str) -> Any:
    node = msg
    for name in names:
        if node is None:
            return None
        node = node.get_attr(name)
    return node


def flow_from_message(msg: Any) -> FlowBytes | None:
    """One netlink conntrack message -> FlowBytes (None if it lacks a tuple)."""
    orig = _attr(msg, "CTA_TUPLE_ORIG")
    if orig is None:
        return None
    src = _attr(orig, "CTA_TUPLE_IP", "CTA_IP_V4_SRC") or _attr(orig, "CTA_TUPLE_IP", "CTA_IP_V6_SRC")
    dst = _attr(orig, "CTA_TUPLE_IP", "CTA_IP_V4_DST") or _attr(orig, "CTA_TUPLE_IP", "CTA_IP_V6_DST")
    proto = _attr(orig, "CTA_TUPLE_PROTO", "CTA_PROTO_NUM") or 0
    sport = _attr(orig, "CTA_TUPLE_PROTO", "CTA_PROTO_SRC_PORT") or 0
    dport = _attr(orig, "CTA_TUPLE_PROTO", "CTA_PROTO_DST_PORT") or 0
    total = sum(_attr(msg, direction, "CTA_COUNTERS_BYTES") or 0
                for direction in ("CTA_COUNTERS_ORIG", "CTA_COUNTERS_REPLY"))
    return FlowBytes((int(proto), str(src), str(dst), int(sport), int(dport)), int(total))


LOCAL_ADDRESSES_TTL_S = 10.0
"""The router's addresses are re-read at most every 10 s (a SIM switch changes the WAN's)."""


def _local_addresses() -> set[str]:
    # a submodule, never the package's names: agent/net/__init__.py defers pyroute2's __init__
    from pyroute2.iproute import IPRoute

    try:
        with IPRoute() as ipr:
            return {str(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr()} - {"None"}
    except Exception as exc:  # pyroute2 raises NetlinkError, OSError and others
        raise NetError(f"cannot list the router's addresses: {exc}") from exc


def _netlink_dump() -> list[FlowBytes]:
    # netlink only: imported where it is used, from its submodule as above
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTSocket

    try:
        with NFCTSocket() as sock:
            return [f for f in (flow_from_message(m) for m in sock.dump()) if f is not None]
    except Exception as exc:  # pyroute2 raises NetlinkError, OSError and others
        raise NetError(f"conntrack dump over netlink failed: {exc}") from exc


class ConntrackFlows:
    """Counts user flows that moved data recently; sums the agent's own flows' bytes."""

    def __init__(self, dump: Callable[[], Iterable[FlowBytes]] = _netlink_dump,
                 active_seconds: float = FLOW_ACTIVE_SECONDS, accounting: bool = True,
                 acct_path: Path = ACCT_SYSCTL, local_addresses: Callable[[], set[str]] = _local_addresses):
        self._dump = dump
        self._read_local = local_addresses
        self._local: tuple[float, set[str]] | None = None
        self._active_seconds = active_seconds
        self._own: set[tuple[str, int]] = set()
        self._bytes: dict[FlowKey, int] = {}
        self._moved_at: dict[FlowKey, float] = {}
        self.own_bytes = 0
        """Bytes of flows to the agent's own endpoints seen so far (both ways)."""
        self.available = True
        self.reason = ""
        if accounting:
            on, why = enable_accounting(acct_path)
            if not on:
                self.available, self.reason = False, why
                LOGGER.warning("conntrack byte accounting unavailable (%s): demand from LAN counters", why)

    def own(self, host: str, port: int) -> None:
        """The router's flows to ``host:port`` are counted as the agent's own bytes (the broker)."""
        self._own.add((host, port))

    def _local_set(self) -> set[str]:
        now = time.monotonic()
        if self._local is None or now - self._local[0] >= LOCAL_ADDRESSES_TTL_S:
            self._local = (now, self._read_local())
        return self._local[1]

    def update(self, now: float) -> int | None:
        """Active user flows at ``now``; None when conntrack cannot be read (logged once)."""
        if not self.available:
            return None
        try:
            flows = list(self._dump())
            local = self._local_set()
        except NetError as exc:
            self.available, self.reason = False, str(exc)
            LOGGER.warning("%s: demand from LAN counters from now on", exc)
            return None
        seen: set[FlowKey] = set()
        active = 0
        for flow in flows:
            key = flow.key
            seen.add(key)
            before = self._bytes.get(key)
            self._bytes[key] = flow.bytes
            if key[1] in local:  # the router's own flow: never demand
                if (key[2], key[4]) in self._own:
                    self.own_bytes += flow.bytes - (before or 0) if flow.bytes >= (before or 0) else 0
                continue
            if before is None or flow.bytes != before:
                self._moved_at[key] = now
            if now - self._moved_at.get(key, -1e9) <= self._active_seconds:
                active += 1
        for key in [k for k in self._bytes if k not in seen]:
            del self._bytes[key]
            self._moved_at.pop(key, None)
        return active
