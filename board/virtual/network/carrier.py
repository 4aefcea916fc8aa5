"""The virtual carrier network: real namespaces, veth, nftables and tc.

Four namespaces (names from ``LabLayout``; addresses from 198.18.0.0/15 only, and no
namespace has a route out of the lab):

``<p>-dev``  the router. ``wwan0`` is its cellular data interface (one end of a veth
             pair, the other end is the cell), ``lan0`` faces the LAN host. It forwards
             and masquerades LAN traffic out of ``wwan0`` with nftables, as a real router's
             firewall does. The agent runs here and owns ``wwan0``'s address and route.
``<p>-core`` the carrier's core: the far end of the cell link (``cell0``, gateway
             198.18.1.1), the uplink to the internet (``up0``). Here the carrier
             authenticates attaches (Milenage), counts every byte per SIM at the IP level
             (nftables named counters in the forward hook, exactly what it bills), admits
             only the addresses of SIMs with a data context (one set per direction), and
             polices a capped SIM with ``tc`` at the plan's rate. Policing is on *ingress* of
             ``cell0`` (uplink) and ``up0`` (downlink), so it runs before the counters: the
             carrier bills what it delivered.
``<p>-inet`` "the internet": 198.18.0.1 hosts the MQTT broker, the UDP echo reflector,
             the bulk traffic source and the probe endpoint.
``<p>-lan``  one LAN client host behind the router (198.18.2.10).

The cell link models a raw-IP modem data channel on a veth: both ends share one MAC,
ARP is off and IPv6 is disabled, so the only frames on it are the IPv4 packets a
carrier would bill. Each frame carries a 14-byte Ethernet header the carrier does not
count; the board profile's ``link_header_bytes = 14`` tells the agent's meter to
subtract it per packet (the documented framing rule, docs/usage.md).

A bearer that goes (``deactivate``) loses no counted byte: between the carrier's counter
and the device's counter there is no queue on the downlink (the forward hook, ``cell0``'s
``noqueue`` and the veth transmit that counts the packet as received on ``wwan0`` run in
one softirq call) and one on the uplink (the core's per-CPU input backlog, where ``wwan0``
has already counted the packet as sent). So the drop is ordered: the address leaves the
downlink set, one RCU grace period lets every packet counted before that finish its
softirq, the cell link goes down, the backlog drains, another grace period, then the
address leaves the uplink set (``drop_bearer``; docs/swap.md, "In flight at a bearer drop").
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import store
from board.virtual.modem import milenage
from board.virtual.modem.auc import Auc
from board.virtual.modem.model import (
    CarrierReject,  # the one the modem catches (CarrierHooks' contract)
)
from board.virtual.network import netns
from board.virtual.network.netns import run

LOGGER = logging.getLogger(__name__)

EMM_ILLEGAL_UE = 3
"""TS 24.301 EMM cause #3: the network rejects a UE whose authentication failed."""
EMM_IMSI_UNKNOWN = 8
"""EMM cause #8 ("EPS services and non-EPS services not allowed"): IMSI not in the HSS."""
ESM_UNKNOWN_APN = 27
"""TS 24.301 ESM cause #27: missing or unknown APN."""

CELL_MAC = "02:50:57:00:00:01"
"""Both ends of the cell veth share this MAC so IP flows with ARP off (a raw-IP channel)."""
CELL_MTU = 1500
"""Typical LTE PDN MTU as handed out in +CGCONTRDP (many carriers use 1500; some 1428)."""

CELL_CAPACITY_KBIT = 50_000
"""Downlink capacity of the lab's cell: a good LTE cell gives one user about 50 Mbit/s.
Without it a veth moves gigabits and no load looks like a user's."""
CELL_QUEUE_MS = 50
"""Queue of the cell's scheduler at that rate (LTE eNodeB buffers are tens of ms)."""
POLICE_BURST_SECONDS = 0.25
"""Policer bucket depth in seconds of the plan rate. Carriers police with a short bucket
(a few hundred ms), which gives the flat, drop-based ceiling a throttled SIM shows."""
POLICE_MIN_BURST = 3000
"""A bucket must hold at least two full-size packets or nothing passes at low rates."""

