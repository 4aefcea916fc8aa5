"""The WAN data interface over netlink (pyroute2): address, default route, events, counters.

``WanLink`` applies the modem's data context (address/prefix, gateway, DNS, MTU) to the
data interface, replaces the default route in one RTM_NEWROUTE with NLM_F_REPLACE (so a
switch from one uplink to another never has zero or two defaults), takes every address
and the default route off again on release, reports link up/down/gone, and reads the
64-bit counters the usage meter needs. ``netns`` points it at a network namespace (tests,
the virtual board).

Blocking netlink calls are short (one request, one answer); the daemon runs them in a
thread via ``asyncio.to_thread`` or calls them from the sampler's thread.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

# Submodules, never the package's names: agent/net/__init__.py defers pyroute2's __init__.
from pyroute2.iproute import IPRoute

try:  # pyroute2 >= 0.9; OpenWrt (0.7.9) and Debian 12 (0.7.2) have only the blocking API
    from pyroute2.iproute import AsyncIPRoute
except ImportError:  # pragma: no cover - exercised on the distributions' pyroute2
    AsyncIPRoute = None
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTMGRP_LINK

from agent.errors import NetError
from agent.usage.counters import Counters

LOGGER = logging.getLogger(__name__)

EVENT_POLL_S = 0.5
"""How often the event watcher thread checks for ``stop``: bounds shutdown latency."""

WATCH_START_TIMEOUT_S = 5.0
"""Opening a netlink socket (and entering a namespace) takes milliseconds; 5 s means broken."""

MIN_MTU, MAX_MTU = 576, 9000
"""IPv4's minimum datagram size (RFC 791) and jumbo frames: a context MTU outside is bogus."""

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000


class ContextLike(Protocol):
    """What the modem's data context provides (modem/driver's ContextParams matches this)."""

    address: str
    prefix: int
    gateway: str | None
    dns: tuple[str, ...] | list[str]
    mtu: int | None


@dataclass(frozen=True)
class ContextParams:
    """A concrete data context, for callers that have no modem value at hand."""

    address: str
    prefix: int
    gateway: str | None = None
    dns: tuple[str, ...] = ()
    mtu: int | None = None


@dataclass(frozen=True)
class LinkEvent:
    """The data interface went ``up`` (carrier), ``down``, or is ``gone`` (deleted)."""

    kind: str
    ifname: str
    ifindex: int


@dataclass
class _Applied:
    address: str | None = None
    prefix: int = 0
    route: dict[str, Any] = field(default_factory=dict)


