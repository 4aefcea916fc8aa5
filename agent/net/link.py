"""The WAN data interface over rtnetlink: address, default route, events, counters.

``WanLink`` applies the modem's data context (address/prefix, gateway, DNS, MTU) to the
data interface, replaces the default route in one RTM_NEWROUTE with NLM_F_REPLACE (so a
switch from one uplink to another never has zero or two defaults), takes every address
and the default route off again on release, reports link up/down/gone, and reads the
64-bit counters the usage meter needs. ``netns`` points it at a network namespace (tests,
the virtual board).

Blocking netlink calls are short (one request, one answer); the daemon runs them in a
thread via ``asyncio.to_thread`` or calls them from the sampler's thread. The messages
are the agent's own (agent/net/rtnl.py), not pyroute2's: docs/footprint.md says why.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import select
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from agent.errors import NetError
from agent.net import rtnl
from agent.usage.counters import Counters

LOGGER = logging.getLogger(__name__)

EVENT_POLL_S = 0.5
"""How often the event watcher thread checks for ``stop``: bounds shutdown latency."""

MIN_MTU, MAX_MTU = 576, 9000
"""IPv4's minimum datagram size (RFC 791) and jumbo frames: a context MTU outside is bogus."""


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
    gateway: str | None = None
    """The default route's gateway this process applied (None: on-link, or none applied)."""


