"""Issue 19 items 2 and 4: the router's whole journey under real systemd.

A Debian 12 root (tests/system/image.py) boots with systemd as PID 1 in the lab's
device namespace, with the modem's pty and the console cable bound in
(tests/system/rig.py). Then, as the factory and an operator would, following
docs/provisioning.md and packaging/README.md literally:

1. ``apt install ./pocket-agent_*.deb`` (dependencies: Debian's own packages);
2. the factory's first pass (``provision --offline``), the CSR signed with ``openssl x509
   -req`` by the lab's CA, the record handed to the platform, the second pass (``--cert``);
3. ``systemctl start pocket-agent``: serving through the lab's carrier, seen by the cloud;

and then the service's promises (item 4), one test each, in this order. The tests are
steps of one journey on one booted root: a step whose earlier steps failed fails too,
naming them (it does not skip: nothing is skipped in CI).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.core.supervisor import STATUS_EVERY
from agent.sdnotify import STATUS_MIN_INTERVAL_S
from tests.system import flap, rig
from tests.system.rig import SERVE_TIMEOUT_S, System, cloud_events, lab, lab_json, wait_until

WATCHDOG_S = 30.0
"""The unit's WatchdogSec=."""
RESTART_S = 5.0
"""The unit's RestartSec=."""
CERT_DAYS = 29
"""The factory's certificate has 29 days left, as a unit's has after eleven months in a
warehouse: the service renews it at its first start (renewal is due from 30 days before
expiry, agent/cloud/renewal.py), so renewal inside the running service is part of the
journey without touching any clock. docs/provisioning.md's example signs for 365 days;
nothing else in its command changes."""
DOWNLOAD_BYTES = 5_000_000
"""LAN traffic through the router, so the usage compared is the user's, not only the
agent's own keep-alives: more than MIN_BYTES (1 MiB), so it is reported at once."""
SWAP_TIMEOUT_S = 60.0
"""One swap is ~6 s of modelled modem time plus the cloud round trip (tests/lab)."""
RENEWAL_TIMEOUT_S = 90.0
"""The cloud signs at once; staging, the request, the check and the proving connection
take a few seconds over the lab's carrier."""
FLAP_S = 120.0
"""How long the modem answers nothing: past the agent's recovery ladder (about 80 s here)
and a restart with its delay. The issue's 15 minutes would be most of make test's budget:
they are ``make soak``'s (tests/bench/soak_system.py); the delay's growth and cap are
agent/respawn.py's own tests'."""
FACTORY_STRAGGLER_BYTES = 2 * 1500
"""The seed SIM's bound (see assert_exact): two packets; 76 bytes (a TLS close_notify) seen
once in three runs, before provisioning's connection got its close grace."""
PROMPT = r"rtr-000001 \w+[>#] $"
"""The technician console's prompt (docs/console.md)."""


def step(system: System, name: str) -> None:
    system.passed.add(name)


def config(system: System) -> dict[str, Any]:
    """The configuration the service runs with (/etc/pocket-agent/agent.toml)."""
    return tomllib.loads(system.container.path("/etc/pocket-agent/agent.toml").read_text())


def lan_download(system: System, nbytes: int) -> dict[str, Any]:
    """Bulk download by the LAN host through the router (board/virtual/network/traffic.py)."""
    done = subprocess.run(["ip", "netns", "exec", system.status["namespaces"]["lan"], sys.executable, "-m",
                           "board.virtual.network.traffic", "--kind", "bulk", "--flows", "1", "--bytes", str(nbytes),
                           "--duration", "120"], capture_output=True, text=True, timeout=180, check=False,
                          cwd=rig.REPO)
    assert done.returncode == 0, f"LAN download through the router failed: {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bytes_down"] == nbytes, result
    return result


def journal_pending(system: System) -> dict[str, dict[str, int]]:
    """Per ICCID: bytes the stopped agent journaled that the cloud has not ingested
    (read from a copy: opening the journal may compact it)."""
    from agent.clock import Clock
    from agent.usage.journal import UsageJournal

    ingested = {e["body"]["seq"] for e in cloud_events("usage")}
    state = system.container.path(config(system)["state_dir"])
    out: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "usage.journal"
        shutil.copyfile(state / "usage.journal", copy)
        journal = UsageJournal(copy, clock=Clock())
        for seq, body in journal.pending(1_000_000):
            if seq not in ingested:
                row = out.setdefault(body["iccid"], {"up": 0, "down": 0})
                row["up"] += body["tx_bytes"]
                row["down"] += body["rx_bytes"]
        journal.close()
    return out