class WanLink:
    """One data interface, optionally inside a network namespace."""

    def __init__(self, ifname: str, *, netns: str | None = None):
        self.ifname = ifname
        self.netns = netns
        self._applied = _Applied()
        self._stats: _StatsSocket | None = None
        self._stats_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------

    @contextmanager
    def _ipr(self, operation: str) -> Iterator[IPRoute]:
        """An IPRoute for one operation; every netlink failure becomes a NetError."""
        try:
            ipr = _iproute(self.netns)
        except (OSError, NetlinkError) as exc:
            raise NetError(f"{operation} {self.ifname}: cannot open netlink ({exc})") from exc
        try:
            yield ipr
        except NetlinkError as exc:
            raise NetError(f"{operation} {self.ifname}: {exc.args[-1] if exc.args else exc} "
                           f"(errno {exc.code})") from exc
        except OSError as exc:
            raise NetError(f"{operation} {self.ifname}: {exc}") from exc
        finally:
            ipr.close()

    def _index(self, ipr: IPRoute, operation: str) -> int:
        found = ipr.link_lookup(ifname=self.ifname)
        if not found:
            raise NetError(f"{operation} {self.ifname}: no such interface"
                           + (f" in netns {self.netns}" if self.netns else ""))
        return int(found[0])

    def ifindex(self) -> int:
        """The interface's current index (changes when the interface is re-created)."""
        with self._ipr("lookup") as ipr:
            return self._index(ipr, "lookup")

    # -- configuration -------------------------------------------------------------

    def apply(self, ctx: ContextLike) -> None:
        """Bring the interface up with the context's MTU and address, then make it the
        default route (replacing whichever default there was, in one message)."""
        address, prefix, gateway = _validate(ctx, self.ifname)
        with self._ipr("apply") as ipr:
            idx = self._index(ipr, "apply")
            link_args: dict[str, Any] = {"index": idx, "state": "up"}
            if ctx.mtu:
                link_args["mtu"] = int(ctx.mtu)
            ipr.link("set", **link_args)
            if self._applied.address and (self._applied.address, self._applied.prefix) != (address, prefix):
                self._del_addr(ipr, idx, self._applied.address, self._applied.prefix)
            self._del_stale(ipr, idx, address, prefix)
            ipr.addr("replace", index=idx, address=address, prefixlen=prefix)
            self._applied.address, self._applied.prefix = address, prefix
            self._replace_default(ipr, idx, gateway)
        LOGGER.info("%s: %s/%d gw %s mtu %s applied", self.ifname, address, prefix, gateway, ctx.mtu)

    def _replace_default(self, ipr: IPRoute, idx: int, gateway: str | None) -> None:
        route: dict[str, Any] = {"dst": "0.0.0.0/0", "oif": idx}
        if gateway:
            route["gateway"] = gateway
        else:
            route["scope"] = 253  # RT_SCOPE_LINK: point-to-point wwan has no gateway
        ipr.route("replace", **route)
        self._applied.route = route

    def release(self) -> None:
        """Take the default route through the interface and every IPv4 address off it;
        leave the link as found.

        Every address, not only what this process applied: the agent owns the data
        interface, and a previous run that died without releasing (SIGKILL, power to the
        agent only) leaves its address and default route behind. Were the next bearer to
        come up under them, everything the router sends or masquerades would leave with an
        address the carrier no longer admits: counted as sent by the device, dropped
        unbilled by the carrier (measured in the lab: a LAN host's 51-byte UDP echo after a
        restart that found the modem's context gone)."""
        with self._ipr("release") as ipr:
            found = ipr.link_lookup(ifname=self.ifname)
            if not found:
                LOGGER.info("%s: already gone at release", self.ifname)
                self._applied = _Applied()
                return
            idx = int(found[0])
            try:
                ipr.route("del", **(self._applied.route or {"dst": "0.0.0.0/0", "oif": idx}))
            except NetlinkError as exc:
                if exc.code != 3:  # ESRCH: none, or already replaced by another uplink
                    raise
            for msg in ipr.get_addr(index=idx, family=socket.AF_INET):
                address, prefix = msg.get_attr("IFA_ADDRESS"), int(msg["prefixlen"])
                if address and (address, prefix) != (self._applied.address, self._applied.prefix):
                    LOGGER.info("%s: removing %s/%d left by a previous run", self.ifname, address, prefix)
                self._del_addr(ipr, idx, address, prefix)
        self._applied = _Applied()

    def _del_stale(self, ipr: IPRoute, idx: int, address: str, prefix: int) -> None:
        """Remove IPv4 addresses a previous run (or a previous context) left on the data
        interface: the agent owns it, and a stale primary address would become the source
        of every packet, which the carrier drops (issue 9: a restart after the modem lost
        its context moved to another address and never reached the cloud)."""
        for msg in ipr.get_addr(index=idx, family=socket.AF_INET):
            old, old_prefix = msg.get_attr("IFA_ADDRESS"), int(msg["prefixlen"])
            if old and (old, old_prefix) != (address, prefix):
                LOGGER.info("%s: removing stale address %s/%d", self.ifname, old, old_prefix)
                self._del_addr(ipr, idx, old, old_prefix)

    @staticmethod
    def _del_addr(ipr: IPRoute, idx: int, address: str, prefix: int) -> None:
        try:
            ipr.addr("del", index=idx, address=address, prefixlen=prefix)
        except NetlinkError as exc:
            if exc.code not in (99, 19):  # EADDRNOTAVAIL / ENODEV: nothing to remove
                raise

    # -- observation ----------------------------------------------------------------

    def counters(self) -> Counters:
        """The 64-bit counters (IFLA_STATS64). rx = downlink, tx = uplink.

        Read over one raw netlink socket kept open (about 50 us a read, against ~14 ms for
        a fresh pyroute2 IPRoute): the sampler calls this every second, on a small CPU."""
        with self._stats_lock:
            if self._stats is None:
                self._stats = _StatsSocket(self.netns, self.ifname)
            try:
                return self._stats.read(self.ifname)
            except NetError:
                self._stats.close()
                self._stats = None
                raise

    def close(self) -> None:
        """Close the counters socket (the object stays usable: it reopens on demand)."""
        with self._stats_lock:
            if self._stats is not None:
                self._stats.close()
                self._stats = None

    def is_up(self) -> bool:
        with self._ipr("query") as ipr:
            (msg,) = ipr.get_links(self._index(ipr, "query"))
            return bool(msg["flags"] & IFF_UP and msg["flags"] & IFF_LOWER_UP)

    def watch(self, callback: Callable[[LinkEvent], None], stop: threading.Event) -> threading.Thread:
        """Call ``callback`` with up/down/gone events from a daemon thread until ``stop``.

        Returns once the subscription is live, so no event after the call is missed."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            if AsyncIPRoute is None:
                self._watch_sync(callback, stop.is_set, ready, failure)
            else:
                asyncio.run(self._watch_async(callback, stop.is_set, ready, failure))

        thread = threading.Thread(target=run, name=f"wanlink-{self.ifname}", daemon=True)
        thread.start()
        if not ready.wait(WATCH_START_TIMEOUT_S) or failure:
            stop.set()
            raise NetError(f"watch {self.ifname}: cannot subscribe to link events ({failure or 'timeout'})")
        return thread

    async def events(self, ready: asyncio.Event | None = None) -> AsyncIterator[LinkEvent]:
        """Async iterator over link events, on the caller's loop (ends when cancelled).

        The subscription starts with the first ``__anext__``; ``ready``, if given, is set
        once it is live (or has failed, which the next ``__anext__`` raises), so a caller
        can await it instead of guessing, and no event after it is missed."""
        live = ready if ready is not None else asyncio.Event()
        if AsyncIPRoute is None:  # the distributions' pyroute2: the thread watcher feeds a queue
            async for event in self._events_from_thread(live):
                yield event
            return
        queue: asyncio.Queue[LinkEvent] = asyncio.Queue()
        failure: list[BaseException] = []
        task = asyncio.create_task(self._watch_async(queue.put_nowait, lambda: False, live, failure))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    raise NetError(f"watch {self.ifname}: watcher ended ({failure or 'closed'})")
                yield getter.result()
        finally:
            task.cancel()

    async def _watch_async(self, callback: Callable[[LinkEvent], None], stopped: Callable[[], bool],
                           ready: threading.Event | asyncio.Event, failure: list[BaseException]) -> None:
        """Read RTMGRP_LINK messages, polling ``stopped`` every EVENT_POLL_S; a change of
        state for our interface name becomes one LinkEvent."""
        try:
            ipr = AsyncIPRoute(netns=self.netns) if self.netns else AsyncIPRoute()
            await ipr.bind(groups=RTMGRP_LINK)
        except Exception as exc:  # noqa: BLE001
            failure.append(exc)
            ready.set()
            return
        ready.set()
        last: str | None = None
        try:
            while not stopped():
                try:
                    messages = await asyncio.wait_for(_one_batch(ipr), EVENT_POLL_S)
                except TimeoutError:
                    continue
                last = self._deliver(messages, callback, last)
        except Exception as exc:  # the watcher must never take the daemon down
            failure.append(exc)
            LOGGER.exception("%s: link watcher stopped", self.ifname)
        finally:
            closing = ipr.close()
            if asyncio.iscoroutine(closing):
                await closing

    async def _events_from_thread(self, ready: asyncio.Event) -> AsyncIterator[LinkEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[LinkEvent] = asyncio.Queue()
        stop = threading.Event()

        def put(event: LinkEvent) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        try:
            thread = await asyncio.to_thread(self.watch, put, stop)  # returns once live
        finally:
            ready.set()  # live, or failed: watch() raised and the caller's await sees it
        try:
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), EVENT_POLL_S)
                except TimeoutError:
                    if not thread.is_alive():
                        raise NetError(f"watch {self.ifname}: watcher ended") from None
        finally:
            stop.set()

    def _watch_sync(self, callback: Callable[[LinkEvent], None], stopped: Callable[[], bool],
                    ready: threading.Event, failure: list[BaseException]) -> None:
        """Read RTMGRP_LINK messages, checking ``stopped`` every EVENT_POLL_S; a change of
        state for our interface name becomes one LinkEvent.

        For pyroute2 before 0.9 (no ``AsyncIPRoute``), whose blocking ``get()`` returns
        every message of one read, so ``select`` on its socket sees all that is pending."""
        try:
            ipr = _iproute(self.netns)
            ipr.bind(groups=RTMGRP_LINK)
        except Exception as exc:  # noqa: BLE001
            failure.append(exc)
            ready.set()
            return
        ready.set()
        last: str | None = None
        try:
            while not stopped():
                readable, _, _ = select.select([ipr], [], [], EVENT_POLL_S)
                if not readable:
                    continue
                last = self._deliver(ipr.get(), callback, last)
        except Exception as exc:  # the watcher must never take the daemon down
            failure.append(exc)
            LOGGER.exception("%s: link watcher stopped", self.ifname)
        finally:
            ipr.close()

    def _deliver(self, messages: Any, callback: Callable[[LinkEvent], None], last: str | None) -> str | None:
        """Each change of our interface's state in ``messages`` becomes one LinkEvent."""
        for msg in messages:
            event = self._classify(msg)
            if event is not None and event.kind != last:
                last = event.kind
                callback(event)
        return last

    def _classify(self, msg: Any) -> LinkEvent | None:
        if msg.get_attr("IFLA_IFNAME") != self.ifname:  # msg.get(NLA name) needs pyroute2 > 0.7.2
            return None
        idx = int(msg["index"])
        if msg["event"] == "RTM_DELLINK":
            return LinkEvent("gone", self.ifname, idx)
        if msg["event"] != "RTM_NEWLINK":
            return None
        up = msg["flags"] & IFF_UP and msg["flags"] & IFF_LOWER_UP
        return LinkEvent("up" if up else "down", self.ifname, idx)


NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK, NLMSG_ERROR = 16, 18, 2
NLM_F_REQUEST = 1
IFLA_IFNAME, IFLA_STATS64 = 3, 23
CLONE_NEWNET = 0x40000000
NLMSG = struct.Struct("=IHHII")
IFINFO = struct.Struct("=BxHiII")
RTATTR = struct.Struct("=HH")
STATS64_HEAD = struct.Struct("=QQQQ")  # rx_packets, tx_packets, rx_bytes, tx_bytes
NETLINK_TIMEOUT_S = 2.0
"""The kernel answers RTM_GETLINK at once; 2 s only bounds a wedged socket."""


class _StatsSocket:
    """A raw NETLINK_ROUTE socket asking RTM_GETLINK by name and parsing IFLA_STATS64.

    In a namespace, the socket is created by a short-lived thread that entered the
    namespace (setns affects only the calling thread); the socket stays bound to it."""

    def __init__(self, netns: str | None, ifname: str):
        self._seq = 0
        try:
            self._sock = _socket_in(netns)
        except OSError as exc:
            raise NetError(f"read counters of {ifname}: cannot open netlink ({exc})") from exc
        self._sock.settimeout(NETLINK_TIMEOUT_S)

    def close(self) -> None:
        self._sock.close()

    def read(self, ifname: str) -> Counters:
        self._seq += 1
        name = ifname.encode() + b"\0"
        attr = RTATTR.pack(RTATTR.size + len(name), IFLA_IFNAME) + name
        attr += b"\0" * (-len(attr) % 4)
        body = IFINFO.pack(0, 0, 0, 0, 0) + attr
        request = NLMSG.pack(NLMSG.size + len(body), RTM_GETLINK, NLM_F_REQUEST, self._seq, 0) + body
        try:
            self._sock.send(request)
            while True:
                data = self._sock.recv(65536)
                reply = self._parse(data, ifname)
                if reply is not None:
                    return reply
        except OSError as exc:
            raise NetError(f"read counters of {ifname}: {exc}") from exc

    def _parse(self, data: bytes, ifname: str) -> Counters | None:
        """The answer to our seq, or None for a stray message (another seq)."""
        length, kind, _, seq, _ = NLMSG.unpack_from(data, 0)
        if seq != self._seq:
            return None
        if kind == NLMSG_ERROR:
            errno_ = -struct.unpack_from("=i", data, NLMSG.size)[0]
            reason = "no such interface" if errno_ == 19 else os.strerror(errno_)
            raise NetError(f"read counters of {ifname}: {reason} (errno {errno_})")
        if kind != RTM_NEWLINK:
            raise NetError(f"read counters of {ifname}: unexpected netlink message type {kind}")
        _, _, index, _, _ = IFINFO.unpack_from(data, NLMSG.size)
        pos = NLMSG.size + IFINFO.size
        while pos + RTATTR.size <= min(length, len(data)):
            alen, atype = RTATTR.unpack_from(data, pos)
            if alen < RTATTR.size:
                break
            if atype == IFLA_STATS64:
                rxp, txp, rxb, txb = STATS64_HEAD.unpack_from(data, pos + RTATTR.size)
                return Counters(index, rxb, txb, rxp, txp)
            pos += (alen + 3) & ~3
        raise NetError(f"read counters of {ifname}: kernel sent no IFLA_STATS64")


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


