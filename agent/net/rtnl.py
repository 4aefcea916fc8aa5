"""The few rtnetlink messages the agent sends, on a raw ``NETLINK_ROUTE`` socket.

Why not pyroute2: its ``IPRoute`` cost the serving daemon 5.3 MB of RSS on Debian 12's
0.7.2 (message classes for every rtnetlink family, ``multiprocessing``, ``unittest.mock``
for its ``ipmock``), for the handful of messages below (docs/footprint.md). Each is a
fixed header and one to three attributes (``rtnetlink(7)``, ``include/uapi/linux/
rtnetlink.h``, ``if_link.h``, ``if_addr.h``); the kernel checks them and answers with an
error or an ack, which :meth:`Rtnl.call` turns into :class:`RtnlError` (an ``OSError``
carrying the kernel's errno) or the answer's messages.

What is here, and who uses it (agent/net/link.py, agent/net/conntrack.py):

- look an interface up by name, read its flags, set it up with an MTU;
- list, replace and delete IPv4 addresses; list every address (the router's own);
- replace and delete the IPv4 default route through an interface;
- subscribe to link events (``RTMGRP_LINK``) and decode them.

Every request carries ``NLM_F_ACK`` and a sequence number; a reply for another sequence
(a late answer on a reused socket) is skipped. A socket is opened per operation, or kept
by a watcher; in a network namespace it is opened by a short-lived thread that entered
it (``socket_in_netns``), and keeps that namespace.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Self

NETLINK_ROUTE = 0
CLONE_NEWNET = 0x40000000

# message types (rtnetlink.h)
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
# flags (netlink.h)
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400
# attributes
IFLA_IFNAME, IFLA_MTU, IFLA_STATS64 = 3, 4, 23
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5
# values
RTMGRP_LINK = 0x1
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
"""The protocol ``ip route add`` (and pyroute2) give a route by default."""
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RTN_UNICAST = 1
ESRCH, ENODEV, EADDRNOTAVAIL, ENOBUFS = 3, 19, 99, 105

NLMSG = struct.Struct("=IHHII")  # length, type, flags, seq, pid
IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTATTR = struct.Struct("=HH")  # length, type
U32 = struct.Struct("=I")
ERRNO = struct.Struct("=i")
STATS64_HEAD = struct.Struct("=QQQQ")  # rx_packets, tx_packets, rx_bytes, tx_bytes (struct rtnl_link_stats64)

TIMEOUT_S = 2.0
"""The kernel answers an rtnetlink request at once; 2 s only bounds a wedged socket."""
RECV_BYTES = 65536
"""Larger than any one read's worth of the messages asked for here (a dump arrives in
reads of at most a page or two per message batch)."""


class RtnlError(OSError):
    """The kernel refused a request (``errno`` is its error), or the socket failed."""


@dataclass(frozen=True)
class LinkInfo:
    """An RTM_NEWLINK or RTM_DELLINK: the interface's index, name and flags."""

    kind: int
    index: int
    name: str | None
    flags: int

    @property
    def running(self) -> bool:
        """Administratively up and with carrier."""
        return bool(self.flags & IFF_UP and self.flags & IFF_LOWER_UP)


@dataclass(frozen=True)
class AddrInfo:
    """An address on an interface (IFA_LOCAL, or IFA_ADDRESS where there is no local)."""

    index: int
    family: int
    address: str
    prefixlen: int


def _attr(kind: int, payload: bytes) -> bytes:
    raw = RTATTR.pack(RTATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _attrs(data: bytes, start: int, end: int, wanted: tuple[int, ...]) -> dict[int, bytes]:
    """The ``wanted`` attributes between ``start`` and ``end``, by type (a repeated type:
    the last). Only those are copied: a link message carries some fifty attributes."""
    found: dict[int, bytes] = {}
    pos = start
    while pos + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, pos)
        if length < RTATTR.size or pos + length > end:
            break
        if kind & 0x3FFF in wanted:  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
            found[kind & 0x3FFF] = data[pos + RTATTR.size:pos + length]
        pos += (length + 3) & ~3
    return found