def usage_difference(system: System) -> dict[str, dict[str, int]]:
    """Per ICCID the carrier counted since the service first started: cloud +
    journal-pending - carrier (0 is exact). What the carrier counted before (the factory's
    broker connection on the seed SIM) is the factory's, metered by no agent."""
    pending = journal_pending(system)
    before = system.facts["carrier_before_start"]
    diff = {}
    for iccid, row in lab_json("usage").items():
        p = pending.get(iccid, {"up": 0, "down": 0})
        b = before.get(iccid, {}).get("carrier", {"up": 0, "down": 0})
        diff[iccid] = {d: row["cloud"][d] + p[d] - (row["carrier"][d] - b[d]) for d in ("up", "down")}
    return diff


def assert_exact(diff: dict[str, dict[str, int]], system: System, what: str) -> None:
    """Every pool SIM exact. The seed SIM within FACTORY_STRAGGLER_BYTES: packets of the
    factory's own connection on it (provisioning's second pass) that reach the carrier only
    when the agent brings the seed's context up again with the same address, before its
    meter's first sample (docs/system-test.md)."""
    seed = json.loads((rig.LAB_DIR / "pool.json").read_text())["seed"]["iccid"]
    pool = {iccid: d for iccid, d in diff.items() if iccid != seed}
    assert all(d == {"up": 0, "down": 0} for d in pool.values()), f"{what}: {pool}"
    seed_diff = diff.get(seed, {"up": 0, "down": 0})
    assert all(-FACTORY_STRAGGLER_BYTES <= v <= 0 for v in seed_diff.values()), f"{what}: seed SIM {seed_diff}"


def restarted(system: System, before: int, what: str) -> None:
    wait_until(f"{what}: systemd restarting the agent", lambda: int(system.unit("NRestarts")["NRestarts"]) > before,
               WATCHDOG_S + RESTART_S + 30)
    wait_until(f"{what}: the restarted agent serving", system.serving, SERVE_TIMEOUT_S)


def identity(system: System) -> dict[str, Any]:
    """``pocket-agent identity --json``, without the one field that moves by itself (days left)."""
    out: dict[str, Any] = json.loads(system.sh("pocket-agent identity --json", "pocket-agent identity --json"))
    (out.get("cert") or {}).pop("days_left", None)
    return out


# ---- the journey ------------------------------------------------------------------------
def test_boots_with_systemd_as_pid_1(system: System) -> None:
    assert system.sh("readlink /proc/1/exe", "PID 1").strip() == "/usr/lib/systemd/systemd"
    state = system.container.run("systemctl is-system-running --wait", timeout=60).stdout.strip()
    assert state == "running", f"boot: the system is {state!r}:\n" + system.sh(
        "systemctl --failed --no-pager", "failed units")
    step(system, "boot")


def test_apt_installs_the_package_with_debians_dependencies(system: System) -> None:
    system.require("boot")
    out = system.install()
    assert "0 upgraded, 1 newly installed" in out, out
    versions = system.sh("dpkg-query -W -f='${Package} ${Version}\\n' python3-cryptography python3-paho-mqtt "
                         "python3-pyroute2 python3-serial", "dependency versions")
    assert "python3-cryptography 38.0.4" in versions and "python3-paho-mqtt 1.6.1" in versions, versions
    origin = system.sh("python3 -c 'import cryptography, paho.mqtt, serial, pyroute2; "
                       "print(cryptography.__file__, paho.mqtt.__file__, serial.__file__, pyroute2.__file__)'",
                       "where the dependencies come from")
    assert origin.count("/usr/lib/python3/dist-packages/") == 4, f"not Debian's packages: {origin}"
    assert system.sh("systemctl is-enabled pocket-agent", "unit enabled by the package").strip() == "enabled"
    # Unprovisioned: the unit's condition keeps it idle, neither started nor failed.
    props = system.unit("ActiveState", "ConditionResult")
    assert props == {"ActiveState": "inactive", "ConditionResult": "no"}, props
    step(system, "install")


def test_factory_first_pass_offline(system: System) -> None:
    system.require("install")
    record = system.provision("--offline")
    assert record["status"] == "provisioned" and record["csr"].startswith("-----BEGIN CERTIFICATE REQUEST")
    assert all(c["ok"] for c in record["selftest"]), record["selftest"]
    system.facts["record"] = record
    system.enrol(record)  # step 5: the factory database hands the record to the platform
    step(system, "first pass")