def _socket_in(netns: str | None) -> socket.socket:
    """A NETLINK_ROUTE socket in ``netns`` (None: ours)."""
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    return socket_in_netns(netns, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)


def _iproute(netns: str | None) -> Any:
    """A blocking rtnetlink socket, in ``netns`` when given: pyroute2 0.9 takes it as an
    argument, 0.7 (the distributions') has the separate ``NetNS`` class."""
    if netns is None:
        return IPRoute()
    if AsyncIPRoute is None:
        # 0.7's package-level name: runs pyroute2's whole __init__ (tests and the lab only)
        from pyroute2 import NetNS

        return NetNS(netns)
    return IPRoute(netns=netns)


async def _one_batch(ipr: Any) -> list[Any]:
    """The messages of one netlink read (cancellable while waiting: nothing is lost)."""
    return [msg async for msg in ipr.get()]


def _validate(ctx: ContextLike, ifname: str) -> tuple[str, int, str | None]:
    """Check the modem's context before touching the kernel; NetError names what came."""
    try:
        iface = ipaddress.IPv4Interface(f"{ctx.address}/{int(ctx.prefix)}")
        gateway = str(ipaddress.IPv4Address(ctx.gateway)) if ctx.gateway else None
    except (ValueError, TypeError) as exc:
        raise NetError(f"apply {ifname}: bad data context address={ctx.address!r} "
                       f"prefix={ctx.prefix!r} gateway={ctx.gateway!r}: {exc}") from exc
    if ctx.mtu is not None and not MIN_MTU <= int(ctx.mtu) <= MAX_MTU:
        raise NetError(f"apply {ifname}: implausible MTU {ctx.mtu!r}")
    return str(iface.ip), iface.network.prefixlen, gateway