def messages(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, body start, body end) of each netlink message in one read."""
    pos = 0
    while pos + NLMSG.size <= len(data):
        length, kind, flags, seq, _ = NLMSG.unpack_from(data, pos)
        if length < NLMSG.size or pos + length > len(data):
            return
        yield kind, flags, seq, pos + NLMSG.size, pos + length
        pos += (length + 3) & ~3


def decode_link(data: bytes, kind: int, start: int, end: int) -> LinkInfo:
    _, _, index, flags, _ = IFINFO.unpack_from(data, start)
    name = _attrs(data, start + IFINFO.size, end, (IFLA_IFNAME,)).get(IFLA_IFNAME)
    return LinkInfo(kind, index, name.rstrip(b"\0").decode(errors="replace") if name is not None else None, flags)


def decode_addr(data: bytes, start: int, end: int) -> AddrInfo | None:
    family, prefixlen, _, _, index = IFADDR.unpack_from(data, start)
    attrs = _attrs(data, start + IFADDR.size, end, (IFA_LOCAL, IFA_ADDRESS))
    raw = attrs.get(IFA_LOCAL, attrs.get(IFA_ADDRESS))
    if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return AddrInfo(index, family, socket.inet_ntop(family, raw), prefixlen)


def link_events(data: bytes) -> list[LinkInfo]:
    """The link messages of one read from a socket subscribed to RTMGRP_LINK."""
    return [decode_link(data, kind, start, end) for kind, _, _, start, end in messages(data)
            if kind in (RTM_NEWLINK, RTM_DELLINK) and end - start >= IFINFO.size]


def socket_in_netns(netns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM,
                    proto: int = 0) -> socket.socket:
    """A socket that lives in network namespace ``netns``, opened from a short-lived thread
    that entered it: the socket keeps its namespace, the caller's thread keeps its own.
    Never creates a namespace."""
    result: list[socket.socket | OSError] = []

    def enter_and_open() -> None:
        try:
            fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(socket.socket(family, kind, proto))
        except OSError as exc:
            result.append(exc)

    worker = threading.Thread(target=enter_and_open, name=f"netns-{netns}")
    worker.start()
    worker.join()
    (got,) = result
    if isinstance(got, OSError):
        raise got
    return got


def route_socket(netns: str | None = None) -> socket.socket:
    """A NETLINK_ROUTE socket in ``netns`` (None: ours)."""
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    return socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)


class Rtnl:
    """One NETLINK_ROUTE socket for requests (a context manager: closed on exit)."""

    def __init__(self, netns: str | None = None):
        self._sock = route_socket(netns)
        self._sock.settimeout(TIMEOUT_S)
        self._seq = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def call(self, kind: int, body: bytes, flags: int = 0, *, get: bool = False) -> list[tuple[int, bytes, int, int]]:
        """Send one request and collect its answer: (type, read, start, end) of each
        message up to the ack (or NLMSG_DONE of a dump). Raises RtnlError with the
        kernel's errno when it refuses.

        ``get``: a request for one object, answered by one message or an error, so no
        ack is asked for (one read less: the counters are read every second)."""
        self._seq += 1
        seq = self._seq
        ack = 0 if get else NLM_F_ACK
        self._sock.send(NLMSG.pack(NLMSG.size + len(body), kind, NLM_F_REQUEST | ack | flags, seq, 0) + body)
        answer: list[tuple[int, bytes, int, int]] = []
        while True:
            try:
                data = self._sock.recv(RECV_BYTES)
            except TimeoutError as exc:
                raise RtnlError(f"no answer from the kernel within {TIMEOUT_S:.0f} s") from exc
            for mtype, _, mseq, start, end in messages(data):
                if mseq != seq:
                    continue  # a late answer to an earlier request
                if mtype == NLMSG_DONE:
                    return answer
                if mtype == NLMSG_ERROR:
                    code = -ERRNO.unpack_from(data, start)[0]
                    if code:
                        raise RtnlError(code, os.strerror(code))
                    return answer  # the ack
                if mtype != NLMSG_NOOP:
                    answer.append((mtype, data, start, end))
            if get and answer:
                return answer

    # -- links ------------------------------------------------------------------------

    def _by_name(self, ifname: str) -> tuple[bytes, int, int] | None:
        """(read, start, end) of RTM_NEWLINK for ``ifname``, or None when there is none."""
        try:
            answer = self.call(RTM_GETLINK, IFINFO.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, ifname.encode() + b"\0"),
                               get=True)
        except RtnlError as exc:
            if exc.errno == ENODEV:
                return None
            raise
        return next(((data, start, end) for kind, data, start, end in answer if kind == RTM_NEWLINK), None)

    def link_by_name(self, ifname: str) -> LinkInfo | None:
        """The interface called ``ifname``, or None when there is none."""
        found = self._by_name(ifname)
        return decode_link(found[0], RTM_NEWLINK, found[1], found[2]) if found else None

    def stats64(self, ifname: str) -> tuple[int, int, int, int, int] | None:
        """(index, rx_bytes, tx_bytes, rx_packets, tx_packets) of ``ifname`` from
        IFLA_STATS64 (the 64-bit counters), or None when there is no such interface."""
        found = self._by_name(ifname)
        if found is None:
            return None
        data, start, end = found
        _, _, index, _, _ = IFINFO.unpack_from(data, start)
        stats = _attrs(data, start + IFINFO.size, end, (IFLA_STATS64,)).get(IFLA_STATS64)
        if stats is None or len(stats) < STATS64_HEAD.size:
            raise RtnlError(f"{ifname}: the kernel sent no IFLA_STATS64")
        rx_packets, tx_packets, rx_bytes, tx_bytes = STATS64_HEAD.unpack_from(stats)
        return index, rx_bytes, tx_bytes, rx_packets, tx_packets

    def link(self, index: int) -> LinkInfo:
        answer = self.call(RTM_GETLINK, IFINFO.pack(0, 0, index, 0, 0), get=True)
        for kind, data, start, end in answer:
            if kind == RTM_NEWLINK:
                return decode_link(data, kind, start, end)
        raise RtnlError(ENODEV, os.strerror(ENODEV))

    def set_up(self, index: int, mtu: int | None = None) -> None:
        """Administratively up (IFF_UP in flags and change), with ``mtu`` when given."""
        body = IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
        if mtu is not None:
            body += _attr(IFLA_MTU, U32.pack(mtu))
        self.call(RTM_NEWLINK, body)

    # -- addresses --------------------------------------------------------------------

    def addresses(self, index: int | None = None, family: int = socket.AF_UNSPEC) -> list[AddrInfo]:
        """Addresses of ``family`` (all families: AF_UNSPEC) on interface ``index`` (all: None)."""
        found = []
        for kind, data, start, end in self.call(RTM_GETADDR, IFADDR.pack(family, 0, 0, 0, 0), NLM_F_DUMP):
            addr = decode_addr(data, start, end) if kind == RTM_NEWADDR else None
            if addr and (index is None or addr.index == index) and family in (socket.AF_UNSPEC, addr.family):
                found.append(addr)
        return found

    def _addr(self, kind: int, flags: int, index: int, address: str, prefixlen: int) -> None:
        packed = ipaddress.IPv4Address(address).packed
        body = IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        self.call(kind, body + _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed), flags)

    def replace_address(self, index: int, address: str, prefixlen: int) -> None:
        """Add IPv4 ``address/prefixlen`` to ``index``, or keep it if it is there."""
        self._addr(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, index, address, prefixlen)

    def delete_address(self, index: int, address: str, prefixlen: int) -> None:
        self._addr(RTM_DELADDR, 0, index, address, prefixlen)

    # -- the default route ------------------------------------------------------------

    def replace_default(self, oif: int, gateway: str | None) -> None:
        """The IPv4 default route through ``oif`` (via ``gateway``, or on-link when None:
        a point-to-point bearer has no gateway), replacing whichever default was there in
        one message, so there is never none nor two."""
        scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
        body = RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
        body += _attr(RTA_OIF, U32.pack(oif))
        if gateway:
            body += _attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
        self.call(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_REPLACE)

    def delete_default(self, oif: int, gateway: str | None = None) -> None:
        """Delete the IPv4 default route through ``oif`` (and ``gateway`` when given), of
        any scope and protocol; RtnlError ESRCH when there is none."""
        body = RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, 0, RT_SCOPE_NOWHERE, 0, 0)
        body += _attr(RTA_OIF, U32.pack(oif))
        if gateway:
            body += _attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
        self.call(RTM_DELROUTE, body)


def link_event_socket(netns: str | None = None) -> socket.socket:
    """A socket subscribed to link events (RTMGRP_LINK); read it with ``link_events``."""
    sock = route_socket(netns)
    try:
        sock.bind((0, RTMGRP_LINK))
    except OSError:
        sock.close()
        raise
    return sock
