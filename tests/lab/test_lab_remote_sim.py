"""Issue 24 in the real lab: the daemon on the remote-SIM board (the agent answers as the
SIM over AT, docs/remote-sim.md) boots to serving from its sealed seed, swaps on command
with usage exact, and no SIM key ever crosses the AT port.

One commanded swap on the session's vSIM lab first, then the lab again with
``--board remote-sim`` at the same modem time scale, so the two boards' breaks are printed
side by side from the same machine and the same moment.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab.conftest import (
    LAB_DIR,
    agent_status,
    keep_logs,
    lab,
    lab_json,
    lab_needed_after,
    set_policy,
)
from tests.lab.test_lab_swap import commanded_swap
from tests.lab.test_lab_usage import download, settled_usage

CAPTURE = LAB_DIR / "at-capture.bin"
"""Every byte of the modem's AT port, both ways, for the remote-SIM lab's whole life."""
DOWNLOAD_BYTES = 2_000_000
"""Enough traffic on each SIM that a byte billed to the wrong one shows."""
SWAP_POLICY = {"max_per_hour": 30, "max_per_day": 200}
"""A commanded swap is refused by a spent hourly limit; whatever ran before in this lab."""


@pytest.fixture(scope="module")
def remote_lab(running_lab: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    set_policy(**SWAP_POLICY)
    vsim = commanded_swap()  # the vSIM board's break, for the comparison
    assert vsim["ok"], vsim
    lab("traffic", "stop", check=False)
    lab("down", check=False)
    # Real modem time on this board, not the test labs' 0.2: at 0.2 one run counted 76 and 304
    # downlink bytes on the device that the carrier did not (the swap's usage check below),
    # cause not found yet (issue 24 stays open for it); at 1.0 every run was exact.
    lab("up", "--board", "remote-sim", "--time-scale", "1.0",
        "--capture-at", str(CAPTURE), timeout=240)
    try:
        yield {"vsim_swap": vsim, "status": lab_json("status")}
    finally:
        keep_logs("remote-sim")
        if lab_needed_after(request):
            lab("down", check=False)
            lab("up", timeout=240)  # the session's lab, as the other modules expect it


def pool() -> dict[str, Any]:
    return json.loads((LAB_DIR / "pool.json").read_text())


def test_boots_to_serving_from_the_sealed_seed(remote_lab: dict[str, Any]) -> None:
    assert remote_lab["status"]["board"] == "remote-sim"
    status = agent_status()
    assert status["state"] == "serving" and not status["sim"]["seed"], status["sim"]
    seed = pool()["seed"]
    sealed = LAB_DIR / "agent" / "seed-sim.sealed"
    cards = sorted((LAB_DIR / "agent" / "state" / "cards").glob("slot-*.sealed"))
    assert cards, "the host cards are kept"
    for path in (sealed, *cards):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        text = path.read_bytes().lower()
        assert seed["ki"].lower().encode() not in text and seed["opc"].lower().encode() not in text, path


def test_a_commanded_swap_keeps_usage_exact(remote_lab: dict[str, Any]) -> None:
    lan = remote_lab["status"]["namespaces"]["lan"]
    set_policy(**SWAP_POLICY)
    old = agent_status()["sim"]["iccid"]
    download(lan, DOWNLOAD_BYTES)
    result = commanded_swap()
    assert result["ok"] and result["from_iccid"] == old, result
    new = result["to_iccid"]
    download(lan, DOWNLOAD_BYTES)
    lab("agent", "stop")
    try:
        usage, pending = settled_usage([old, new])
    finally:
        lab("agent", "start")
    diffs = {iccid: {d: usage[iccid]["cloud"][d] + pending[iccid][d] - usage[iccid]["carrier"][d]
                     for d in ("up", "down")} for iccid in (old, new)}
    vsim = remote_lab["vsim_swap"]["break_ms"]
    print(f"\nswap break: remote-SIM board {result['break_ms']:.0f} ms {result['phases_ms']}, "
          f"vSIM board {vsim:.0f} ms {remote_lab['vsim_swap']['phases_ms']}; usage diff {diffs}")
    assert all(usage[i]["carrier"]["down"] >= DOWNLOAD_BYTES for i in (old, new)), usage
    assert diffs == {i: {"up": 0, "down": 0} for i in (old, new)}


def test_no_sim_key_crossed_the_at_port(remote_lab: dict[str, Any]) -> None:
    """The capture covers the lab's whole life: the seed's power-up, the boot swap, the
    commanded swap and the restart above (run after them, in file order)."""
    wire = CAPTURE.read_bytes()
    assert wire.count(b"+SIMDATA:") > 40 and b"AT+SIMDATA=" in wire, "the capture holds the card traffic"
    text = wire.decode("latin-1").lower()
    data = pool()
    for sim in [data["seed"], *data["sims"]]:
        for key in ("ki", "opc"):
            assert sim[key].lower() not in text, f"{key} of {sim['iccid']} on the AT port"
            assert bytes.fromhex(sim[key]) not in wire, f"{key} of {sim['iccid']} on the AT port (binary)"
