"""The board process of a running lab: the virtual modem on a pty, wired to the carrier.

``pocket-lab up`` starts it detached (``python -m board.virtual.lab.daemon --lab-dir D``). It
serves AT on a pty whose path it writes to ``D/modem.json``, plays the carrier for the
modem's attach and data-context requests, and enforces plans: every ``CAP_CHECK_SECONDS``
it reads the carrier's per-SIM counters, stamps them with lab time (``pocket-lab clock``),
and polices any active SIM one of whose plan rules is over its cap, at that rule's rate,
as the wholesale carriers did, until the rule's window resets or drains.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import store
from board.virtual.cloud.pool import load_pool
from board.virtual.lab import sms as labsms
from board.virtual.lab.console import DEVICE_END, TECHNICIAN_END
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import ModemConfig
from board.virtual.network import carrier as carrier_mod
from board.virtual.network import carriers as carriers_mod
from board.virtual.network import faults, labclock, sharedsims
from board.virtual.network.cable import PtyCable
from board.virtual.network.carrier import CarrierNetwork, LabLayout
from board.virtual.network.plancarrier import CarrierMeter

LOGGER = logging.getLogger(__name__)

CAP_CHECK_SECONDS = 2.0
"""Carriers enforce caps with some delay; two seconds keeps the lab prompt and cheap."""


def modem_config_from(pool: dict[str, Any], time_scale: float = 1.0, remote_sim: bool = False) -> ModemConfig:
    """The virtual modem's configuration: the pool's seed SIM in slot 0, modem time x ``time_scale``;
    with ``remote_sim`` no card of its own (the agent serves the seed: board/virtual/lab/seedsim.py)."""
    seed = pool["seed"]
    return ModemConfig.from_dict({"seed": {k: seed[k] for k in ("iccid", "imsi", "ki", "opc", "plmn", "apn") if k in seed},
                                  "time_scale": time_scale, "remote_sim": remote_sim})


def enforce_caps(layout: LabLayout, pool: dict[str, Any], state_file: Path, policed: dict[str, int],
                 meter: CarrierMeter | None = None) -> None:
    """Apply every active SIM's plan as its carrier would (board/virtual/network/plancarrier.py):
    police it at a rule's rate once the carrier's count in the rule's window is over its cap
    (month, JST day, rolling 72 h, on lab time), hold a flat-rate plan at its nominal rate,
    and lift the policer when the window resets or drains."""
    meter = meter if meter is not None else CarrierMeter()
    counts = carrier_mod.read_counters(layout)
    now = labclock.lab_time(state_file.parent)
    sharedsims.load_into(meter, state_file.parent)  # bytes used in other routers, credits bought
    sims = {sim["iccid"]: (index, sim) for index, sim in carrier_mod.pool_sims(pool)}
    for iccid, count in counts.items():
        meter.record(iccid, now, count.get("up", 0), count.get("down", 0))
    for active in carrier_mod.active_sims(state_file).values():
        index, sim = sims[active["iccid"]]
        plan = sim.get("plan") or {}
        verdict = meter.verdict(sim["iccid"], plan, now) if index >= 0 else None  # the seed SIM: control only
        rate = verdict[1] if verdict else None
        if rate == policed.get(sim["iccid"]):
            continue
        if rate is None:
            LOGGER.info("carrier: %s back under every rule of %s: policer lifted", sim["iccid"], plan.get("name"))
            carrier_mod.unpolice(layout, index)
            policed.pop(sim["iccid"], None)
            continue
        assert verdict is not None
        LOGGER.info("carrier: %s %s: policing to %d kbps", sim["iccid"],
                    "held at its nominal rate" if verdict[0] == "nominal" else f"over rule {verdict[0]}", rate)
        carrier_mod.police(layout, active["address"], index, rate)
        policed[sim["iccid"]] = rate
        if verdict[0] != "nominal":
            labsms.queue_sms(state_file.parent, labsms.CARRIER_SENDER, labsms.cap_notice(plan))  # as carriers do


def at_capture(path: Path) -> Callable[[bytes], None]:
    """A wire tap appending to ``path`` (0600 from the first byte: it carries what the AT
    line carries, CK and IK on the remote-SIM board), unbuffered so a test reads it live."""
    fd = store.open_private_append(path)

    def write(data: bytes) -> None:
        os.write(fd, data)
    return write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--prefix", default="pw")
    parser.add_argument("--time-scale", type=float, default=1.0, help="modelled modem latency multiplier")
    parser.add_argument("--remote-sim", action="store_true", help="the modem's remote-SIM personality (issue 24)")
    parser.add_argument("--capture-at", type=Path, help="append every byte of the AT port, both ways, to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    layout = LabLayout(prefix=args.prefix)
    pool = load_pool(args.lab_dir / "pool.json")
    state_file = args.lab_dir / "carrier.json"
    sites = carriers_mod.sites(layout, pool, args.lab_dir)  # issue 23: empty for the one-carrier lab
    network: Any = carriers_mod.MultiCarrier(sites, pool) if sites else CarrierNetwork(layout, pool, state_file)
    # Faults (pocket-lab fault, board/virtual/network/faults.py) sit between the modem and the carrier.
    carrier = faults.FaultyCarrier(network, (pool.get("seed") or {}).get("imsi"))
    modem = VirtualModem(modem_config_from(pool, args.time_scale, args.remote_sim), carrier)
    if args.capture_at is not None:
        modem.wire_tap = at_capture(args.capture_at)
    modem.network_time = lambda: labclock.lab_time(args.lab_dir)  # NITZ on lab time (pocket-lab clock)
    faults.install_ceer(modem, carrier)

    def publish_port(path: str) -> None:
        store.atomic_write_json(args.lab_dir / "modem.json", {"pty": path}, mode=store.PUBLIC_MODE)
        faults.link_port(args.lab_dir, path)
        LOGGER.info("virtual modem on %s (stable path %s)", path, args.lab_dir / faults.PORT_LINK_NAME)

    publish_port(modem.start())
    # ---- console (issue 12): the technician's USB cable, a pty pair; SIGUSR1 pulls it

    cable = PtyCable(args.lab_dir / DEVICE_END, args.lab_dir / TECHNICIAN_END)
    signal.signal(signal.SIGUSR1, lambda *_: cable.unplug())
    signal.signal(signal.SIGUSR2, lambda *_: cable.plug())
    # ---- end console
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runner = faults.FaultRunner(modem, carrier, layout, args.lab_dir, on_port=publish_port, sites=sites)
    faults.serve(runner, args.lab_dir / faults.SOCKET_NAME, stop)
    policed: dict[str, int] = {}
    meter = CarrierMeter()
    next_cap_check = 0.0
    moves_seen = 0
    while not stop.wait(faults.TICK):
        runner.tick()
        if time.monotonic() < next_cap_check:
            continue
        next_cap_check = time.monotonic() + CAP_CHECK_SECONDS
        try:
            if not sites:
                enforce_caps(layout, pool, state_file, policed, meter)
            else:
                if network.moves != moves_seen:  # the cell link moved: its tc policers stayed behind
                    moves_seen = network.moves
                    policed.clear()
                for site in sites:
                    enforce_caps(site.layout, pool, site.state_file, policed, meter)
        except Exception:  # a failed check must not take the modem down with it
            LOGGER.exception("cap check failed")
        try:
            labsms.deliver_pending(args.lab_dir, modem)  # pocket-lab sms
        except Exception:
            LOGGER.exception("SMS delivery failed")
    runner.clear_all()
    modem.stop()
    cable.close()  # console (issue 12)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
