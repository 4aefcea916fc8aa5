"""Flows through the router, read from the kernel's conntrack table over netlink.

No subprocess and no ``conntrack`` tool (a stock OpenWrt image has none): the table is
dumped over a netlink socket and only the attributes the agent needs are decoded
(``decode_batch``), the way agent/net/link.py reads counters. A flow counts as *active* when its byte count
moved in the last ``FLOW_ACTIVE_SECONDS``, which needs the kernel's per-flow byte
accounting (``net.netfilter.nf_conntrack_acct``, off by default): ``enable_accounting``
switches it on where the kernel allows (root, the sysctl present).

Where conntrack is absent (no module, no permission, accounting refused) ``available``
is False with the ``reason``; the sampler then falls back to LAN-side counters and the
health evidence says so (docs/health.md).

The router's own flows (its original source is one of the router's addresses: the echo,
the active check, the broker connection) are not user demand: they are left out of the
count, and so are a LAN client's flows *to* the router (the renter's status page, issue 25:
a phone reloading it is not asking the SIM for data). A LAN client's flow is forwarded, so its original source is the client's address,
even when it goes to the same server and port as the agent's (in the lab the probe
endpoint and the users' byte source are one server). The bytes of the router's flows to
the endpoints named with ``own()`` (the broker) are summed as the agent's own traffic.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import NetError
from agent.net.rtnl import Rtnl

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


# ctnetlink (linux/netfilter/nfnetlink_conntrack.h): the attributes a flow's key and bytes
# are in. Everything else in a message is skipped unread.
NETLINK_NETFILTER = 12
CT_GET = (1 << 8) | 1
"""NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_GET."""
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLA_TYPE_MASK = 0x3FFF
"""Attribute type without NLA_F_NESTED and NLA_F_NET_BYTEORDER."""
CTA_TUPLE_ORIG, CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY = 1, 9, 10
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_COUNTERS_BYTES = 2
DUMP_RECV_BYTES = 65536
"""One recv of a dump: the kernel fills at most a page-sized batch of messages."""
DUMP_TIMEOUT_S = 2.0
"""A dump of a router's table takes milliseconds; a silent kernel means broken."""


def _attrs(data: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """Attribute type -> (value start, value end) between ``start`` and ``end`` (first of each type)."""
    found: dict[int, tuple[int, int]] = {}
    while start + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, start)
        if length < 4 or start + length > end:
            break
        found.setdefault(kind & NLA_TYPE_MASK, (start + 4, start + length))
        start += (length + 3) & ~3
    return found


def _nested(data: bytes, attrs: dict[int, tuple[int, int]], kind: int) -> dict[int, tuple[int, int]]:
    span = attrs.get(kind)
    return _attrs(data, *span) if span else {}


def _address(data: bytes, ip: dict[int, tuple[int, int]], v4: int, v6: int) -> str:
    for kind, family in ((v4, socket.AF_INET), (v6, socket.AF_INET6)):
        if kind in ip:
            return socket.inet_ntop(family, data[ip[kind][0]:ip[kind][1]])
    return "None"


def decode_flow(data: bytes, start: int, end: int) -> FlowBytes | None:
    """The attributes of one conntrack message (after its nfgenmsg) -> FlowBytes; None
    without an original tuple."""
    top = _attrs(data, start, end)
    if CTA_TUPLE_ORIG not in top:
        return None
    orig = _nested(data, top, CTA_TUPLE_ORIG)
    ip, proto = _nested(data, orig, CTA_TUPLE_IP), _nested(data, orig, CTA_TUPLE_PROTO)
    number = data[proto[CTA_PROTO_NUM][0]] if CTA_PROTO_NUM in proto else 0
    sport, dport = (struct.unpack_from("!H", data, proto[kind][0])[0] if kind in proto else 0
                    for kind in (CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT))
    total = 0
    for direction in (CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY):
        counters = _nested(data, top, direction)
        if CTA_COUNTERS_BYTES in counters:
            total += struct.unpack_from("!Q", data, counters[CTA_COUNTERS_BYTES][0])[0]
    key = (number, _address(data, ip, CTA_IP_V4_SRC, CTA_IP_V6_SRC), _address(data, ip, CTA_IP_V4_DST, CTA_IP_V6_DST),
           sport, dport)
    return FlowBytes(key, total)


def decode_batch(data: bytes) -> tuple[list[FlowBytes], bool]:
    """The flows in one recv of a dump, and whether the dump ended (NLMSG_DONE)."""
    flows: list[FlowBytes] = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16 or offset + length > len(data):
            raise NetError(f"conntrack dump: truncated netlink message ({length} bytes at {offset})")
        if kind == NLMSG_DONE:
            return flows, True
        if kind == NLMSG_ERROR:
            errno = -struct.unpack_from("=i", data, offset + 16)[0]
            raise NetError(f"conntrack dump refused: {os.strerror(errno)}")
        if kind >> 8 == 1:  # NFNL_SUBSYS_CTNETLINK (a dump answers with IPCTNL_MSG_CT_NEW)
            flow = decode_flow(data, offset + 20, offset + length)  # nlmsghdr (16) + nfgenmsg (4)
            if flow is not None:
                flows.append(flow)
        offset += (length + 3) & ~3
    return flows, False


LOCAL_ADDRESSES_TTL_S = 10.0
"""The router's addresses are re-read at most every 10 s (a SIM switch changes the WAN's)."""


def _local_addresses() -> set[str]:
    """Every address of every interface of the router (rtnetlink's address dump)."""
    try:
        with Rtnl() as sock:
            return {a.address for a in sock.addresses()}
    except OSError as exc:
        raise NetError(f"cannot list the router's addresses: {exc}") from exc


def _netlink_dump() -> list[FlowBytes]:
    """Every IPv4 flow of the conntrack table, read over a raw netlink socket (IPv4 only,
    as pyroute2's dump was: the data context is IPv4, agent/net/link.py).

    Decoded here rather than by pyroute2's NFCTSocket: that one builds a tree of Python
    objects per flow, a few thousand objects a second on a router with LAN traffic, whose
    churn kept about 13 MB of the allocator's arenas resident (docs/footprint.md)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.settimeout(DUMP_TIMEOUT_S)
            sock.bind((0, 0))
            header = struct.pack("=IHHII", 20, CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
            sock.send(header + struct.pack("=BBH", socket.AF_INET, 0, 0))  # nfgenmsg: family, version, res_id
            flows: list[FlowBytes] = []
            done = False
            while not done:
                batch, done = decode_batch(sock.recv(DUMP_RECV_BYTES))
                flows += batch
            return flows
    except OSError as exc:
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
            if key[2] in local:  # a LAN client talking to the router itself (the status page): no WAN demand
                continue
            if before is None or flow.bytes != before:
                self._moved_at[key] = now
            if now - self._moved_at.get(key, -1e9) <= self._active_seconds:
                active += 1
        for key in [k for k in self._bytes if k not in seen]:
            del self._bytes[key]
            self._moved_at.pop(key, None)
        return active