class WanLink:
    """One data interface, optionally inside a network namespace."""

    def __init__(self, ifname: str, *, netns: str | None = None):
        self.ifname = ifname
        self.netns = netns
        self._applied = _Applied()
        self._stats: rtnl.Rtnl | None = None
        self._stats_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------

    @contextmanager
    def _rtnl(self, operation: str) -> Iterator[rtnl.Rtnl]:
        """A netlink socket for one operation; every failure becomes a NetError."""
        try:
            sock = rtnl.Rtnl(self.netns)
        except OSError as exc:
            raise NetError(f"{operation} {self.ifname}: cannot open netlink ({exc})") from exc
        try:
            yield sock
        except OSError as exc:
            raise NetError(f"{operation} {self.ifname}: {_reason(exc)}") from exc
        finally:
            sock.close()

    def _index(self, sock: rtnl.Rtnl, operation: str) -> int:
        found = sock.link_by_name(self.ifname)
        if found is None:
            raise NetError(f"{operation} {self.ifname}: no such interface"
                           + (f" in netns {self.netns}" if self.netns else ""))
        return found.index

    def ifindex(self) -> int:
        """The interface's current index (changes when the interface is re-created)."""
        with self._rtnl("lookup") as sock:
            return self._index(sock, "lookup")

    # -- configuration -------------------------------------------------------------

    def apply(self, ctx: ContextLike) -> None:
        """Bring the interface up with the context's MTU and address, then make it the
        default route (replacing whichever default there was, in one message)."""
        address, prefix, gateway = _validate(ctx, self.ifname)
        with self._rtnl("apply") as sock:
            idx = self._index(sock, "apply")
            sock.set_up(idx, int(ctx.mtu) if ctx.mtu else None)
            if self._applied.address and (self._applied.address, self._applied.prefix) != (address, prefix):
                self._del_addr(sock, idx, self._applied.address, self._applied.prefix)
            self._del_stale(sock, idx, address, prefix)
            sock.replace_address(idx, address, prefix)
            self._applied.address, self._applied.prefix = address, prefix
            sock.replace_default(idx, gateway)  # on-link when None: point-to-point wwan has no gateway
            self._applied.gateway = gateway
        LOGGER.info("%s: %s/%d gw %s mtu %s applied", self.ifname, address, prefix, gateway, ctx.mtu)

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
        with self._rtnl("release") as sock:
            found = sock.link_by_name(self.ifname)
            if found is None:
                LOGGER.info("%s: already gone at release", self.ifname)
                self._applied = _Applied()
                return
            try:
                sock.delete_default(found.index, self._applied.gateway)
            except rtnl.RtnlError as exc:
                if exc.errno != errno.ESRCH:  # none, or already replaced by another uplink
                    raise
            for addr in sock.addresses(found.index, socket.AF_INET):
                if (addr.address, addr.prefixlen) != (self._applied.address, self._applied.prefix):
                    LOGGER.info("%s: removing %s/%d left by a previous run", self.ifname, addr.address,
                                addr.prefixlen)
                self._del_addr(sock, found.index, addr.address, addr.prefixlen)
        self._applied = _Applied()

    def _del_stale(self, sock: rtnl.Rtnl, idx: int, address: str, prefix: int) -> None:
        """Remove IPv4 addresses a previous run (or a previous context) left on the data
        interface: the agent owns it, and a stale primary address would become the source
        of every packet, which the carrier drops (issue 9: a restart after the modem lost
        its context moved to another address and never reached the cloud)."""
        for addr in sock.addresses(idx, socket.AF_INET):
            if (addr.address, addr.prefixlen) != (address, prefix):
                LOGGER.info("%s: removing stale address %s/%d", self.ifname, addr.address, addr.prefixlen)
                self._del_addr(sock, idx, addr.address, addr.prefixlen)

    @staticmethod
    def _del_addr(sock: rtnl.Rtnl, idx: int, address: str, prefix: int) -> None:
        try:
            sock.delete_address(idx, address, prefix)
        except rtnl.RtnlError as exc:
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.ENODEV):  # nothing to remove
                raise

    # -- observation ----------------------------------------------------------------

    def counters(self) -> Counters:
        """The 64-bit counters (IFLA_STATS64). rx = downlink, tx = uplink.

        Read over one netlink socket kept open (about 50 us a read, against ~14 ms for a
        fresh socket and namespace entry): the sampler calls this every second, on a
        small CPU."""
        with self._stats_lock:
            try:
                if self._stats is None:
                    self._stats = rtnl.Rtnl(self.netns)
                found = self._stats.stats64(self.ifname)
            except OSError as exc:
                self._close_stats()
                raise NetError(f"read counters of {self.ifname}: {_reason(exc)}") from exc
            if found is None:
                raise NetError(f"read counters of {self.ifname}: no such interface (errno {errno.ENODEV})")
            return Counters(*found)

    def _close_stats(self) -> None:
        if self._stats is not None:
            self._stats.close()
            self._stats = None

    def close(self) -> None:
        """Close the counters socket (the object stays usable: it reopens on demand)."""
        with self._stats_lock:
            self._close_stats()

    def is_up(self) -> bool:
        with self._rtnl("query") as sock:
            return sock.link(self._index(sock, "query")).running

    def watch(self, callback: Callable[[LinkEvent], None], stop: threading.Event) -> threading.Thread:
        """Call ``callback`` with up/down/gone events from a daemon thread until ``stop``.

        Returns once the subscription is live, so no event after the call is missed."""
        try:
            sock = rtnl.link_event_socket(self.netns)
        except OSError as exc:
            raise NetError(f"watch {self.ifname}: cannot subscribe to link events ({exc})") from exc

        def run() -> None:
            last: str | None = None
            try:
                while not stop.is_set():
                    readable, _, _ = select.select([sock], [], [], EVENT_POLL_S)
                    if readable:
                        last = self._deliver(self._read_events(sock), callback, last)
            except Exception:  # the watcher must never take the daemon down
                LOGGER.exception("%s: link watcher stopped", self.ifname)
            finally:
                sock.close()

        thread = threading.Thread(target=run, name=f"wanlink-{self.ifname}", daemon=True)
        thread.start()
        return thread

    async def events(self, ready: asyncio.Event | None = None) -> AsyncIterator[LinkEvent]:
        """Async iterator over link events, on the caller's loop (ends when cancelled).

        The subscription starts with the first ``__anext__``; ``ready``, if given, is set
        once it is live (or has failed, which that ``__anext__`` raises), so a caller can
        await it instead of guessing, and no event after it is missed. The socket is read
        by the loop itself: no thread."""
        try:
            sock = rtnl.link_event_socket(self.netns) if self.netns is None else \
                await asyncio.to_thread(rtnl.link_event_socket, self.netns)
        except OSError as exc:
            raise NetError(f"watch {self.ifname}: cannot subscribe to link events ({exc})") from exc
        finally:
            if ready is not None:
                ready.set()
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        last: str | None = None
        try:
            while True:
                try:
                    data = await loop.sock_recv(sock, rtnl.RECV_BYTES)
                    batch = rtnl.link_events(data)
                except OSError as exc:
                    batch = self._overrun(exc)
                for event in self._classified(batch):
                    if event.kind != last:
                        last = event.kind
                        yield event
        finally:
            sock.close()

    def _read_events(self, sock: socket.socket) -> list[rtnl.LinkInfo]:
        try:
            return rtnl.link_events(sock.recv(rtnl.RECV_BYTES))
        except OSError as exc:
            return self._overrun(exc)

    def _overrun(self, exc: OSError) -> list[rtnl.LinkInfo]:
        """ENOBUFS: the kernel dropped events (the socket's buffer filled while nobody
        read it); the interface's state now stands in for them. Anything else: NetError."""
        if exc.errno != errno.ENOBUFS:
            raise NetError(f"watch {self.ifname}: reading link events failed ({_reason(exc)})") from exc
        LOGGER.warning("%s: link events were lost (ENOBUFS): reading the state instead", self.ifname)
        with self._rtnl("watch") as sock:
            found = sock.link_by_name(self.ifname)
        return [found if found is not None else rtnl.LinkInfo(rtnl.RTM_DELLINK, 0, self.ifname, 0)]

    def _deliver(self, batch: list[rtnl.LinkInfo], callback: Callable[[LinkEvent], None],
                 last: str | None) -> str | None:
        """Each change of our interface's state in ``batch`` becomes one LinkEvent."""
        for event in self._classified(batch):
            if event.kind != last:
                last = event.kind
                callback(event)
        return last

    def _classified(self, batch: list[rtnl.LinkInfo]) -> Iterator[LinkEvent]:
        for info in batch:
            if info.name != self.ifname:
                continue
            if info.kind == rtnl.RTM_DELLINK:
                yield LinkEvent("gone", self.ifname, info.index)
            else:
                yield LinkEvent("up" if info.running else "down", self.ifname, info.index)


def _reason(exc: OSError) -> str:
    """The kernel's refusal as "reason (errno N)", or the socket's failure as it reads."""
    if exc.errno and exc.strerror:
        return f"{exc.strerror} (errno {exc.errno})"
    return str(exc)


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


