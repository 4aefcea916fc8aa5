"""A minimal rtnetlink client: the five requests the WAN link needs, and link events.

Why not pyroute2: the agent needs to look a link up, set it up with an MTU, replace and
delete one IPv4 address and one default route, and hear link up/down. pyroute2 does
that and a great deal more, at a price a router notices: importing it adds about
11 MB of resident memory (its package initialiser loads NDB, sqlite3, multiprocessing and
unittest.mock), and the versions the distributions ship are too old for the asyncio API
(OpenWrt's stable branches have 0.7.9, Debian 12 0.7.2; ``AsyncIPRoute`` came in 0.9.1).
The messages below are the kernel's stable ABI (``linux/rtnetlink.h``,
``linux/if_addr.h``, ``linux/if_link.h``); each request is sent with ``NLM_F_ACK`` and
its answer checked, so a refusal is an :class:`RtnlError` carrying the kernel's errno.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

LOGGER = logging.getLogger(__name__)

NETLINK_ROUTE = 0
CLONE_NEWNET = 0x40000000
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_STATS64 = 1, 3, 4, 23
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
"""What ``ip route`` stamps on routes an administrator adds: not a routing daemon's."""
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RTN_UNICAST = 1
RTMGRP_LINK = 0x1
IFF_UP = 0x1

NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTATTR = struct.Struct("=HH")
U32 = struct.Struct("=I")
NETLINK_TIMEOUT_S = 2.0
"""The kernel answers a route request at once; 2 s only bounds a wedged socket."""
RECV_BYTES = 65536


class RtnlError(OSError):
    """The kernel refused a request (``errno`` is the kernel's), or its answer was garbled."""


@dataclass(frozen=True)
class LinkMessage:
    """An RTM_NEWLINK / RTM_DELLINK, as much of it as the agent reads."""

    kind: int
    index: int
    flags: int
    ifname: str | None


def socket_in(netns: str | None) -> socket.socket:
    """A NETLINK_ROUTE socket in ``netns`` (None: ours); never creates a namespace.

    setns affects only the calling thread, so in a namespace the socket is created by a
    short-lived thread that entered it; the socket stays bound to that namespace."""
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    result: list[socket.socket | OSError] = []

    import ctypes  # only for setns (tests, the virtual board): 0.4 MB a router never needs

    def enter_and_open() -> None:
        try:
            fd = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE))
        except OSError as exc:
            result.append(exc)

    worker = threading.Thread(target=enter_and_open, name=f"netns-{netns}")
    worker.start()
    worker.join()
    (got,) = result
    if isinstance(got, OSError):
        raise got
    return got


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    raw = RTATTR.pack(RTATTR.size + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def attrs(data: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    pos = start
    while pos + RTATTR.size <= end:
        alen, kind = RTATTR.unpack_from(data, pos)
        if alen < RTATTR.size:
            return
        yield kind & 0x3FFF, data[pos + RTATTR.size:pos + alen]  # strip NLA_F_NESTED/NET_BYTEORDER
        pos += (alen + 3) & ~3


def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, whole message) for each netlink message in one datagram."""
    pos = 0
    while pos + NLMSG.size <= len(data):
        length, kind, flags, seq, _ = NLMSG.unpack_from(data, pos)
        if length < NLMSG.size:
            return
        yield kind, flags, seq, data[pos:pos + length]
        pos += (length + 3) & ~3


def parse_link(msg: bytes) -> LinkMessage:
    kind = NLMSG.unpack_from(msg, 0)[1]
    _, _, index, flags, _ = IFINFO.unpack_from(msg, NLMSG.size)
    name = None
    for akind, payload in attrs(msg, NLMSG.size + IFINFO.size, len(msg)):
        if akind == IFLA_IFNAME:
            name = payload.rstrip(b"\0").decode(errors="replace")
    return LinkMessage(kind, index, flags, name)


class Rtnl:
    """One NETLINK_ROUTE socket for a few requests; ``close()`` when done."""

    def __init__(self, netns: str | None = None):
        self.sock = socket_in(netns)
        self.sock.settimeout(NETLINK_TIMEOUT_S)
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> bytes | None:
        """Send one request; return the kernel's answer message, or None for a bare ACK."""
        self._seq += 1
        self.sock.send(NLMSG.pack(NLMSG.size + len(body), kind, NLM_F_REQUEST | flags, self._seq, 0) + body)
        while True:
            for mkind, _, seq, msg in messages(self.sock.recv(RECV_BYTES)):
                if seq != self._seq:
                    continue  # a stray answer to an earlier, timed-out request
                if mkind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", msg, NLMSG.size)
                    if code == 0:
                        return None
                    raise RtnlError(-code, os.strerror(-code))
                if mkind == NLMSG_DONE:
                    return None
                return msg

    # -- links --------------------------------------------------------------------------

    def link(self, ifname: str) -> LinkMessage | None:
        """The link named ``ifname``, or None if there is none."""
        body = IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, ifname.encode() + b"\0")
        try:
            msg = self.request(RTM_GETLINK, 0, body)
        except RtnlError as exc:
            if exc.errno == 19:  # ENODEV
                return None
            raise
        if msg is None:
            raise RtnlError(0, f"no answer for link {ifname}")
        return parse_link(msg)

    def set_link_up(self, index: int, mtu: int | None = None) -> None:
        body = IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
        if mtu:
            body += attr(IFLA_MTU, U32.pack(mtu))
        self.request(RTM_NEWLINK, NLM_F_ACK, body)

    # -- addresses and routes ---------------------------------------------------------------

    def replace_addr(self, index: int, address: str, prefix: int) -> None:
        self.request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, _ifaddr(index, address, prefix))

    def del_addr(self, index: int, address: str, prefix: int) -> None:
        self.request(RTM_DELADDR, NLM_F_ACK, _ifaddr(index, address, prefix))

    def replace_default(self, oif: int, gateway: str | None) -> None:
        """The IPv4 default route via ``gateway`` (or on-link through ``oif``), in one
        RTM_NEWROUTE with NLM_F_REPLACE: never zero or two defaults."""
        scope = RT_SCOPE_UNIVERSE if gateway else RT_SCOPE_LINK
        self.request(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, _default_route(oif, gateway, scope))

    def del_default(self, oif: int, gateway: str | None) -> None:
        self.request(RTM_DELROUTE, NLM_F_ACK, _default_route(oif, gateway, RT_SCOPE_NOWHERE))


def _ifaddr(index: int, address: str, prefix: int) -> bytes:
    packed = ipaddress.IPv4Address(address).packed
    return (IFADDR.pack(socket.AF_INET, prefix, 0, RT_SCOPE_UNIVERSE, index)
            + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed))


def _default_route(oif: int, gateway: str | None, scope: int) -> bytes:
    body = RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, scope, RTN_UNICAST, 0)
    body += attr(RTA_OIF, U32.pack(oif))
    if gateway:
        body += attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
    return body


def event_socket(netns: str | None) -> socket.socket:
    """A non-blocking socket subscribed to link events (RTMGRP_LINK), for ``sock_recv``."""
    sock = socket_in(netns)
    sock.bind((0, RTMGRP_LINK))
    sock.setblocking(False)
    return sock


def link_events(data: bytes) -> Iterator[LinkMessage]:
    for kind, _, _, msg in messages(data):
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            yield parse_link(msg)
