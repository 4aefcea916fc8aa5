"""WanLink against the real kernel: a veth between two pwt4- namespaces.

Checked with ``ip -j`` (an independent reader), not with WanLink itself.
Addresses only from 198.19.100.0/24. IPv6 is disabled and neighbours are static, so
the only packets on the veth are the ones the test sends: counters must move by
exactly those bytes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agent.errors import NetError
from agent.net.link import ContextParams, LinkEvent, WanLink
from agent.net.resolv import write_resolv
from tests.conftest import need_root, need_tool

UDP_OVERHEAD = 28  # IPv4 (20) + UDP (8) header bytes per datagram
ETH_HEADER = 14
EVENT_TIMEOUT_S = 5.0  # a link event arrives in milliseconds; 5 s only bounds a failure


def sh(*args: str, check: bool = True) -> str:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=20).stdout


@dataclass
class Pair:
    """Namespace ``a`` (the router: WAN side) and ``b`` (the carrier), joined by a veth."""

    a: str
    b: str
    wan: str = "wan0"
    peer: str = "peer0"
    a_ip: str = "198.19.100.1"
    b_ip: str = "198.19.100.2"

    def exec(self, ns: str, *args: str, check: bool = True) -> str:
        return sh("ip", "netns", "exec", ns, *args, check=check)

    def ip_json(self, ns: str, *args: str) -> list[dict]:
        return json.loads(sh("ip", "-n", ns, "-j", *args) or "[]")


def make_pair(tag: str) -> Pair:
    """Create two namespaces and a veth with no background traffic (caller deletes)."""
    need_root()
    need_tool("ip")
    suffix = f"{tag}{os.getpid() % 100000}"
    pair = Pair(a=f"pwt4-a{suffix}", b=f"pwt4-b{suffix}")
    for ns in (pair.a, pair.b):
        sh("ip", "netns", "add", ns)
        pair.exec(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    add_veth(pair)
    return pair


def add_veth(pair: Pair) -> None:
    """(Re-)create the veth; peer side configured fully, WAN side left to WanLink."""
    sh("ip", "-n", pair.a, "link", "add", pair.wan, "type", "veth", "peer", "name", pair.peer, "netns", pair.b)
    sh("ip", "-n", pair.b, "addr", "add", f"{pair.b_ip}/24", "dev", pair.peer)
    sh("ip", "-n", pair.b, "link", "set", pair.peer, "up")
    mac_a = pair.ip_json(pair.a, "link", "show", pair.wan)[0]["address"]
    mac_b = pair.ip_json(pair.b, "link", "show", pair.peer)[0]["address"]
    sh("ip", "-n", pair.b, "neigh", "replace", pair.a_ip, "lladdr", mac_a, "dev", pair.peer, "nud", "permanent")
    sh("ip", "-n", pair.a, "neigh", "replace", pair.b_ip, "lladdr", mac_b, "dev", pair.wan, "nud", "permanent")


def delete_pair(pair: Pair) -> None:
    for ns in (pair.a, pair.b):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20, check=False)


SENDER = r"""
import socket, sys
dst, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    s.sendto(bytes(size), (dst, 9999))
"""

RECEIVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE: no drops in the burst
s.bind(("0.0.0.0", 9999)); s.settimeout(10)
print("ready", flush=True)
for i in range(int(sys.argv[1])):
    s.recv(65536)
print("done", flush=True)
"""