MEMBARRIER_CMD_GLOBAL = 1
"""membarrier(2): returns after ``synchronize_rcu()``, i.e. once every CPU has left every
RCU read-side section it was in, softirq (bottom-half) sections included since Linux 4.20.
The forward path from the carrier's counter to the veth transmit is such a section."""
MEMBARRIER_SYSCALL = {"x86_64": 324, "aarch64": 283, "riscv64": 283, "i686": 375, "armv7l": 389}
"""membarrier's syscall number per machine (Python has no wrapper)."""
GRACE_FALLBACK_S = 0.1
"""Where membarrier is refused (``nohz_full`` kernels, seccomp): a wait this long instead,
logged, since it is a guess about scheduling and not a guarantee."""
BACKLOG_DRAIN_TIMEOUT_S = 2.0
"""How long a drop waits for the per-CPU input backlog to be seen empty once per CPU
(it drains in microseconds on an idle machine; a starved ``ksoftirqd`` can take a
scheduler slice or a few). Past it the drop goes on and says so in the log."""
BACKLOG_POLL_S = 0.001
SOFTNET_STAT = Path("/proc/net/softnet_stat")


@dataclass(frozen=True)
class LabLayout:
    """Names and addresses of the lab; a documented contract (docs/virtual-board.md)."""

    prefix: str = "pw"
    wan_if: str = "wwan0"
    cell_if: str = "cell0"
    core_up_if: str = "up0"
    inet_if: str = "ix0"
    lan_router_if: str = "lan0"
    lan_host_if: str = "eth0"
    cell_gateway: str = "198.18.1.1"
    cell_prefix: int = 24
    internet_addr: str = "198.18.0.1"
    core_up_addr: str = "198.18.0.254"
    internet_prefix: int = 24
    lan_router_addr: str = "198.18.2.1"
    lan_host_addr: str = "198.18.2.10"
    lan_prefix: int = 24
    dns: str = "198.18.0.1"
    core_name: str = "core"
    """The carrier core's namespace is ``<prefix>-<core_name>``: ``core`` for the lab's
    first (or only) carrier, ``coreb`` for a second one (board/virtual/network/carriers.py)."""
    inet_side_addr: str | None = None
    """The internet's address on this core's uplink when it is not the internet host's own
    (a second carrier's link, ``ix1``); None for the first carrier (``ix0`` is 198.18.0.1)."""

    @property
    def dev(self) -> str:
        return f"{self.prefix}-dev"

    @property
    def core(self) -> str:
        return f"{self.prefix}-{self.core_name}"

    @property
    def cell_net(self) -> str:
        """The first three octets of the cell subnet (a /24): the SIM addresses' network."""
        return self.cell_gateway.rsplit(".", 1)[0]

    @property
    def inet(self) -> str:
        return f"{self.prefix}-inet"

    @property
    def lan(self) -> str:
        return f"{self.prefix}-lan"

    @property
    def all_namespaces(self) -> tuple[str, ...]:
        return (self.dev, self.core, self.inet, self.lan)


def sim_address(index: int, layout: LabLayout | None = None) -> str:
    """Stable address of pool SIM ``index`` (-1 = the seed SIM) in its carrier's cell subnet
    (``layout``; default the first carrier's 198.18.1.0/24): what the PGW hands out."""
    net = (layout or LabLayout()).cell_net
    return f"{net}.2" if index < 0 else f"{net}.{10 + index}"


