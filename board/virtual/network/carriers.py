"""A lab with several carriers (``pocket-lab up --carriers 2``, issue 23).

One carrier is the lab as it always was (``<p>-core``, cell subnet 198.18.1.0/24, uplink
``up0`` to ``ix0`` in the internet namespace). Each further carrier is its own core
namespace with its own PLMN, billing counters, admission sets, policers and capacity
shaper, and its own uplink to the internet namespace:

=========  ============  ===========  ===============  ===================
carrier    namespace     cell subnet  core uplink      internet side
=========  ============  ===========  ===============  ===================
A (44010)  ``<p>-core``  198.18.1/24  198.18.0.254     ``ix0`` 198.18.0.1
B (44020)  ``<p>-coreb`` 198.18.3/24  198.18.4.254     ``ix1`` 198.18.4.1
=========  ============  ===========  ===============  ===================

The router has one modem and so one cell link: ``wwan0``'s far end (``cell0``) lives in
the core of the carrier whose SIM last brought a data context up. When a SIM of another
carrier activates one, ``cell0`` (down, since the last bearer of the old carrier went
with ``drop_bearer``) is moved into that carrier's namespace, given its gateway address
and an ingress qdisc, and the carrier admits the SIM as before. The order of admission,
counters and the link is each carrier's own (board/virtual/network/carrier.py), so a
byte is counted exactly as in the one-carrier lab. A ``tc`` policer on ``cell0`` does not
move with the link (the qdisc is the namespace's): the plan enforcement re-applies every
policer after a move (board/virtual/lab/daemon.py).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from board.virtual.modem.auc import Auc
from board.virtual.modem.model import CarrierReject
from board.virtual.network import netns
from board.virtual.network.carrier import (
    CELL_CAPACITY_KBIT,
    CELL_QUEUE_MS,
    EMM_IMSI_UNKNOWN,
    CarrierNetwork,
    LabLayout,
    read_counters,
)
from board.virtual.network.netns import run

LOGGER = logging.getLogger(__name__)

LETTERS = "ABC"
"""Carriers are named A, B, C on the command line (``--carrier B``), in pool order."""
EXTRA_SITES: tuple[dict[str, str], ...] = (
    {"core_name": "coreb", "cell_gateway": "198.18.3.1", "inet_if": "ix1", "core_up_addr": "198.18.4.254",
     "inet_side_addr": "198.18.4.1"},
    {"core_name": "corec", "cell_gateway": "198.18.5.1", "inet_if": "ix2", "core_up_addr": "198.18.6.254",
     "inet_side_addr": "198.18.6.1"},
)
"""The second and third carrier's addresses: /24s of 198.18.0.0/15 the one-carrier lab
does not use (198.18.2.0/24 is the LAN)."""
MAX_CARRIERS = 1 + len(EXTRA_SITES)


@dataclass(frozen=True)
class Site:
    """One carrier of the lab: its letter, name and PLMN, and where it lives."""

    letter: str
    name: str
    plmn: str
    layout: LabLayout
    state_file: Path


def sites(base: LabLayout, pool: dict[str, Any], lab_dir: Path) -> list[Site]:
    """The carriers of a lab: one per entry of the pool's ``carriers`` list (written by
    ``up --carriers N``), the first on ``base``; an empty list for the one-carrier lab."""
    out = []
    for i, carrier in enumerate(pool.get("carriers") or []):
        layout = base if i == 0 else dataclasses.replace(base, **EXTRA_SITES[i - 1])  # type: ignore[arg-type]
        state = lab_dir / ("carrier.json" if i == 0 else f"carrier-{LETTERS[i].lower()}.json")
        out.append(Site(LETTERS[i], carrier["name"], carrier["plmn"], layout, state))
    return out


def extra_namespaces(prefix: str) -> list[str]:
    """Every further carrier's core namespace name (``down`` deletes them all, up or not)."""
    return [f"{prefix}-{extra['core_name']}" for extra in EXTRA_SITES]


def find_site(all_sites: list[Site], name: str) -> Site:
    """``B``, ``b``, ``carrier-b`` or ``44020``: the carrier meant; ValueError if none."""
    for site in all_sites:
        if name.upper() == site.letter or name.lower() == site.name or name == site.plmn:
            return site
    known = ", ".join(f"{s.letter} ({s.plmn})" for s in all_sites) or "none: the lab has one carrier"
    raise ValueError(f"no carrier {name!r} in this lab; known: {known}")


def setup_extra_core(site: Site, pool: dict[str, Any]) -> None:
    """Build a further carrier's core beside the lab the first one built: namespace, uplink
    to the internet namespace, routes both ways, billing table, ingress qdisc, shaper."""
    lay = site.layout
    assert lay.inet_side_addr is not None
    netns.add(lay.core)
    netns.sysctl(lay.core, "net.ipv6.conf.all.disable_ipv6", "1")
    netns.sysctl(lay.core, "net.ipv6.conf.default.disable_ipv6", "1")
    links = {link["ifname"] for link in netns.json_out(["ip", "-j", "link", "show"], netns=lay.core)}
    if lay.core_up_if not in links:
        run(["ip", "link", "add", lay.core_up_if, "netns", lay.core, "type", "veth", "peer", "name", lay.inet_if,
             "netns", lay.inet])
    run(["ip", "link", "set", lay.core_up_if, "up"], netns=lay.core)
    run(["ip", "link", "set", lay.inet_if, "up"], netns=lay.inet)
    run(["ip", "addr", "replace", f"{lay.core_up_addr}/24", "dev", lay.core_up_if], netns=lay.core)
    run(["ip", "addr", "replace", f"{lay.inet_side_addr}/24", "dev", lay.inet_if], netns=lay.inet)
    run(["ip", "route", "replace", "default", "via", lay.inet_side_addr], netns=lay.core)
    run(["ip", "route", "replace", f"{lay.cell_net}.0/{lay.cell_prefix}", "via", lay.core_up_addr], netns=lay.inet)
    netns.sysctl(lay.core, "net.ipv4.ip_forward", "1")
    net = CarrierNetwork(lay, pool, site.state_file, plmns=frozenset({site.plmn}))
    run(["nft", "-f", "-"], netns=lay.core, input_text=net._carrier_ruleset())
    run(["tc", "qdisc", "replace", "dev", lay.core_up_if, "ingress"], netns=lay.core)
    shape(lay, CELL_CAPACITY_KBIT, CELL_QUEUE_MS)
    net._save()