def test_factory_signs_and_second_pass_installs_the_certificate(system: System) -> None:
    system.require("first pass")
    system.sign(system.facts["record"]["csr"], days=CERT_DAYS)
    record = system.provision("--cert cert.pem")
    assert record["cert"] and record["tls_key_sha256"] == system.facts["record"]["tls_key_sha256"]
    checks = {c["name"]: c for c in record["selftest"]}
    assert checks["broker_connect"]["ok"], checks["broker_connect"]  # over the seed SIM's data path
    system.facts["record"] = record
    step(system, "second pass")


def test_service_starts_and_is_ready_only_when_serving(system: System) -> None:
    system.require("second pass")
    system.facts["carrier_before_start"] = lab_json("usage")
    took = system.start()
    # Type=notify: `systemctl start` returns when the agent said READY=1. At that moment it
    # must already serve: the STATUS= it sent with READY names the assigned SIM, and that
    # SIM (not the seed) has its data context up at the carrier.
    props = system.unit("ActiveState", "SubState", "StatusText")
    assert props["ActiveState"] == "active" and props["SubState"] == "running", props
    match = re.fullmatch(r"serving on SIM (\d+)", props["StatusText"])
    assert match, f"READY=1 came with STATUS={props['StatusText']!r}, not 'serving on SIM <iccid>'"
    iccid = match.group(1)
    seed = json.loads((rig.LAB_DIR / "pool.json").read_text())["seed"]["iccid"]
    carrier = json.loads((rig.LAB_DIR / "carrier.json").read_text())
    assert iccid != seed, "READY=1 on the seed SIM: the agent must serve on its assigned SIM"
    assert iccid in json.dumps(carrier), f"{iccid} has no data context at the carrier: {carrier}"
    status = system.sh("systemctl status pocket-agent --no-pager", "systemctl status")
    assert f"Status: \"serving on SIM {iccid}\"" in status, status
    ready_s = system.start_to_ready()
    system.facts["timings"]["start_to_ready_s"] = ready_s
    system.facts["iccid"] = iccid
    print(f"\nsystemctl start -> READY=1: {ready_s:.1f} s (systemctl returned after {took:.1f} s)")
    step(system, "serving")


def test_cloud_sees_health_and_usage(system: System) -> None:
    system.require("serving")
    lan_download(system, DOWNLOAD_BYTES)
    wait_until("the cloud receiving the device's health", lambda: cloud_events("health", system.device_id), 90)
    # The packaged configuration flushes and reports once a minute; the platform may ask for
    # a report at once (the "report" command), which is what it does here.
    system.cloud_command("report")
    iccid = system.facts["iccid"]
    wait_until("the cloud ingesting usage of the serving SIM after its report command",
               lambda: lab_json("usage").get(iccid, {}).get("cloud", {}).get("down", 0) >= DOWNLOAD_BYTES, 60)
    step(system, "cloud")


def test_certificate_renewed_inside_the_running_service(system: System) -> None:
    system.require("serving")
    first = system.facts["record"]
    log = wait_until("the service renewing its 29-day certificate over MQTT",
                     lambda: "certificate renewal: renewed" in (text := system.journal()) and text,
                     RENEWAL_TIMEOUT_S)
    assert "is current, the old identity kept as previous" in log, log[-2000:]
    now = identity(system)
    assert now["device_id"] == system.device_id and now["generation"] > first["generation"], now
    assert now["tls_key_sha256"] != first["tls_key_sha256"], "renewal kept the old key (a new one by default)"
    assert system.serving(), "the switch interrupted the service"
    # The old certificate is refused by nothing: the broker still accepts it (TLS only, so
    # the live session is not touched), from the broker's own namespace (no SIM billed).
    keys = system.container.path("/etc/pocket-agent/keys")
    old = keys / f"gen-{first['generation']:06d}"
    probe = ("import sys; from pathlib import Path; from agent.cloud.connect_once import tls_accepts;"
             "r = tls_accepts(sys.argv[1], int(sys.argv[2]), ca=Path(sys.argv[3]), cert=Path(sys.argv[4]),"
             " key=Path(sys.argv[5])); print(r.ok, r.detail)")
    host, port = system.status["broker"]["url"].removeprefix("mqtts://").split(":")
    done = subprocess.run(["ip", "netns", "exec", system.status["namespaces"]["internet"], sys.executable, "-c", probe,
                           host, port, str(old / "ca.pem"), str(old / "cert.pem"), str(old / "tls.key")],
                          capture_output=True, text=True, timeout=60, check=False, cwd=rig.REPO)
    assert done.stdout.startswith("True"), f"the old certificate is refused: {done.stdout}{done.stderr}"
    system.facts["renewed"] = now
    step(system, "renewal")