def pool_sims(pool: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(index, sim) for the seed (index -1) and every pool SIM."""
    out = [(-1, pool["seed"])] if pool.get("seed") else []
    return out + list(enumerate(pool.get("sims", [])))


def counter_name(direction: str, iccid: str) -> str:
    return f"{direction}_{iccid}"


class CarrierNetwork:
    """Builds the namespaces and plays the carrier for the virtual modem (CarrierHooks)."""

    def __init__(self, layout: LabLayout, pool: dict[str, Any], state_file: Path,
                 plmns: frozenset[str] | None = None):
        """``plmns``: the PLMNs this carrier serves (a lab with several carriers gives each
        its own); None serves every SIM of the pool, as the one-carrier lab does."""
        self.layout = layout
        self.state_file = state_file
        self._pool = pool
        self.plmns = plmns
        self._by_imsi = {sim["imsi"]: (index, sim) for index, sim in self.sims()}
        self.auc = Auc(self._keys)
        """The AuC a remote-SIM modem authenticates against (AKA with AUTN and SQN); a
        vSIM modem answers ``attach``'s RAND challenge instead."""
        self._lock = threading.Lock()
        self._state: dict[str, Any] = store.read_json(state_file, None) or {"attached": {}, "active": {}}

    def sims(self) -> list[tuple[int, dict[str, Any]]]:
        """(index, sim) of the SIMs this carrier serves; the index stays the pool's."""
        return [(i, s) for i, s in pool_sims(self._pool) if self.plmns is None or s.get("plmn") in self.plmns]

    # ---- building and removing the lab network -------------------------------------
    def setup(self) -> None:
        """Create namespaces, links, addresses, forwarding, NAT, counters (idempotent)."""
        lay = self.layout
        for name in lay.all_namespaces:
            netns.add(name)
        self._veth(lay.dev, lay.wan_if, lay.core, lay.cell_if)
        self._veth(lay.core, lay.core_up_if, lay.inet, lay.inet_if)
        self._veth(lay.dev, lay.lan_router_if, lay.lan, lay.lan_host_if)
        for ns, ifname in ((lay.dev, lay.wan_if), (lay.core, lay.cell_if)):
            netns.sysctl(ns, f"net.ipv6.conf.{ifname}.disable_ipv6", "1")
            run(["ip", "link", "set", ifname, "address", CELL_MAC, "arp", "off", "mtu", str(CELL_MTU)], netns=ns)
        for ns in lay.all_namespaces:
            netns.sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")
            netns.sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")
        # The agent brings wwan0 up itself (it owns the data interface); the rest is wiring.
        self._addr(lay.core, lay.cell_if, f"{lay.cell_gateway}/{lay.cell_prefix}")
        self._addr(lay.core, lay.core_up_if, f"{lay.core_up_addr}/{lay.internet_prefix}")
        self._addr(lay.inet, lay.inet_if, f"{lay.internet_addr}/{lay.internet_prefix}")
        self._addr(lay.dev, lay.lan_router_if, f"{lay.lan_router_addr}/{lay.lan_prefix}")
        self._addr(lay.lan, lay.lan_host_if, f"{lay.lan_host_addr}/{lay.lan_prefix}")
        run(["ip", "route", "replace", f"198.18.1.0/{lay.cell_prefix}", "via", lay.core_up_addr], netns=lay.inet)
        run(["ip", "route", "replace", "default", "via", lay.lan_router_addr], netns=lay.lan)
        netns.sysctl(lay.core, "net.ipv4.ip_forward", "1")
        netns.sysctl(lay.dev, "net.ipv4.ip_forward", "1")
        # Per-flow byte counts, so the agent can tell active flows (demand) from idle ones.
        netns.sysctl(lay.dev, "net.netfilter.nf_conntrack_acct", "1")
        run(["nft", "-f", "-"], netns=lay.dev, input_text=self._router_ruleset())
        run(["nft", "-f", "-"], netns=lay.core, input_text=self._carrier_ruleset())
        for ns, ifname in ((lay.core, lay.cell_if), (lay.core, lay.core_up_if)):
            run(["tc", "qdisc", "replace", "dev", ifname, "ingress"], netns=ns)
        self._shape_cell_capacity()
        self._save()

    def teardown(self) -> None:
        """Delete every namespace (their links, rules and qdiscs go with them)."""
        for name in self.layout.all_namespaces:
            netns.delete(name)
        try:
            os.unlink(self.state_file)
        except FileNotFoundError:
            pass

    def _shape_cell_capacity(self) -> None:
        """Give the cell a radio's capacity. The shaper sits on the internet side of the
        core (``ix0`` egress), *before* the carrier's billing counters, so a packet it drops
        is never billed; GSO is off there so the bucket meets real-sized packets."""
        lay = self.layout
        run(["ip", "link", "set", lay.inet_if, "gso_max_segs", "1"], netns=lay.inet)
        run(["tc", "qdisc", "replace", "dev", lay.inet_if, "root", "tbf", "rate", f"{CELL_CAPACITY_KBIT}kbit",
             "burst", "64kb", "latency", f"{CELL_QUEUE_MS}ms"], netns=lay.inet)

    @staticmethod
    def _veth(ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        links = {link["ifname"] for link in netns.json_out(["ip", "-j", "link", "show"], netns=ns_a)}
        if if_a not in links:
            run(["ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        run(["ip", "link", "set", if_b, "up"], netns=ns_b)
        if if_a != "wwan0":
            run(["ip", "link", "set", if_a, "up"], netns=ns_a)

    @staticmethod
    def _addr(ns: str, ifname: str, cidr: str) -> None:
        run(["ip", "addr", "replace", cidr, "dev", ifname], netns=ns)

    def _router_ruleset(self) -> str:
        """The router's firewall, as OpenWrt's fw4 writes it for a masquerading WAN zone.

        The ``ct state invalid drop`` towards the WAN is fw4's "Prevent NAT leakage" rule
        (zone option ``masq_allow_invalid`` off, the default). Without it a LAN flow's FIN
        that conntrack cannot place (its entry flushed when a swap removed the old address)
        leaves ``wwan0`` un-NATed, with the LAN host's private source: the device counts
        it, the carrier drops it (measured: 14 x 52-byte FINs after one swap under load)."""
        lay = self.layout
        return f"""
table ip router
delete table ip router
table ip router {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{lay.wan_if}" masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    oifname "{lay.wan_if}" ct state invalid counter drop comment "prevent NAT leakage, as fw4 does"
    iifname "{lay.lan_router_if}" oifname "{lay.wan_if}" accept
  }}
}}
"""

    def _carrier_ruleset(self) -> str:
        lay = self.layout
        counters, rules = [], []
        for index, sim in self.sims():
            addr = sim_address(index, lay)
            up, down = counter_name("up", sim["iccid"]), counter_name("down", sim["iccid"])
            counters.append(f"  counter {up} {{ }}\n  counter {down} {{ }}")
            rules.append(f'    iifname "{lay.cell_if}" ip saddr {addr} counter name "{up}"')
            rules.append(f'    oifname "{lay.cell_if}" ip daddr {addr} counter name "{down}"')
        # Admission before the counters in one chain: a packet is counted and passed, or
        # dropped and not counted. One set per direction, so a bearer drop can close the
        # downlink before the cell link goes down and the uplink after (drop_bearer).
        return f"""
table ip carrier
delete table ip carrier
table ip carrier {{
{chr(10).join(counters)}
  set {ADMIT_UP} {{ type ipv4_addr; }}
  set {ADMIT_DOWN} {{ type ipv4_addr; }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname "{lay.cell_if}" ip saddr != @{ADMIT_UP} drop
    oifname "{lay.cell_if}" ip daddr != @{ADMIT_DOWN} drop
{chr(10).join(rules)}
  }}
}}
"""

    # ---- CarrierHooks: what the virtual modem calls ---------------------------------
    def _keys(self, imsi: str) -> tuple[bytes, bytes] | None:
        entry = self._by_imsi.get(imsi)
        return None if entry is None else (bytes.fromhex(entry[1]["ki"]), bytes.fromhex(entry[1]["opc"]))

    def attach(self, imsi: str, plmn: str, challenge: Callable[[bytes], bytes] | None) -> int | None:
        """Authenticate with Milenage against the keys the carrier holds for ``imsi``: the
        RAND ``challenge`` of a vSIM modem, or (``challenge`` None) the AKA a remote-SIM
        modem ran with ``self.auc`` just before."""
        entry = self._by_imsi.get(imsi)
        if entry is None:
            LOGGER.warning("carrier: attach from unknown IMSI %s rejected", imsi)
            return EMM_IMSI_UNKNOWN
        _, sim = entry
        if challenge is None:
            if not self.auc.take_authenticated(imsi):
                LOGGER.warning("carrier: attach of IMSI %s without a passed AKA rejected", imsi)
                return EMM_ILLEGAL_UE
            self._attached(imsi, sim, plmn)
            return None
        rand = os.urandom(16)
        expected = milenage.res(bytes.fromhex(sim["ki"]), bytes.fromhex(sim["opc"]), rand)
        try:
            answer = challenge(rand)
        except Exception as exc:  # noqa: BLE001 - any UE-side failure is a failed challenge
            LOGGER.warning("carrier: challenge for %s failed: %s", imsi, type(exc).__name__)
            return EMM_ILLEGAL_UE
        if answer != expected:
            LOGGER.warning("carrier: authentication failure for IMSI %s (RES mismatch)", imsi)
            return EMM_ILLEGAL_UE
        self._attached(imsi, sim, plmn)
        return None

    def _attached(self, imsi: str, sim: dict[str, Any], plmn: str) -> None:
        with self._lock:
            self._state["attached"][imsi] = {"iccid": sim["iccid"], "plmn": plmn}
            self._save()
        LOGGER.info("carrier: IMSI %s attached", imsi)

    def activate(self, imsi: str, cid: int, apn: str) -> dict[str, Any]:
        """Bring the carrier side of a data context up; return what +CGCONTRDP reports."""
        entry = self._by_imsi.get(imsi)
        if entry is None or imsi not in self._state["attached"]:
            raise CarrierReject(EMM_IMSI_UNKNOWN, "not attached")
        index, sim = entry
        if sim.get("apn") and apn and apn != sim["apn"]:
            raise CarrierReject(ESM_UNKNOWN_APN, f"unknown APN {apn!r}")
        addr = sim_address(index, self.layout)
        admit(self.layout, addr)
        with self._lock:
            self._state["active"][imsi] = {"iccid": sim["iccid"], "address": addr, "cid": cid, "index": index}
            self._save()
        return {"address": addr, "prefix": self.layout.cell_prefix, "gateway": self.layout.cell_gateway,
                "dns": [self.layout.dns], "mtu": CELL_MTU}

    def deactivate(self, imsi: str, cid: int) -> None:
        with self._lock:
            active = self._state["active"].pop(imsi, None)
            last = not self._state["active"]
            self._save()
        if active:
            drop_bearer(self.layout, active["address"], last=last)

    def detach(self, imsi: str) -> None:
        self.deactivate(imsi, 0)
        with self._lock:
            self._state["attached"].pop(imsi, None)
            self._save()

    def _save(self) -> None:
        store.atomic_write_json(self.state_file, self._state, mode=store.PUBLIC_MODE)


# ---- a bearer's data path: admitted, then dropped without losing a counted byte -------
ADMIT_UP = "attached_up"
"""nftables set: source addresses the carrier accepts from the cell (uplink)."""
ADMIT_DOWN = "attached_down"
"""nftables set: destination addresses the carrier forwards into the cell (downlink)."""


def admit(layout: LabLayout, address: str) -> None:
    """A data context is up: the carrier admits ``address`` both ways, *then* the cell
    link comes up (no data channel without a bearer; nothing can be sent unbilled)."""
    for name in (ADMIT_UP, ADMIT_DOWN):
        run(["nft", "add", "element", "ip", "carrier", name, f"{{ {address} }}"], netns=layout.core)
    cell_link(layout, True)


def drop_bearer(layout: LabLayout, address: str, *, last: bool) -> None:
    """The bearer of ``address`` goes, and every byte either side counted is a byte the
    other side counted too: a packet the carrier counts is a packet the device receives,
    a packet the device counts as sent is a packet the carrier counts.

    1. Out of the downlink set: from here no packet to ``address`` passes the counter.
    2. One RCU grace period: a packet that passed the counter before (1) is inside one
       softirq call from the forward hook to the veth transmit that counts it on
       ``wwan0`` (``cell0`` is ``noqueue``, ARP is off: no queue in between); the grace
       period ends when every such call has returned.
    3. The cell link goes down (``last``: no other context uses it). ``wwan0`` loses its
       carrier and counts nothing more as sent.
    4. The core's per-CPU input backlog (``wwan0`` counted its packets as sent when they
       were queued there) is seen empty on every CPU, then one more grace period for the
       packet each CPU may be processing: every one of them has passed the uplink counter.
    5. Out of the uplink set.

    Before this order the link went down first: the forward hook went on counting
    packets that ``cell0``'s transmit then dropped (QDISC_DROP in ``__dev_queue_xmit``)
    for as long as ``ip link set down`` took from taking the qdisc away to flushing the
    route: 0 to 47 full-size packets per drop under bulk load (docs/swap.md).
    """
    t0 = time.monotonic()
    run(["nft", "delete", "element", "ip", "carrier", ADMIT_DOWN, f"{{ {address} }}"], netns=layout.core,
        check=False)
    rcu_grace_period()
    drained = None
    if last:
        cell_link(layout, False)
        drained = wait_backlog_drained()
        rcu_grace_period()
    run(["nft", "delete", "element", "ip", "carrier", ADMIT_UP, f"{{ {address} }}"], netns=layout.core,
        check=False)
    LOGGER.info("carrier: bearer of %s dropped in %.0f ms (cell link %s)", address, (time.monotonic() - t0) * 1000,
                "kept for another context" if drained is None else "down, backlog drained" if drained
                else "down, backlog NOT seen drained")


def cell_link(layout: LabLayout, up: bool) -> None:
    """The cell link (``cell0``) up or down: ``wwan0`` gains or loses its carrier, as a
    real modem's data interface does with its bearer (docs/virtual-board.md)."""
    run(["ip", "link", "set", layout.cell_if, "up" if up else "down"], netns=layout.core, check=False)


_grace_warned = False


def rcu_grace_period() -> None:
    """Return after one RCU grace period (membarrier's global barrier); a logged fixed
    wait where the kernel refuses it."""
    global _grace_warned
    number = MEMBARRIER_SYSCALL.get(platform.machine())
    if number is not None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(number, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0:
            return
        reason = os.strerror(ctypes.get_errno())
    else:
        reason = f"no membarrier syscall number for {platform.machine()}"
    if not _grace_warned:
        LOGGER.warning("carrier: no RCU grace period (%s): waiting %.2f s at each bearer drop instead; "
                       "a counted packet can then be lost in flight", reason, GRACE_FALLBACK_S)
        _grace_warned = True
    time.sleep(GRACE_FALLBACK_S)


def backlog_lengths(text: str) -> dict[int, int] | None:
    """Per-CPU input backlog length from /proc/net/softnet_stat (columns 12 and 13, in hex:
    queue length and CPU index, since Linux 5.10); None on a kernel without them."""
    out = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) < 13:
            return None
        out[int(cols[12], 16)] = int(cols[11], 16)
    return out


def wait_backlog_drained(timeout: float = BACKLOG_DRAIN_TIMEOUT_S) -> bool:
    """Until each CPU's input backlog has been seen empty once (it is a FIFO, so every
    packet queued before the call has then been taken off it). False, logged, on timeout
    or on a kernel whose softnet_stat does not show the backlog."""
    deadline = time.monotonic() + timeout
    pending: set[int] | None = None
    while True:
        lengths = backlog_lengths(SOFTNET_STAT.read_text())
        if lengths is None:
            LOGGER.warning("carrier: %s shows no backlog length; an uplink packet can be lost in flight",
                           SOFTNET_STAT)
            return False
        if pending is None:
            pending = set(lengths)
        pending -= {cpu for cpu, n in lengths.items() if n == 0}
        if not pending:
            return True
        if time.monotonic() > deadline:
            LOGGER.warning("carrier: input backlog of CPU(s) %s not seen empty in %.1f s", sorted(pending), timeout)
            return False
        time.sleep(BACKLOG_POLL_S)


# ---- operations the pocket-lab command line runs without the live object ------------
def read_counters(layout: LabLayout) -> dict[str, dict[str, int]]:
    """Carrier byte counts per ICCID: {"iccid": {"up": n, "down": n}} (IP bytes)."""
    data = netns.json_out(["nft", "-j", "list", "counters", "table", "ip", "carrier"], netns=layout.core)
    out: dict[str, dict[str, int]] = {}
    for item in data.get("nftables", []) if isinstance(data, dict) else []:
        counter = item.get("counter")
        if not counter:
            continue
        direction, _, iccid = counter["name"].partition("_")
        out.setdefault(iccid, {"up": 0, "down": 0})[direction] = int(counter["bytes"])
    return out


def police(layout: LabLayout, address: str, index: int, rate_kbit: int) -> str:
    """Police one SIM address to ``rate_kbit`` both ways, replacing an earlier policer.

    A carrier polices: packets beyond the rate are dropped, never queued. The first
    choice is ``tc``'s police action on the ingress of ``cell0`` (uplink) and ``up0``
    (downlink). Kernels built without ``act_police`` (some VM kernels, this lab's CI
    machine among them) get the same token-bucket policer from nftables instead:
    ``limit rate over <bytes>/second burst <bytes> drop`` at the head of the carrier's
    forward chain, also before the billing counters. Returns which one is in force.
    """
    unpolice(layout, index)
    rate_bytes = rate_kbit * 1000 // 8
    burst = max(POLICE_MIN_BURST, int(rate_bytes * POLICE_BURST_SECONDS))
    try:
        _police_tc(layout, address, index, rate_kbit, burst)
        return "tc"
    except netns.LabCommandError as exc:
        LOGGER.info("tc police unavailable (%s); policing with nftables", exc)
        _unpolice_tc(layout, index)
    for rule in (f'iifname "{layout.cell_if}" ip saddr {address}', f'oifname "{layout.cell_if}" ip daddr {address}'):
        run(["nft", "insert", "rule", "ip", "carrier", "forward", *rule.split(), "limit", "rate", "over",
             f"{rate_bytes}", "bytes/second", "burst", f"{burst}", "bytes", "drop",
             "comment", f'"{_police_comment(index)}"'], netns=layout.core)
    return "nftables"


def _police_comment(index: int) -> str:
    return f"police-{index + 1}"


def _police_tc(layout: LabLayout, address: str, index: int, rate_kbit: int, burst: int) -> None:
    prio = str(100 + index + 1)
    for ifname, match in ((layout.cell_if, "src"), (layout.core_up_if, "dst")):
        run(["tc", "filter", "add", "dev", ifname, "parent", "ffff:", "protocol", "ip", "prio", prio,
             "u32", "match", "ip", match, f"{address}/32",
             "action", "police", "rate", f"{rate_kbit}kbit", "burst", str(burst), "conform-exceed", "drop"],
            netns=layout.core)


def _unpolice_tc(layout: LabLayout, index: int) -> None:
    prio = str(100 + index + 1)
    for ifname in (layout.cell_if, layout.core_up_if):
        run(["tc", "filter", "del", "dev", ifname, "parent", "ffff:", "prio", prio], netns=layout.core, check=False)


def unpolice(layout: LabLayout, index: int) -> None:
    """Remove a SIM's policer, tc or nftables (no error when there is none)."""
    _unpolice_tc(layout, index)
    data = netns.json_out(["nft", "-j", "-a", "list", "chain", "ip", "carrier", "forward"], netns=layout.core)
    for item in data.get("nftables", []) if isinstance(data, dict) else []:
        rule = item.get("rule")
        if rule and rule.get("comment") == _police_comment(index):
            run(["nft", "delete", "rule", "ip", "carrier", "forward", "handle", str(rule["handle"])],
                netns=layout.core, check=False)


def active_sims(state_file: Path) -> dict[str, dict[str, Any]]:
    """IMSI -> {"iccid","address","cid","index"} for SIMs with a data context up."""
    state = store.read_json(state_file, None) or {}
    return dict(state.get("active", {}))
