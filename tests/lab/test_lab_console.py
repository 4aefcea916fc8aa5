"""The technician console against the real daemon in the lab (root; shares the lab session).

The terminal opens the lab's technician end (``console.pty`` in ``pocket-lab status
--json``); labd relays it to the device end the agent serves, and the agent answers from
its real supervisor through the control socket. The pool's SIMs have known Ki and OPc
(pool.json): not one of them may appear in anything the console wrote, in the audit
log on the device, or in what went upstream.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agent.recordlog import RecordLog
from tests.console.rig import Terminal
from tests.lab.conftest import LAB_DIR, agent_status, control, event_data, lab, wait_until
from tests.lab.test_lab_swap import lan_reaches_internet

PROMPT = r"rtr-000001 \w+[>#] $"
ADMIN = r"rtr-000001 \w+# $"


def secrets() -> list[bytes]:
    pool = json.loads((LAB_DIR / "pool.json").read_text())
    out = []
    for sim in [pool["seed"], *pool["sims"]]:
        for key in (sim["ki"], sim["opc"]):
            raw = bytes.fromhex(key)
            out += [key.lower().encode(), key.upper().encode(), base64.b64encode(raw), raw]
    return out


@pytest.fixture
def console(running_lab: dict[str, Any], tmp_path: Path) -> Any:
    term = Terminal(running_lab["console"]["pty"])
    term.send("\r")
    term.expect(PROMPT)
    yield term
    term.close()
    transcript = bytes(term.transcript)
    for form in secrets():
        assert form not in transcript


SWAP_TIMEOUT = 45.0
"""One commanded swap: ~6 s of modelled modem time at most plus the cloud round trip; seven
times that (tests/lab/test_lab_swap.py)."""


def swap_made_by_this_process() -> dict[str, Any]:
    """Command one swap and wait for its result at the cloud: whatever ran before in this lab
    (an agent restarted by another module keeps its SIM without a swap), the running agent
    then holds one swap of its own in its history."""
    before = len(event_data("swap"))
    lab("swap")
    result = wait_until("the commanded swap's result at the cloud",
                        lambda: event_data("swap")[before:] and event_data("swap")[before], SWAP_TIMEOUT)
    assert result["ok"], result
    wait_until("the agent serving on the new SIM",
               lambda: agent_status().get("state") == "serving"
               and (agent_status().get("sim") or {}).get("iccid") == result["to_iccid"], SWAP_TIMEOUT)
    return result


def test_read_only_commands_from_the_real_daemon(console: Terminal) -> None:
    swapped = swap_made_by_this_process()
    status = console.command("status", until=PROMPT).decode()
    iccid = (agent_status().get("sim") or {}).get("iccid")
    plmn = next(sim["plmn"] for sim in json.loads((LAB_DIR / "pool.json").read_text())["sims"] if sim["iccid"] == iccid)
    assert iccid and iccid in status and plmn in status and "dBm" in status  # its network as MCC-MNC
    assert "kbit/s" in status and "down - kbit/s" not in status  # the view's own 2-s throughput reading
    for line in ("modem", "signal", "sim", "usage", "health", "log 5", "selftest"):
        out = console.command(line, until=PROMPT).decode()
        assert "\r\nerror: " not in out, out  # (a log line may well mention an error)
    selftest = console.command("selftest --json", until=PROMPT).decode().splitlines()[1]
    checks = {c["name"]: c["ok"] for c in json.loads(selftest)["checks"]}
    assert len(checks) == 7 and checks["modem answers"] and checks["SIM ready"] and checks["state writable"]
    swaps = json.loads(console.command("swaps --json", until=PROMPT).decode().splitlines()[1])["swaps"]
    # The swap machine's recent results (phase timings): the swap commanded above is this
    # process's, to the SIM it serves on. An empty list (what isinstance(..., list) accepted)
    # would mean the history is lost.
    assert iccid == swapped["to_iccid"]
    to_current = [s for s in swaps if s["ok"] and s["to_iccid"] == iccid]
    assert to_current, f"no successful swap to {iccid} in {swaps}"
    assert to_current[-1]["phases_ms"] and all(v >= 0 for v in to_current[-1]["phases_ms"].values())
    assert "needs a technician login" in console.command("trace start", until=PROMPT).decode()  # it writes flash


def test_technician_login_audit_and_refusals(console: Terminal, tmp_path: Path) -> None:
    key = tmp_path / "alice.key"
    public = subprocess.run([sys.executable, "-m", "agent", "console", "keygen", "--out", str(key), "--no-passphrase"],
                            check=True, capture_output=True, text=True).stdout.strip()
    pinned = LAB_DIR / "agent" / "state" / "console" / "technicians.json"
    pinned.write_text(json.dumps({"version": 1, "keys": [{"name": "alice", "ed25519": public}]}))
    out = console.command("login", until=r"signature> $").decode()
    challenge = next(line.strip() for line in out.splitlines() if line.strip().startswith("pwc1 rtr-000001 "))
    signature = subprocess.run([sys.executable, "-m", "agent", "console", "sign", "--key", str(key), challenge],
                               check=True, capture_output=True, text=True).stdout.strip()
    console.send(signature + "\r")
    console.expect(ADMIN)
    assert "+CESQ:" in console.command("at +CESQ", until=PROMPT).decode()
    started = console.command("trace start --json", until=PROMPT).decode().splitlines()[1]
    trace = Path(json.loads(started)["file"])
    console.command("trace stop", until=PROMPT)
    assert trace.read_text().startswith("t,")  # the header pocket-agent replay reads
    assert "refused" in console.command("at+vsimload=1", until=PROMPT).decode()
    listing = console.command("at AT+VSIMLIST", until=PROMPT).decode()
    assert "+VSIMLIST:" in listing
    assert "error" not in console.command("modem-reset", until=PROMPT).decode()
    # the healer brings registration and data back after the reboot, with no one's help
    wait_until("the LAN served again after the modem reset", lan_reaches_internet, 90)
    console.command("logout", until=PROMPT)
    audit_file = LAB_DIR / "agent" / "state" / "console" / "console-audit.log"
    entries = [json.loads(r) for r in RecordLog(audit_file).records]
    assert [e["action"] for e in entries[-1:]] == ["logout"]
    assert any(e["action"] == "at" and e.get("outcome") == "ok" for e in entries)
    assert any(e["action"] == "at" and str(e.get("outcome")).startswith("refused") for e in entries)
    audit_bytes = audit_file.read_bytes()
    upstream = wait_until("audit events at the cloud", lambda: [
        line for line in (LAB_DIR / "cloud" / "events.jsonl").read_text().splitlines() if '"audit"' in line
        and '"logout"' in line], timeout=30)
    for form in secrets():
        assert form not in audit_bytes
        assert form not in "".join(upstream).encode()


def test_cable_pulled_and_plugged_back(console: Terminal, running_lab: dict[str, Any]) -> None:
    lab("console", "unplug")
    lab("console", "plug")
    console.expect(r"Type help for commands\.\r\n" + PROMPT, timeout=15)
    assert "dBm" in console.command("signal", until=PROMPT).decode()


def test_control_socket_of_the_running_daemon(running_lab: dict[str, Any]) -> None:
    status = control(running_lab, "status")
    assert status["device_id"] == "rtr-000001" and status["state"] == "serving"
    assert set(status["sim"]) <= {"iccid", "imsi", "slot", "seed", "plan", "assignment_id"}