def test_console_on_its_serial_port(system: System) -> None:
    from tests.console.rig import Terminal

    system.require("serving")
    term = Terminal(system.status["console"]["pty"])  # the technician's end of the lab's cable
    try:
        term.send("\r")
        term.expect(PROMPT, timeout=15)
        out = term.command("status", until=PROMPT).decode()
        assert system.facts["iccid"] in out, out
    finally:
        term.close()
    assert f"technician console on {system.profile.console_port}" in system.journal()
    step(system, "console")


def test_memory_under_the_unit(system: System) -> None:
    system.require("serving")
    props = system.unit("MemoryHigh", "MemoryMax", "ControlGroup", "MainPID")
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", system.sh(f"cat /proc/{props['MainPID']}/status", "RSS"))[1])  # type: ignore[index]
    events = system.container.path(f"/sys/fs/cgroup{props['ControlGroup']}/memory.events")
    high = int(props["MemoryHigh"])
    system.facts["timings"]["serving_rss_mb"] = rss_kb / 1024
    if events.exists():  # cgroup v2 with the memory controller delegated: the real promise
        counts = dict(line.split() for line in events.read_text().splitlines())
        print(f"\nserving RSS {rss_kb / 1024:.1f} MB; memory.events {counts}")
        assert counts["high"] == "0" and counts["max"] == "0" and counts["oom_kill"] == "0", counts
    else:  # this machine: hybrid cgroups, the memory controller is v1 and not the container's
        print(f"\nserving RSS {rss_kb / 1024:.1f} MB against MemoryHigh={high / 2**20:.0f}M "
              "(memory.events unavailable: no cgroup v2 memory controller in this container)")
        assert rss_kb * 1024 < high, f"serving RSS {rss_kb / 1024:.1f} MB is over MemoryHigh={high / 2**20:.0f}M"
    step(system, "memory")


def test_hung_agent_is_killed_by_the_watchdog_and_comes_back(system: System) -> None:
    system.require("serving")
    before = int(system.unit("NRestarts")["NRestarts"])
    pid = system.main_pid()
    system.sh(f"kill -STOP {pid}", "SIGSTOP the agent")
    t0 = time.monotonic()
    restarted(system, before, "watchdog")
    assert system.main_pid() != pid
    log = system.sh("journalctl --no-pager -u pocket-agent -o cat", "the unit's journal")
    assert "Watchdog timeout" in log, log[-3000:]  # systemd's own words: killed for the watchdog
    if "renewal" in system.passed:  # the restarted agent runs on the renewed identity
        current = system.container.path("/etc/pocket-agent/keys/current").resolve().name
        assert current == f"gen-{system.facts['renewed']['generation']:06d}", current
        assert config(system)["cloud"]["cert"].startswith("/etc/pocket-agent/keys/current/")
    print(f"\nSIGSTOP -> killed by the watchdog and serving again in {time.monotonic() - t0:.0f} s")
    step(system, "watchdog")


def test_kill_9_is_restarted(system: System) -> None:
    system.require("serving")
    wait_until("serving before the kill", system.serving, SERVE_TIMEOUT_S)
    lan_download(system, DOWNLOAD_BYTES)
    before = int(system.unit("NRestarts")["NRestarts"])
    system.sh(f"kill -9 {system.main_pid()}", "kill -9 the agent")
    restarted(system, before, "kill -9")
    step(system, "kill -9")