def udp_across(pair: Pair, count: int, size: int) -> None:
    """Send ``count`` datagrams of ``size`` from a to b and wait until b has them all."""
    rx = subprocess.Popen(["ip", "netns", "exec", pair.b, sys.executable, "-c", RECEIVER, str(count)],
                          stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
        pair.exec(pair.a, sys.executable, "-c", SENDER, pair.b_ip, str(count), str(size))
        assert rx.stdout.readline().strip() == "done"
    finally:
        rx.kill()
        rx.wait(timeout=10)


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = make_pair("n")
    yield p
    delete_pair(p)


CTX = ContextParams(address="198.19.100.1", prefix=24, gateway="198.19.100.2", dns=("198.19.100.53",), mtu=1400)


def defaults(pair: Pair) -> list[dict]:
    return pair.ip_json(pair.a, "route", "show", "default")


def test_apply_sets_address_mtu_route(pair: Pair) -> None:
    link = WanLink(pair.wan, netns=pair.a)
    link.apply(CTX)
    (info,) = pair.ip_json(pair.a, "addr", "show", pair.wan)
    assert info["mtu"] == 1400 and "UP" in info["flags"]
    assert [(a["local"], a["prefixlen"]) for a in info["addr_info"]] == [("198.19.100.1", 24)]
    assert [(r["gateway"], r["dev"]) for r in defaults(pair)] == [("198.19.100.2", pair.wan)]
    assert link.is_up()


def test_replace_leaves_exactly_one_default(pair: Pair) -> None:
    sh("ip", "-n", pair.a, "link", "add", "wan1", "type", "veth", "peer", "name", "peer1", "netns", pair.b)
    first, second = WanLink(pair.wan, netns=pair.a), WanLink("wan1", netns=pair.a)
    first.apply(CTX)
    second.apply(ContextParams(address="198.19.100.130", prefix=25, gateway="198.19.100.129", mtu=1500))
    assert [(r["gateway"], r["dev"]) for r in defaults(pair)] == [("198.19.100.129", "wan1")]
    first.apply(CTX)  # and back: still one
    assert [(r["gateway"], r["dev"]) for r in defaults(pair)] == [("198.19.100.2", pair.wan)]


def test_release_removes_address_and_route(pair: Pair) -> None:
    link = WanLink(pair.wan, netns=pair.a)
    link.apply(CTX)
    link.release()
    (info,) = pair.ip_json(pair.a, "addr", "show", pair.wan)
    assert info["addr_info"] == [] and defaults(pair) == []
    link.release()  # idempotent


def test_release_removes_what_a_previous_run_left(pair: Pair) -> None:
    """A killed agent never released: the next process's release takes its address and
    default route off too (the agent owns the interface)."""
    WanLink(pair.wan, netns=pair.a).apply(CTX)
    sh("ip", "-n", pair.a, "addr", "add", "198.19.101.1/24", "dev", pair.wan)  # and a second one
    WanLink(pair.wan, netns=pair.a).release()
    (info,) = pair.ip_json(pair.a, "addr", "show", pair.wan)
    assert info["addr_info"] == [] and defaults(pair) == []


def test_errors_name_operation_and_interface(pair: Pair) -> None:
    with pytest.raises(NetError, match="apply nosuch0: no such interface"):
        WanLink("nosuch0", netns=pair.a).apply(CTX)
    with pytest.raises(NetError, match="bad data context address='300.1.1.1'"):
        WanLink(pair.wan, netns=pair.a).apply(ContextParams(address="300.1.1.1", prefix=24))
    with pytest.raises(NetError, match="implausible MTU 68"):
        WanLink(pair.wan, netns=pair.a).apply(ContextParams(address="198.19.100.1", prefix=24, mtu=68))
    with pytest.raises(NetError, match="read counters of nosuch0"):
        WanLink("nosuch0", netns=pair.a).counters()


def test_counters_move_by_exactly_the_bytes_sent(pair: Pair) -> None:
    link = WanLink(pair.wan, netns=pair.a)
    link.apply(CTX)
    before = link.counters()
    count, size = 200, 1000
    udp_across(pair, count, size)
    after = link.counters()
    assert after.tx_packets - before.tx_packets == count
    assert after.tx_bytes - before.tx_bytes == count * (size + UDP_OVERHEAD + ETH_HEADER)
    ip_level = (after.tx_bytes - before.tx_bytes) - ETH_HEADER * (after.tx_packets - before.tx_packets)
    assert ip_level == count * (size + UDP_OVERHEAD)  # the framing rule, verified
    assert after.rx_bytes == before.rx_bytes  # nothing else on the wire


def test_link_events_up_down_gone(pair: Pair) -> None:
    link = WanLink(pair.wan, netns=pair.a)
    got: list[LinkEvent] = []
    cond = threading.Condition()

    def on_event(ev: LinkEvent) -> None:
        with cond:
            got.append(ev)
            cond.notify_all()

    def wait_for(kind: str) -> None:
        with cond:
            assert cond.wait_for(lambda: any(e.kind == kind for e in got), timeout=EVENT_TIMEOUT_S), got

    stop = threading.Event()
    thread = link.watch(on_event, stop)
    try:
        link.apply(CTX)
        wait_for("up")
        sh("ip", "-n", pair.a, "link", "set", pair.wan, "down")
        wait_for("down")
        sh("ip", "-n", pair.a, "link", "del", pair.wan)
        wait_for("gone")
    finally:
        stop.set()
        thread.join(timeout=EVENT_TIMEOUT_S)
    assert not thread.is_alive()


def test_resolv_written_atomically(tmp_path) -> None:
    path = tmp_path / "resolv.conf.auto"
    write_resolv(path, CTX.dns + ("198.19.100.54", "198.19.100.53"))
    assert path.read_text().splitlines()[1:] == ["nameserver 198.19.100.53", "nameserver 198.19.100.54"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(NetError, match="bad DNS server 'dns.example'"):
        write_resolv(path, ["dns.example"])
    assert "198.19.100.54" in path.read_text()  # the old file is untouched


def test_async_events_iterator(pair: Pair) -> None:
    import asyncio

    link = WanLink(pair.wan, netns=pair.a)

    async def scenario() -> list[str]:
        live = asyncio.Event()
        it = link.events(live)
        first = asyncio.ensure_future(it.__anext__())
        await asyncio.wait_for(live.wait(), EVENT_TIMEOUT_S)  # the subscription is live
        await asyncio.to_thread(link.apply, CTX)
        kinds = [(await asyncio.wait_for(first, EVENT_TIMEOUT_S)).kind]
        await asyncio.to_thread(sh, "ip", "-n", pair.a, "link", "del", pair.wan)
        while kinds[-1] != "gone":
            kinds.append((await asyncio.wait_for(it.__anext__(), EVENT_TIMEOUT_S)).kind)
        await it.aclose()
        return kinds

    kinds = asyncio.run(scenario())
    assert kinds[0] == "up" or kinds[:2] == ["down", "up"]
    assert kinds[-1] == "gone"


def test_point_to_point_bearer_gets_an_on_link_default(pair: Pair) -> None:
    """A wwan context without a gateway: the default route is on-link (scope link) through
    the interface, and release takes it off (the agent's own RTM_NEWROUTE/DELROUTE)."""
    link = WanLink(pair.wan, netns=pair.a)
    link.apply(ContextParams(address="198.19.100.1", prefix=32))
    (route,) = defaults(pair)
    assert (route["dev"], route.get("scope"), route.get("gateway")) == (pair.wan, "link", None)
    link.release()
    assert defaults(pair) == []


def test_release_takes_a_default_another_process_made(pair: Pair) -> None:
    """The route a previous run left has whatever gateway it had: release matches any."""
    sh("ip", "-n", pair.a, "addr", "add", "198.19.100.1/24", "dev", pair.wan)
    sh("ip", "-n", pair.a, "link", "set", pair.wan, "up")
    sh("ip", "-n", pair.a, "route", "add", "default", "via", pair.b_ip, "dev", pair.wan, "proto", "static")
    WanLink(pair.wan, netns=pair.a).release()
    assert defaults(pair) == []
    assert pair.ip_json(pair.a, "addr", "show", pair.wan)[0]["addr_info"] == []


def test_kernel_refusals_carry_its_errno(pair: Pair) -> None:
    from agent.net import rtnl

    with rtnl.Rtnl(pair.a) as sock:
        with pytest.raises(rtnl.RtnlError) as refused:
            sock.delete_default(sock.link_by_name(pair.wan).index)  # there is none
        assert refused.value.errno == 3  # ESRCH
        with pytest.raises(rtnl.RtnlError) as refused:
            sock.replace_address(999_999, "198.19.100.1", 24)
        assert refused.value.errno == 19  # ENODEV
        assert sock.link_by_name("nosuch0") is None and sock.stats64("nosuch0") is None


def test_address_dump_matches_ip(pair: Pair) -> None:
    """The router's addresses, every family (conntrack tells its own flows by them)."""
    from agent.net import rtnl

    sh("ip", "-n", pair.a, "addr", "add", "198.19.100.1/24", "dev", pair.wan)
    sh("ip", "-n", pair.a, "addr", "add", "198.19.102.1/32", "peer", "198.19.102.2", "dev", pair.wan)
    with rtnl.Rtnl(pair.a) as sock:
        ours = {(a.address, a.prefixlen) for a in sock.addresses()}
        v4_on_wan = {(a.address, a.prefixlen) for a in sock.addresses(sock.link_by_name(pair.wan).index, socket.AF_INET)}
    theirs = {(a["local"], a["prefixlen"]) for i in pair.ip_json(pair.a, "addr", "show") for a in i["addr_info"]}
    assert ours == theirs and ("127.0.0.1", 8) in ours
    assert v4_on_wan == {("198.19.100.1", 24), ("198.19.102.1", 32)}  # the local end, not the peer


def test_lost_events_are_replaced_by_the_state(pair: Pair) -> None:
    """ENOBUFS (the kernel dropped events): the watcher reads the interface's state
    instead; any other read failure is a NetError, which the healer logs."""
    import errno

    link = WanLink(pair.wan, netns=pair.a)
    link.apply(CTX)
    (state,) = link._classified(link._overrun(OSError(errno.ENOBUFS, "No buffer space available")))
    assert state.kind == "up"
    sh("ip", "-n", pair.a, "link", "del", pair.wan)
    (state,) = link._classified(link._overrun(OSError(errno.ENOBUFS, "No buffer space available")))
    assert state.kind == "gone"
    with pytest.raises(NetError, match="reading link events failed"):
        link._overrun(OSError(errno.EBADF, "Bad file descriptor"))