def shape(layout: LabLayout, kbit: int, queue_ms: int) -> None:
    """A carrier's cell capacity: a token bucket on the internet side of its core (before
    its billing counters, so a packet it drops is never billed)."""
    run(["ip", "link", "set", layout.inet_if, "gso_max_segs", "1"], netns=layout.inet)
    run(["tc", "qdisc", "replace", "dev", layout.inet_if, "root", "tbf", "rate", f"{kbit}kbit",
         "burst", "64kb", "latency", f"{queue_ms}ms"], netns=layout.inet)


def read_all_counters(all_sites: list[Site]) -> dict[str, dict[str, int]]:
    """Every carrier's byte counts per ICCID (each SIM is on one carrier only)."""
    out: dict[str, dict[str, int]] = {}
    for site in all_sites:
        out.update(read_counters(site.layout))
    return out


class MultiCarrier:
    """The virtual modem's carrier (``CarrierHooks``) in a lab with several: each request
    goes to the carrier of the SIM's PLMN, and the cell link follows the data context."""

    def __init__(self, all_sites: list[Site], pool: dict[str, Any]):
        self.sites = all_sites
        self.nets = {site.plmn: CarrierNetwork(site.layout, pool, site.state_file, plmns=frozenset({site.plmn}))
                     for site in all_sites}
        self._by_plmn = {site.plmn: site for site in all_sites}
        self.auc = Auc(self._keys)
        """One AuC for every carrier's subscribers (a remote-SIM modem asks the network it
        attaches to; each carrier's ``attach`` checks this one)."""
        for net in self.nets.values():
            net.auc = self.auc
        self._lock = threading.Lock()
        self.cell_at = self._locate_cell()
        """The PLMN whose core holds ``cell0`` now."""
        self.moves = 0
        """How often the cell link moved: the plan enforcement re-applies policers after one."""

    def _locate_cell(self) -> str:
        for site in self.sites:
            links = {link["ifname"] for link in netns.json_out(["ip", "-j", "link", "show"], netns=site.layout.core)}
            if site.layout.cell_if in links:
                return site.plmn
        raise netns.LabCommandError("no carrier core holds the cell link (was the lab set up?)")

    def site_of_imsi(self, imsi: str) -> Site | None:
        for plmn, site in self._by_plmn.items():
            if imsi.startswith(plmn):
                return site
        return None

    def _keys(self, imsi: str) -> tuple[bytes, bytes] | None:
        net = self._net(imsi)
        return None if net is None else net._keys(imsi)

    def _net(self, imsi: str) -> CarrierNetwork | None:
        site = self.site_of_imsi(imsi)
        return self.nets[site.plmn] if site else None

    def attach(self, imsi: str, plmn: str, challenge: Callable[[bytes], bytes] | None) -> int | None:
        net = self._net(imsi)
        if net is None:
            LOGGER.warning("carriers: attach from IMSI %s of no carrier in this lab rejected", imsi)
            return EMM_IMSI_UNKNOWN
        return net.attach(imsi, plmn, challenge)

    def activate(self, imsi: str, cid: int, apn: str) -> dict[str, Any]:
        site = self.site_of_imsi(imsi)
        if site is None:
            raise CarrierReject(EMM_IMSI_UNKNOWN, "no carrier for this IMSI")
        with self._lock:
            self._move_cell(site)
        return self.nets[site.plmn].activate(imsi, cid, apn)

    def deactivate(self, imsi: str, cid: int) -> None:
        net = self._net(imsi)
        if net is not None:
            net.deactivate(imsi, cid)

    def detach(self, imsi: str) -> None:
        net = self._net(imsi)
        if net is not None:
            net.detach(imsi)

    def _move_cell(self, site: Site) -> None:
        """Hand ``cell0`` to ``site``'s core (it is down: the old carrier's last bearer
        took it down), with the gateway address and the ingress qdisc its policers use."""
        if self.cell_at == site.plmn:
            return
        old = self._by_plmn[self.cell_at].layout
        new = site.layout
        if self.nets[self.cell_at]._state.get("active"):
            LOGGER.warning("carriers: %s still has a data context up while %s activates one", self.cell_at, site.plmn)
        run(["ip", "link", "set", old.cell_if, "down"], netns=old.core, check=False)
        run(["ip", "link", "set", old.cell_if, "netns", new.core], netns=old.core)
        try:
            netns.sysctl(new.core, f"net.ipv6.conf.{new.cell_if}.disable_ipv6", "1")
        except netns.LabCommandError as exc:  # the namespace's default already disabled it
            LOGGER.debug("carriers: %s", exc)
        run(["ip", "addr", "replace", f"{new.cell_gateway}/{new.cell_prefix}", "dev", new.cell_if], netns=new.core)
        run(["tc", "qdisc", "replace", "dev", new.cell_if, "ingress"], netns=new.core)
        LOGGER.info("carriers: the cell link moved from %s (%s) to %s (%s)", self.cell_at, old.core, site.plmn, new.core)
        self.cell_at = site.plmn
        self.moves += 1