def test_stop_flushes_the_journal_and_usage_is_exact(system: System) -> None:
    system.require("serving")
    wait_until("serving before the stop", system.serving, SERVE_TIMEOUT_S)
    lan_download(system, DOWNLOAD_BYTES)
    t0 = time.monotonic()
    system.sh("systemctl stop pocket-agent", "systemctl stop pocket-agent")
    stop_s = time.monotonic() - t0
    props = system.unit("ActiveState", "Result", "ExecMainStatus")
    assert props == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, props
    diff = usage_difference(system)
    off = {iccid: d for iccid, d in diff.items() if d != {"up": 0, "down": 0}}
    print(f"\nsystemctl stop took {stop_s:.1f} s; cloud + journal - carrier since the first start (the watchdog "
          f"kill and kill -9 included): {len(diff) - len(off)} of {len(diff)} SIMs exact, {off or 'no difference'}")
    assert_exact(diff, system, "usage after systemctl stop")
    step(system, "exact")


def test_bad_config_exits_78_and_is_not_restarted(system: System) -> None:
    system.require("serving")
    path = "/etc/pocket-agent/agent.toml"
    good = system.container.path(path).read_bytes()
    system.sh("systemctl stop pocket-agent", "stop before the bad config")
    try:
        system.sh(f"printf '\\n[usage]\\nreport_interval_s = \"often\"\\n' >> {path}", "an operator's typo")
        system.container.run("systemctl start pocket-agent", timeout=60)
        wait_until("the unit failed", lambda: system.unit("ActiveState")["ActiveState"] == "failed", 60)
        props = system.unit("Result", "ExecMainStatus", "NRestarts")
        assert props["ExecMainStatus"] == "78", props
        time.sleep(RESTART_S + 2)  # a restart would come RestartSec= after the exit: none may
        props = system.unit("ActiveState", "NRestarts")
        assert props == {"ActiveState": "failed", "NRestarts": "0"}, props  # (a manual start resets it)
        status = system.container.run("systemctl status pocket-agent --no-pager -n 20").stdout
        assert "status=78/CONFIG" in status, status
        assert "report_interval_s" in status, f"systemctl status does not say why:\n{status}"
    finally:
        system.container.path(path).write_bytes(good)
        system.sh("systemctl reset-failed pocket-agent", "reset-failed")
    step(system, "exit 78")


def test_journal_holds_no_secret_after_swaps(system: System) -> None:
    system.require("serving")
    system.start()
    for n in range(1, 3):
        lab("swap")
        wait_until(f"commanded swap {n}'s result at the cloud", _swaps_seen(system, n), SWAP_TIMEOUT_S)
    wait_until("serving after the swaps", system.serving, SERVE_TIMEOUT_S)
    # systemctl status names the SIM the last swap left the router on, not the one READY=1 named
    last = cloud_events("swap", system.device_id)[-1]["body"]["body"]["data"]
    on = last["to_iccid"] if last.get("ok") is True else last["from_iccid"]
    wait_until(f"systemctl status naming SIM {on} after the swaps",
               lambda: system.unit("StatusText")["StatusText"] == f"serving on SIM {on}",
               STATUS_MIN_INTERVAL_S + STATUS_EVERY + 5)
    journal = system.container.run("journalctl --no-pager -o export", timeout=60).stdout.encode()
    assert b"pocket-agent" in journal
    found = [name for name, form in _secrets(system) if form in journal]
    assert not found, f"the journal holds secret bytes: {found[:10]}"
    step(system, "no secrets")


UPDATE_S = 150.0
"""Offer to committed: about 13 s on the lab (tests/bench/bench_update.py); the unit's start
path (preflight, the package's choice, the exec) on a loaded machine adds seconds."""
ROLLBACK_S = 180.0
"""A crashing release is rolled back as soon as it exits; then the previous release starts."""


def _release(version: str, rollout: int, edit: Any = None) -> tuple[Path, Path]:
    """A release cut from this tree (packaging/release.py), signed with the lab's release key."""
    import importlib.util

    from cryptography.hazmat.primitives import serialization
    spec = importlib.util.spec_from_file_location("pocket_release_system", rig.REPO / "packaging" / "release.py")
    assert spec and spec.loader
    release = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(release)
    key = serialization.load_pem_private_key((rig.LAB_DIR / "pki" / "release.key").read_bytes(), None)
    return release.cut(key, rig.LAB_DIR / "releases" / version, version=version, rollout=rollout,  # type: ignore
                       build=f"system {version}", edit=edit)


def _agent_status(system: System) -> dict[str, Any]:
    try:
        return json.loads(system.container.path("/run/pocket-agent/status.json").read_text())  # type: ignore
    except (OSError, ValueError):
        return {}


def _update_phase(system: System) -> str:
    path = system.container.path(config(system)["state_dir"]) / "update" / "state.json"
    try:
        return str(json.loads(path.read_text()).get("phase"))
    except (OSError, ValueError):
        return "idle"


