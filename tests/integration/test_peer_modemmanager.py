"""Peer check: Debian's ModemManager takes the virtual modem for a Quectel EC25 and registers it.

ModemManager is the reference modem stack on Linux; it probes a port with its own command
sequence (+GCAP, +WS46=?, +CRSM reads of the SIM's files, +CSIM PIN counters, +CEREG, ...)
and refuses or misreads a modem whose answers are not what real basebands give. Here it
runs against the virtual modem in private mount and PID namespaces (tests/integration/
mm_namespace.sh): a fake sysfs entry for a USB device 2c7c:0125 whose interface 2 holds
ttyUSB2, /dev/ttyUSB2 pointing at the modem's pty, a private system bus, and
``ModemManager --no-auto-scan --test-no-udev --initial-kernel-events``. The test asserts
what ``mmcli -J`` reports once the modem is enabled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from board.virtual.modem.device import VirtualModem
from board.virtual.modem.ident import EC25_IDENTITY
from board.virtual.modem.model import ModemConfig
from tests.conftest import need_root, need_tool

SCRIPT = Path(__file__).with_name("mm_namespace.sh")
TIME_SCALE = 0.1
"""Modelled latencies at a tenth: ModemManager's own timeouts (3 s per command) stay far
away, and attach (2 s modelled) takes 0.2 s."""
RUN_TIMEOUT = 90.0
"""Seconds for the whole run: probing takes ~5 s of ModemManager's fixed waits, enabling
and registering a few more; 90 s means it is stuck (the log is shown)."""

EC25 = ModemConfig(time_scale=TIME_SCALE, **EC25_IDENTITY)


@pytest.fixture(scope="module")
def mmcli(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    need_root()
    for tool in ("ModemManager", "mmcli", "dbus-daemon", "unshare"):
        need_tool(tool)
    work = tmp_path_factory.mktemp("mm")
    with VirtualModem(EC25) as vm:
        run = subprocess.run(
            # A PID namespace too: if the run is killed (timeout), its init dies and the
            # kernel ends ModemManager, the bus and the fake polkit with it.
            ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc",
             str(SCRIPT), vm.path, str(work), sys.executable],
            capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
        )
    if run.returncode != 0:
        log = (work / "mm.log").read_text()[-6000:] if (work / "mm.log").exists() else ""
        pytest.fail(f"ModemManager run failed ({run.returncode}): {run.stderr[-2000:]}\n--- mm.log tail ---\n{log}")
    modem = json.loads((work / "modem.json").read_text())["modem"]
    sim = json.loads((work / "sim.json").read_text())["sim"]["properties"]
    return {"modem": modem, "sim": sim}


def test_identity_and_plugin(mmcli: dict[str, Any]) -> None:
    generic = mmcli["modem"]["generic"]
    assert (generic["manufacturer"], generic["model"], generic["plugin"]) == ("Quectel", "EC25", "quectel")
    assert generic["revision"] == "EC25EFAR06A06M4G"
    assert mmcli["modem"]["3gpp"]["imei"] == EC25.imei
    assert generic["primary-port"] == "ttyUSB2"


def test_lte_capability_and_access_technology(mmcli: dict[str, Any]) -> None:
    generic = mmcli["modem"]["generic"]
    assert "lte" in generic["current-capabilities"][0]  # from +WS46=?
    assert generic["access-technologies"] == ["lte"]  # from +CEREG / +COPS act 7


def test_registered_with_operator_and_signal(mmcli: dict[str, Any]) -> None:
    gpp = mmcli["modem"]["3gpp"]
    assert mmcli["modem"]["generic"]["state"] == "registered"
    assert (gpp["registration-state"], gpp["packet-service-state"]) == ("home", "attached")
    assert (gpp["operator-code"], gpp["operator-name"]) == ("44010", "LAB MOBILE")
    assert int(mmcli["modem"]["generic"]["signal-quality"]["value"]) > 0


def test_sim_files_read_through_crsm_and_csim(mmcli: dict[str, Any]) -> None:
    sim = mmcli["sim"]
    assert (sim["iccid"], sim["imsi"]) == (EC25.seed.iccid, EC25.seed.imsi)
    assert (sim["operator-code"], sim["operator-name"]) == ("44010", "LAB MOBILE")  # EF_AD, EF_SPN
    assert sim["gid1"] == "0AFFFFFFFFFFFFFF" and sim["emergency-numbers"] == ["110", "118", "119"]
    retries = mmcli["modem"]["generic"]["unlock-retries"]
    assert retries == ["sim-pin (3)", "sim-puk (10)", "sim-pin2 (3)", "sim-puk2 (10)"]
    assert mmcli["modem"]["generic"]["own-numbers"] == ["+818034500001"]