def _running(system: System, version: str) -> bool:
    status = _agent_status(system)
    return str(status.get("version", "")).startswith(version + " ") and status.get("state") == "serving"


def test_an_update_commits_and_a_crashing_one_rolls_back_under_systemd(system: System) -> None:
    """Issue 26 under the real service manager: the release key pinned, a good release
    offered by the cloud is fetched, installed beside the package and committed with the
    unit's main process kept (an exec, no restart), its watchdog pings relayed through the
    trial guard (NotifyAccess=main); a release that crashes at start is rolled back to it."""
    system.require("serving")
    system.container.path("/etc/pocket-agent/release.pub").write_bytes((rig.LAB_DIR / "pki" / "release.pub").read_bytes())
    system.sh("chmod 0644 /etc/pocket-agent/release.pub && printf '\\n[update]\\nrelease_key = "
              "\"/etc/pocket-agent/release.pub\"\\ntrial_s = 90\\n' >> /etc/pocket-agent/agent.toml",
              "pin the release key")
    system.sh("systemctl restart pocket-agent", "restart with the release key pinned", timeout=SERVE_TIMEOUT_S + 30)
    wait_until("serving with updates on", system.serving, SERVE_TIMEOUT_S)
    pid, restarts = system.main_pid(), int(system.unit("NRestarts")["NRestarts"])
    rollout = int(time.time())
    good = _release("0.2.0", rollout)
    lab("update", "--artifact", str(good[0]), "--manifest", str(good[1]))
    wait_until("0.2.0 committed and serving", lambda: _running(system, "0.2.0")
               and _update_phase(system) in ("committed", "idle"), UPDATE_S)
    committed = system.unit("NRestarts", "MainPID")
    time.sleep(WATCHDOG_S + 5)  # long enough for the watchdog to kill a release whose pings were lost
    after = system.unit("NRestarts", "MainPID")
    if int(after["NRestarts"]) != restarts or system.main_pid() != pid:
        print(system.sh("journalctl --no-pager -n 300 | grep -v 'agent.health\\|agent.core.health'", "the journal"))
    assert int(after["NRestarts"]) == restarts and system.main_pid() == pid, (restarts, pid, committed, after)
    assert system.serving() and _running(system, "0.2.0")
    crashing = _release("0.3.0", rollout + 1, edit=lambda files: {**files, "agent/faces/cli/run.py": files[
        "agent/faces/cli/run.py"].replace(b"def main(args: argparse.Namespace) -> int:\n",
                                          b"def main(args: argparse.Namespace) -> int:\n"
                                          b"    raise RuntimeError('system test: broken release')\n", 1)})
    lab("update", "--artifact", str(crashing[0]), "--manifest", str(crashing[1]))
    wait_until("0.3.0 rolled back", lambda: _update_phase(system) in ("rolled_back", "idle")
               and "rolled back" in system.journal(), ROLLBACK_S)
    wait_until("serving on 0.2.0 again", lambda: _running(system, "0.2.0") and system.serving(), ROLLBACK_S)
    def reported() -> bool:  # sent by 0.2.0 once its link is up again (the pacing's boot spread)
        events = [e["body"]["body"]["data"] for e in cloud_events("update", system.device_id)]
        return any(e["status"] == "rolled_back" and e["version"] == "0.3.0"
                   and "broken release" in "".join(e.get("log_tail", [])) for e in events)
    wait_until("the rollback reported with the release's last log lines", reported, UPDATE_S)
    assert int(system.unit("NRestarts")["NRestarts"]) == restarts  # the guard did it, not systemd
    step(system, "update")


def test_a_modem_gone_for_minutes_never_makes_the_unit_give_up(system: System) -> None:
    """The modem answers nothing for FLAP_S (``pocket-lab fault hang``): the agent gives up
    after its recovery ladder, systemd restarts it with the agent's growing delay
    (StartLimitIntervalSec=0: no start limit), the unit never rests in ``failed``, and it
    serves again within one delay of the modem's return (tests/system/flap.py; 15 minutes
    of a flapping modem are ``make soak``'s, tests/bench/soak_system.py)."""
    system.require("serving")
    wait_until("serving before the modem hangs", system.serving, SERVE_TIMEOUT_S)
    seen = flap.ride(system, [(FLAP_S, 0.0)], serve_within=FLAP_S)
    print("\n" + seen.describe(FLAP_S))
    assert seen.restarts >= 1, f"expected a restart while the modem was gone: {seen}"
    assert seen.serving_again_s is not None and seen.serving_again_s <= max(seen.delays) + flap.SERVE_MARGIN_S, \
        f"serving {seen.serving_again_s:.0f} s after the modem's return (delays {seen.delays})"
    step(system, "flap")


def test_upgrade_keeps_identity_journal_and_outbox(system: System) -> None:
    system.require("serving")
    before_id = identity(system)
    state = system.container.path(config(system)["state_dir"])
    kept = ("usage.journal", "cloud/events.outbox")
    before = {name: (state / name).stat().st_size for name in kept}
    last_seq = max(e["body"]["seq"] for e in cloud_events("usage"))
    newer = rig.next_version(system.deb, system.factory, "2")
    out = system.install(f"./{newer.name}")
    assert "1 upgraded" in out, out
    assert identity(system) == before_id
    after = {name: (state / name).stat().st_size for name in kept if (state / name).exists()}
    assert set(after) == set(kept) and after["usage.journal"] >= before["usage.journal"], (before, after)
    wait_until("serving after the upgrade (postinst restarts the unit)", system.serving, SERVE_TIMEOUT_S)
    # It resumes where it stopped: the restarted agent's journal continues the sequence the
    # cloud has (a fresh journal would start again at 1, and the cloud would drop its records).
    starts = re.findall(r"usage journal \S+: \d+ pending, next seq (\d+)", system.journal())
    assert starts and int(starts[-1]) > last_seq, f"next seq {starts[-1:]} after the cloud's {last_seq}"
    step(system, "upgrade")


def test_remove_keeps_identity_and_state_purge_removes_them(system: System) -> None:
    system.require("serving")
    state_dir = config(system)["state_dir"]
    system.sh("apt remove -y pocket-agent", "apt remove pocket-agent")
    assert system.unit("ActiveState")["ActiveState"] == "inactive"
    assert system.container.path("/etc/pocket-agent/keys/current/tls.key").exists(), "remove lost the identity"
    assert system.container.path(state_dir).joinpath("usage.journal").exists(), "remove lost the state"
    diff = usage_difference(system)
    assert_exact(diff, system, "usage after apt remove (prerm stops the service)")
    system.sh("apt purge -y pocket-agent", "apt purge pocket-agent")
    assert not system.container.path("/etc/pocket-agent").exists(), "purge left /etc/pocket-agent"
    assert not system.container.path(state_dir).exists(), f"purge left {state_dir}"
    step(system, "purge")


# ---- helpers ------------------------------------------------------------------------------
def _swaps_seen(system: System, n: int) -> Callable[[], bool]:
    return lambda: len(cloud_events("swap", system.device_id)) >= n


def _secrets(system: System) -> list[tuple[str, bytes]]:
    """Every form of every secret the box holds: the pool's Ki and OPc (hex both cases,
    base64, raw) and every private key of every generation (PEM body lines, the raw scalar
    in hex and base64)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, x25519

    forms: list[tuple[str, bytes]] = []
    pool = json.loads((rig.LAB_DIR / "pool.json").read_text())
    for sim in [pool["seed"], *pool["sims"]]:
        for name in ("ki", "opc"):
            raw = bytes.fromhex(sim[name])
            forms += [(f"{name} of {sim['iccid']}", f) for f in
                      (sim[name].lower().encode(), sim[name].upper().encode(), base64.b64encode(raw), raw)]
    keys = system.container.path("/etc/pocket-agent/keys")
    for key_file in sorted(keys.glob("gen-*/*.key")):
        pem = key_file.read_bytes()
        body = [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
        forms += [(f"{key_file.parent.name}/{key_file.name} PEM line", line) for line in body if len(line) >= 16]
        key = serialization.load_pem_private_key(pem, password=None)
        if isinstance(key, x25519.X25519PrivateKey):
            raw = key.private_bytes_raw()
        else:
            assert isinstance(key, ec.EllipticCurvePrivateKey), f"{key_file}: unexpected key type"
            raw = key.private_numbers().private_value.to_bytes(32, "big")
        forms += [(f"{key_file.parent.name}/{key_file.name} raw", f) for f in (raw.hex().encode(), base64.b64encode(raw))]
    assert any("tls.key" in name for name, _ in forms), "no private key found to search for"
    return forms
