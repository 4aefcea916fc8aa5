"""``pocket-lab up|down|status|throttle|traffic|usage|agent``: the lab's life cycle.

This command line is a contract (docs/virtual-board.md): tests outside the project and
the cloud team drive it. Everything the lab makes lives under one directory
(``$POCKET_LAB_DIR``, default ``/run/pocket-lab``) and in the namespaces named by
``LabLayout``; ``down`` removes all of it and is harmless to run twice.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from agent import store
from agent.boardprofile import load_profile
from board.virtual.cloud import broker, pki
from board.virtual.cloud import pool as pool_mod
from board.virtual.cloud import reference as cloud_mod
from board.virtual.cloud.plans import PLANS as TABLE_PLANS
from board.virtual.lab.seedsim import seal_seed
from board.virtual.network import carrier as carrier_mod
from board.virtual.network import carriers as carriers_mod
from board.virtual.network import faults, labclock, netns, sharedsims
from board.virtual.network.carrier import CarrierNetwork, LabLayout

LAB_DIR = Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab"))
DEVICE_ID = "rtr-000001"
SPARE_DEVICE_ID = "rtr-000002"
BROKER_PORT = 8883
"""IANA's MQTT-over-TLS port."""
POOL_SIZE = 40
"""Enough SIMs to swap many times over (tests run 20 back-to-back swaps; the lab also
marks throttled SIMs, which are never assigned again)."""
POOL_SEED = 20200220
"""Fixed seed: the same lab SIMs every time (the incident began in February 2020)."""
UP_TIMEOUT = 120.0
"""Seconds ``up`` waits for the agent to serve: attach, cloud, assignment, swap to it.
The modelled latencies add up to about 20 s; six times that before calling it failed."""
UPDATE_TRIAL_S = 60
"""The lab agent's health-gate bound for a new version ([update] trial_s): a restart resumes
the SIM without touching the radio and reports within seconds; a minute keeps the lab's
rollback tests short while leaving a loaded machine room (docs/update.md)."""
STOP_GRACE = 15.0
"""Seconds a process gets after SIGTERM before SIGKILL (the agent drains to the cloud)."""

LAYOUT = LabLayout(prefix=os.environ.get("POCKET_LAB_PREFIX", "pw"))
"""Namespace prefix from ``$POCKET_LAB_PREFIX`` (default ``pw``), so a second lab (a helper's,
or a test run beside a demo) can live on the same machine under other names."""
TIME_SCALE_ENV = "POCKET_LAB_TIME_SCALE"
"""Where ``up --time-scale`` takes its default from, so a test run can speed up every lab it
brings up (tests/parts.py) without each test module knowing."""
MIN_TIME_SCALE = 0.05
"""The fastest modem clock ``up`` accepts: a swap's ~6 modelled seconds become 0.3 s, still
a hundred times the host's scheduling jitter (ms), so the order of the modem's events and
the agent's reactions is the real one. Faster than that, and a loaded 2-core machine
reorders them."""

BOARD_ENV = "BOARD"
"""Where ``up --board`` takes its default from (``BOARD=remote-sim make run``)."""
BOARDS = {"virtual": False, "remote-sim": True}
"""The lab's boards (board/profiles/<name>.toml) and whether the virtual modem runs its
remote-SIM personality (docs/remote-sim.md): then the agent serves the SIM over AT."""
SEED_FILE = "seed-sim.sealed"
"""The remote-SIM board's sealed seed SIM, in the agent's directory (board/virtual/lab/seedsim.py)."""

PROCESSES = ("agent", "cloud", "broker", "services", "labd", "traffic")
"""Stopped in this order by ``down``: consumers first, the modem last."""


class LabError(RuntimeError):
    """The lab could not do what was asked; the message says why."""


# ---- small helpers ----------------------------------------------------------------
SOURCE_ROOT = Path(__file__).resolve().parents[3]
"""The tree this command runs from. The lab's processes start in ``/`` and must run the
same code: without it an editable install (``pip install -e``) resolves ``agent`` and
``board`` to the tree it was installed from, so a lab started from a second worktree
would run the first one's agent and carrier."""


def _python() -> str:
    return sys.executable


def _child_pythonpath() -> str:
    return os.pathsep.join([str(SOURCE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def _pidfile(name: str) -> Path:
    return LAB_DIR / "pids" / f"{name}.pid"


def _pid(name: str) -> int | None:
    try:
        pid = int(_pidfile(name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _spawn(name: str, argv: list[str], *, ns: str | None = None, env: dict[str, str] | None = None) -> int:
    """Start a detached process (own session), log to LAB_DIR/logs/NAME.log, record its pid."""
    (LAB_DIR / "logs").mkdir(parents=True, exist_ok=True)
    (LAB_DIR / "pids").mkdir(parents=True, exist_ok=True)
    cmd = ([netns.tool("ip"), "netns", "exec", ns] if ns else []) + argv
    log = open(LAB_DIR / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", POCKET_LAB_DIR=str(LAB_DIR), PYTHONPATH=_child_pythonpath())
    full_env.update(env or {})
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=full_env, cwd="/")
    log.close()
    _pidfile(name).write_text(str(proc.pid))
    return proc.pid


def _stop(name: str, sig: int = signal.SIGTERM) -> bool:
    pid = _pid(name)
    if pid is None:
        return False
    os.kill(pid, sig)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    _pidfile(name).unlink(missing_ok=True)
    return True


def _wait_for(what: str, check: Any, timeout: float, log: str | None = None) -> Any:
    """Poll ``check`` until it returns a truthy value (external processes: no event to await)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    tail = ""
    if log and (LAB_DIR / "logs" / log).exists():
        tail = "\n" + "\n".join((LAB_DIR / "logs" / log).read_text(errors="replace").splitlines()[-15:])
    raise LabError(f"{what} did not happen within {timeout:.0f} s{tail}")


def _tls_ready(host: str, port: int, ns: str) -> bool:
    probe = f"import socket;socket.create_connection(('{host}',{port}),1).close()"
    return netns.run([_python(), "-c", probe], netns=ns, check=False).returncode == 0


# ---- up ---------------------------------------------------------------------------
def time_scale(args: argparse.Namespace) -> float:
    """The virtual modem's time scale for this lab: ``--time-scale``, else the environment's
    ``POCKET_LAB_TIME_SCALE``, else 1.0 (real modem time: what benchmarks and ``make run`` use)."""
    raw = getattr(args, "time_scale", None) or os.environ.get(TIME_SCALE_ENV) or "1"
    try:
        scale = float(raw)
    except ValueError:
        raise LabError(f"time scale {raw!r} is not a number") from None
    if not MIN_TIME_SCALE <= scale <= 1.0:
        raise LabError(f"time scale {scale:g} is outside [{MIN_TIME_SCALE:g}, 1]")
    return scale


def board_name(args: argparse.Namespace) -> str:
    """The lab's board: ``--board``, else ``$BOARD``, else the vSIM board ``virtual``."""
    name = getattr(args, "board", None) or os.environ.get(BOARD_ENV) or "virtual"
    if name not in BOARDS:
        raise LabError(f"board {name!r} is not one of the lab's: {', '.join(BOARDS)}")
    return name


def up(args: argparse.Namespace) -> int:
    board = board_name(args)
    if os.geteuid() != 0:
        raise LabError("pocket-lab up needs root (network namespaces, tc, nftables)")
    if LAB_DIR.exists() and any(_pid(p) for p in PROCESSES):
        raise LabError(f"a lab is already up under {LAB_DIR}; run `pocket-lab down` first")
    down(args, quiet=True)
    LAB_DIR.mkdir(parents=True, exist_ok=True)
    plans = list(TABLE_PLANS.values()) if getattr(args, "plans", "lab") == "table" else None
    count = int(getattr(args, "carriers", None) or 1)
    if not 1 <= count <= carriers_mod.MAX_CARRIERS:
        raise LabError(f"--carriers must be 1 to {carriers_mod.MAX_CARRIERS}")
    pool = pool_mod.make_pool(POOL_SIZE, POOL_SEED, plans=plans, carriers=count if count > 1 else None)
    pool_mod.save_pool(LAB_DIR / "pool.json", pool)
    lab_pki = pki.create_lab_pki(LAB_DIR / "pki", [DEVICE_ID, SPARE_DEVICE_ID], [LAYOUT.internet_addr])
    sites = carriers_mod.sites(LAYOUT, pool, LAB_DIR)
    # The first carrier builds the lab as it always was; each further one adds its core (issue 23).
    CarrierNetwork(LAYOUT, pool, LAB_DIR / "carrier.json",
                   plmns=frozenset({sites[0].plmn}) if sites else None).setup()
    for site in sites[1:]:
        carriers_mod.setup_extra_core(site, pool)
    _spawn("services", [_python(), "-m", "board.virtual.network.services", "--host", LAYOUT.internet_addr], ns=LAYOUT.inet)
    broker_conf = broker.write_config(LAB_DIR / "broker", lab_pki, LAYOUT.internet_addr, BROKER_PORT)
    _spawn("broker", [netns.tool("mosquitto"), "-c", str(broker_conf)], ns=LAYOUT.inet)
    _wait_for("the broker listening", lambda: _tls_ready(LAYOUT.internet_addr, BROKER_PORT, LAYOUT.inet), 15, "broker.log")
    _spawn("cloud", [_python(), "-m", "board.virtual.lab", "cloud", *cloud_args(lab_pki)], ns=LAYOUT.inet)
    _spawn("labd", [_python(), "-m", "board.virtual.lab.daemon", "--lab-dir", str(LAB_DIR), "--prefix", LAYOUT.prefix,
                    "--time-scale", repr(time_scale(args)), *(["--remote-sim"] if BOARDS[board] else []),
                    *(["--capture-at", str(args.capture_at)] if getattr(args, "capture_at", None) else [])])
    pty = _wait_for("the virtual modem's pty", lambda: (store.read_json(LAB_DIR / "modem.json") or {}).get("pty"),
                    15, "labd.log")
    write_agent_config(lab_pki, pty, board, pool)
    faults.mount_state_dir(LAB_DIR / "agent" / "state")  # issue 9: a small tmpfs, so "full" is real
    store.atomic_write_json(LAB_DIR / "lab.json", build_status(lab_pki, time_scale(args), board), mode=store.PUBLIC_MODE)
    if getattr(args, "no_agent", False):
        # The device's place is left empty for an agent started elsewhere (the system test's
        # container joins the device namespace and the modem's pty): everything else is up.
        what = f"lab up without its agent: device {DEVICE_ID}'s place is free"
    else:
        start_agent()
        what = f"lab up: device {DEVICE_ID} serving"
    status = status_dict()
    print(json.dumps(status, indent=2) if getattr(args, "json", False) else f"{what}; "
          f"`pocket-lab status --json` for details, logs in {LAB_DIR / 'logs'}")
    return 0


def cloud_args(lab_pki: Any) -> list[str]:
    return ["--state-dir", str(LAB_DIR / "cloud"), "--broker", f"{LAYOUT.internet_addr}:{BROKER_PORT}",
            "--ca", str(lab_pki.ca_cert), "--cert", str(lab_pki.cloud_cert), "--key", str(lab_pki.cloud_key),
            "--pool", str(LAB_DIR / "pool.json"), "--platform-key", str(lab_pki.platform_key),
            "--device-keys", str(lab_pki.devices_dir),
            "--ca-key", str(lab_pki.ca_key),  # signs certificate renewals (docs/protocol.md section 7)
            "--lab-dir", str(LAB_DIR)]  # plan windows on lab time (pocket-lab clock)


def write_agent_config(lab_pki: Any, pty: str, board: str = "virtual", pool: dict[str, Any] | None = None) -> Path:
    """The agent's config file for the lab device (format: docs/configuration.md). On the
    remote-SIM board the seed SIM is sealed to the device first, as the factory would."""
    dev = lab_pki.devices[DEVICE_ID]
    agent_dir = LAB_DIR / "agent"
    agent_dir.mkdir(parents=True, exist_ok=True)
    profile = Path(__file__).resolve().parents[2] / "profiles" / f"{board}.toml"
    seed_line = ""
    if BOARDS[board]:
        assert pool is not None
        seed = seal_seed(pool["seed"], device_id=DEVICE_ID, sealing_pub=dev.sealing_pub,
                         platform_key=lab_pki.platform_key, path=agent_dir / SEED_FILE)
        seed_line = f'seed_sim = "{seed}"\n'
    text = f"""# Written by pocket-lab up
device_id = "{DEVICE_ID}"
state_dir = "{agent_dir / 'state'}"
board_profile = "{profile}"
status_file = "{agent_dir / 'status.json'}"

[modem]
port = "{LAB_DIR / faults.PORT_LINK_NAME}"

[cloud]
host = "{LAYOUT.internet_addr}"
port = {BROKER_PORT}
ca = "{lab_pki.ca_cert}"
cert = "{dev.cert}"
key = "{dev.key}"
sealing_key = "{dev.sealing_key}"
platform_key = "{lab_pki.platform_pub}"
{seed_line}
[usage]
report_interval_s = 10
flush_interval_s = 10

[health]
reflector = "{LAYOUT.internet_addr}:7"
probe = "{LAYOUT.internet_addr}:9000"
resolv_file = "{agent_dir / 'resolv.conf'}"

[console]
ports = ["{LAB_DIR / 'console-device.pty'}"]

[update]
release_key = "{lab_pki.release_pub}"
trial_s = {UPDATE_TRIAL_S}
"""
    path = agent_dir / "agent.toml"
    store.atomic_write(path, text.encode())
    return path


def _agent_state() -> str | None:
    return (store.read_json(LAB_DIR / "agent" / "status.json") or {}).get("state")


def start_agent() -> None:
    (LAB_DIR / "agent" / "status.json").unlink(missing_ok=True)
    _spawn("agent", [_python(), "-m", "agent", "run", "--config", str(LAB_DIR / "agent" / "agent.toml")],
           ns=LAYOUT.dev, env={"POCKET_AGENT_CLOCK_OFFSET_FILE": str(LAB_DIR / "agent" / faults.CLOCK_OFFSET_NAME)})
    _wait_for("the agent serving", lambda: _agent_state() == "serving" or (_pid("agent") is None and "exited"),
              UP_TIMEOUT, "agent.log")
    if _agent_state() != "serving":
        tail = "\n".join((LAB_DIR / "logs" / "agent.log").read_text(errors="replace").splitlines()[-15:])
        raise LabError(f"the agent exited before serving:\n{tail}")


# ---- down -------------------------------------------------------------------------
def down(args: argparse.Namespace, quiet: bool = False) -> int:
    for name in PROCESSES:
        _stop(name)
    faults.unmount_under(LAB_DIR)  # issue 9: the state tmpfs and any read-only bind
    for name in (*LAYOUT.all_namespaces, *carriers_mod.extra_namespaces(LAYOUT.prefix)):
        netns.delete(name)
    if LAB_DIR.exists():
        shutil.rmtree(LAB_DIR, ignore_errors=True)
    if not quiet:
        print("lab down")
    return 0


# ---- status -----------------------------------------------------------------------
def build_status(lab_pki: Any, scale: float = 1.0, board: str = "virtual") -> dict[str, Any]:
    """The status document written at ``up`` (the keys docs/virtual-board.md promises)."""
    spare = lab_pki.devices[SPARE_DEVICE_ID]
    return {
        "device_id": DEVICE_ID,
        "namespaces": {"device": LAYOUT.dev, "internet": LAYOUT.inet, "lan": LAYOUT.lan, "core": LAYOUT.core},
        "reflector": {"address": LAYOUT.internet_addr, "udp_echo_port": 7},
        "broker": {
            "url": f"mqtts://{LAYOUT.internet_addr}:{BROKER_PORT}",
            "ca": str(lab_pki.ca_cert),
            "spare_device": {"id": SPARE_DEVICE_ID, "cert": str(spare.cert), "key": str(spare.key)},
            "cloud": {"cert": str(lab_pki.cloud_cert), "key": str(lab_pki.cloud_key)},
        },
        "agent": {},
        "modem": {"pty": (store.read_json(LAB_DIR / "modem.json") or {}).get("pty")},
        "console": {"pty": str(LAB_DIR / "console.pty"), "device_pty": str(LAB_DIR / "console-device.pty"),
                    "control_socket": str(LAB_DIR / "agent" / "state" / "control.sock")},
        "page": {"url": page_url(), "from": LAYOUT.lan},
        "lab_dir": str(LAB_DIR),
        "time_scale": scale,
        "carriers": [{"letter": site.letter, "name": site.name, "plmn": site.plmn, "core": site.layout.core,
                      "cell_gateway": site.layout.cell_gateway} for site in _sites()],
        "board": board,
    }


def _sites() -> list[carriers_mod.Site]:
    """The lab's carriers (``up --carriers N``); empty for the one-carrier lab."""
    try:
        pool = pool_mod.load_pool(LAB_DIR / "pool.json")
    except (OSError, ValueError):
        return []
    return carriers_mod.sites(LAYOUT, pool, LAB_DIR)


def _site_of(iccid: str) -> carriers_mod.Site | None:
    pool = {s["iccid"]: s for _, s in carrier_mod.pool_sims(pool_mod.load_pool(LAB_DIR / "pool.json"))}
    plmn = (pool.get(iccid) or {}).get("plmn")
    return next((site for site in _sites() if site.plmn == plmn), None)


def page_address() -> tuple[str, int]:
    """The renter's page: the router's LAN address (the layout) and the virtual board
    profile's ``status_page_port`` (docs/status-page.md)."""
    return LAYOUT.lan_router_addr, load_profile("virtual").status_page_port


def page_url() -> str:
    host, port = page_address()
    return f"http://{host}" + ("" if port == 80 else f":{port}") + "/"


def status_dict() -> dict[str, Any]:
    """``lab.json`` with the live facts (agent pid and state) refreshed."""
    data = store.read_json(LAB_DIR / "lab.json")
    if not data:
        raise LabError(f"no lab is up under {LAB_DIR} (pocket-lab up)")
    data["agent"] = {"pid": _pid("agent"), "state_dir": str(LAB_DIR / "agent" / "state"),
                     "log": str(LAB_DIR / "logs" / "agent.log"), "state": _agent_state()}
    return data


def status(args: argparse.Namespace) -> int:
    data = status_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key:10} {value}")
    return 0


# ---- throttle, traffic, usage, agent ----------------------------------------------
def _current_sim() -> dict[str, Any]:
    active: dict[str, Any] = {}
    for state in [site.state_file for site in _sites()] or [LAB_DIR / "carrier.json"]:
        active.update(carrier_mod.active_sims(state))
    if not active:
        raise LabError("no SIM has a data context up at the carrier")
    # The most recently activated context is the router's current SIM.
    return list(active.values())[-1]


def throttle(args: argparse.Namespace) -> int:
    sim = _current_sim()
    pool = {s["iccid"]: s for _, s in carrier_mod.pool_sims(pool_mod.load_pool(LAB_DIR / "pool.json"))}
    if args.off:
        carrier_mod.unpolice(_layout_of(sim["iccid"]), sim["index"])
        print(f"{sim['iccid']}: policer removed")
        return 0
    rate = args.rate or (pool[sim["iccid"]].get("plan") or {}).get("throttle_kbps") or 128
    how = carrier_mod.police(_layout_of(sim["iccid"]), sim["address"], sim["index"], int(rate))
    print(f"{sim['iccid']} ({sim['address']}): cap used up, policed to {rate} kbps ({how})")
    return 0


def traffic(args: argparse.Namespace) -> int:
    if args.action == "stop":
        print("traffic stopped" if _stop("traffic") else "no traffic was running")
        return 0
    _stop("traffic")
    argv = [_python(), "-m", "board.virtual.network.traffic", "--kind", args.kind, "--duration", str(args.duration)]
    _spawn("traffic", argv, ns=LAYOUT.lan)
    print(f"{args.kind} traffic from {LAYOUT.lan_host_addr} for at most {args.duration:.0f} s")
    return 0


def _layout_of(iccid: str) -> LabLayout:
    site = _site_of(iccid)
    return site.layout if site else LAYOUT


def usage_dict() -> dict[str, Any]:
    sites = _sites()
    carrier_counts = sharedsims.with_elsewhere(
        carriers_mod.read_all_counters(sites) if sites else carrier_mod.read_counters(LAYOUT), LAB_DIR)
    totals = store.read_json(LAB_DIR / "cloud" / "totals.json") or {}
    out: dict[str, Any] = {}
    for iccid in sorted(set(carrier_counts) | set(totals)):
        c = carrier_counts.get(iccid, {"up": 0, "down": 0})
        t = totals.get(iccid, {})
        out[iccid] = {"carrier": {"up": c["up"], "down": c["down"]},
                      "cloud": {"up": int(t.get("tx_bytes", 0)), "down": int(t.get("rx_bytes", 0))}}
    return out


def usage(args: argparse.Namespace) -> int:
    data = usage_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"{'ICCID':21} {'carrier up':>12} {'carrier down':>13} {'cloud up':>12} {'cloud down':>12}")
        for iccid, row in data.items():
            print(f"{iccid:21} {row['carrier']['up']:12} {row['carrier']['down']:13} "
                  f"{row['cloud']['up']:12} {row['cloud']['down']:12}")
    return 0


def cloud_control(op: dict[str, Any]) -> Path:
    """Hand one control to the running reference cloud through its spool (atomic rename)."""
    spool = LAB_DIR / "cloud" / cloud_mod.SPOOL_DIR
    if not spool.is_dir():
        raise LabError(f"the reference cloud is not running under {LAB_DIR} (pocket-lab up)")
    path = spool / f"{time.time_ns()}-{op['op']}.json"
    store.atomic_write_json(path, op)
    return path


def update(args: argparse.Namespace) -> int:
    """Shelve a release's artifact at the reference cloud and offer it to the device with the
    ``update`` command (docs/update.md); ``--fault`` makes the cloud serve it badly."""
    manifest = json.loads(Path(args.manifest).read_text())
    cloud_control({"op": "release", "artifact": str(Path(args.artifact).resolve()), "fault": args.fault,
                   "sha256": manifest.get("sha256") if args.as_manifest_says else None})
    body = {"command_id": f"lab-update-{time.time_ns()}", "action": "update", "manifest": manifest}
    cloud_control({"op": "command", "device": args.device, "body": body})
    print(f"release {manifest.get('version')} offered to {args.device}")
    return 0


def swap(args: argparse.Namespace) -> int:
    """The reference cloud commands the device to swap, now or inside ``--window`` seconds;
    with ``--plan NAME`` the cloud assigns only SIMs of that plan from then on, with
    ``--carrier X`` the next assignment is a SIM of that carrier."""
    if getattr(args, "plan", None):  # "any": no preference again
        cloud_control({"op": "prefer_plan", "plan": None if args.plan == "any" else args.plan})
    if getattr(args, "carrier", None):
        try:
            plmn = carriers_mod.find_site(_sites(), args.carrier).plmn
        except ValueError as exc:
            raise LabError(str(exc)) from exc
        cloud_control({"op": "prefer_plmn", "plmn": plmn})
    body: dict[str, Any] = {"command_id": f"lab-swap-{time.time_ns()}", "action": "swap"}
    if args.window:
        now = labclock.lab_time(LAB_DIR)  # the device judges the window on its clock: lab time
        body["window"] = {"not_before": now, "not_after": now + args.window}
    cloud_control({"op": "command", "device": args.device, "body": body})
    print(f"swap commanded to {args.device}" + (f" within {args.window:.0f} s" if args.window else " now"))
    return 0


def clock(args: argparse.Namespace) -> int:
    """Lab time (board/virtual/network/labclock.py): show it, or move it forward by
    ``--advance SECONDS`` or to ``--to`` an ISO time with its offset. The carrier, the
    modem's network time, the cloud's plan windows and the agent all follow."""
    if args.to is not None:
        target = datetime.fromisoformat(args.to)
        if target.tzinfo is None:
            raise LabError("--to needs a UTC offset, e.g. 2026-02-01T00:00:00+09:00")
        step = target.timestamp() - labclock.lab_time(LAB_DIR)
        if step < 0:
            raise LabError(f"lab time is already past {args.to}: it only moves forward")
        labclock.advance(LAB_DIR, step)
    elif args.advance is not None:
        labclock.advance(LAB_DIR, args.advance)
    now = labclock.lab_time(LAB_DIR)
    iso = datetime.fromtimestamp(now, timezone(timedelta(hours=9))).isoformat(timespec="seconds")
    print(json.dumps({"lab_time": now, "jst": iso, "offset_s": labclock.offset(LAB_DIR)}) if args.json
          else f"lab time {iso} (host + {labclock.offset(LAB_DIR):.0f} s)")
    return 0


def _next_plan_version(iccid: str) -> int:
    """One more than the last plan update's version for ``iccid`` (the device refuses an
    update not above the last it applied to that SIM: docs/protocol.md 4.3)."""
    path = LAB_DIR / "cloud" / "plan-versions.json"
    versions = store.read_json(path, {}) or {}
    versions[iccid] = int(versions.get(iccid, 0)) + 1
    store.atomic_write_json(path, versions)
    return int(versions[iccid])


def plan_update(args: argparse.Namespace) -> int:
    """The reference cloud sends the SIM in use a signed ``plan_update`` (docs/protocol.md
    4.3): a corrected allowance (``--remaining RULE=BYTES``, true at lab time now), a
    top-up or an add-on bought now. The device's allowance follows; the carrier's count is
    its own."""
    iccid = args.iccid or _current_sim()["iccid"]
    now = labclock.lab_time(LAB_DIR)
    body: dict[str, Any] = {"iccid": iccid, "update_id": f"lab-u-{time.time_ns()}",
                            "version": _next_plan_version(iccid), "issued_at": int(now)}
    if args.remaining:
        body["remaining"] = {}
        for item in args.remaining:
            rule, sep, value = item.partition("=")
            if not sep or not value.isdigit():
                raise LabError(f"--remaining takes RULE=BYTES, got {item!r}")
            body["remaining"][rule] = int(value)
        body["as_of"] = now
    credits = [{"id": f"lab-{kind}-{time.time_ns()}", "kind": kind, "bytes": nbytes, "bought": now}
               for kind, nbytes in (("topup", args.topup), ("addon", args.addon)) if nbytes]
    if credits:
        body["credits"] = credits
    for credit in credits:  # the wholesaler lifts its cap as the platform bought it
        sharedsims.add_credit(LAB_DIR, iccid, credit)
    if len(body) == 4:
        raise LabError("nothing to send: give --remaining, --topup or --addon")
    command = {"command_id": f"lab-plan-{time.time_ns()}", "action": "plan_update", "plan_update": body}
    cloud_control({"op": "command", "device": args.device, "body": command})
    print(f"plan update {body['update_id']} (version {body['version']}) sent for {iccid}")
    return 0


def used_elsewhere(args: argparse.Namespace) -> int:
    """``BYTES`` the SIM (default: the one in use) carried in other routers, ``--ago``
    seconds of lab time before now: the carrier counts them in every window they fall in,
    the reference cloud too, and the cloud sends the device a signed plan update with what
    is left (board/virtual/network/sharedsims.py)."""
    iccid = args.iccid or _current_sim()["iccid"]
    if args.bytes <= 0 or args.ago < 0:
        raise LabError("BYTES must be positive and --ago not negative")
    at = labclock.lab_time(LAB_DIR) - args.ago
    sharedsims.add_elsewhere(LAB_DIR, iccid, at, args.bytes)
    cloud_control({"op": "elsewhere", "iccid": iccid, "bytes": args.bytes, "at": at, "device": args.device,
                   "version": _next_plan_version(iccid)})
    print(f"{iccid}: {args.bytes} bytes used elsewhere {args.ago:.0f} s ago (lab time); the device is told")
    return 0


def _next_policy_version() -> int:
    """One more than the last version published: a device adopts only a newer version, and
    never one more than 65,536 past the version it holds (docs/protocol.md 3.8), so a
    platform counts its policies rather than stamping them with the time."""
    path = LAB_DIR / "cloud" / "policy-version"
    try:
        last = int(path.read_text())
    except (OSError, ValueError):
        last = 0
    version = last + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(version))
    return version


def policy(args: argparse.Namespace) -> int:
    """Publish a retained policy (``--set key=value`` ...) with a fresh version."""
    body: dict[str, Any] = {"version": _next_policy_version()}
    for item in args.set or []:
        key, _, value = item.partition("=")
        *outer, leaf = key.split(".")  # pacing.backoff_cap_s=10: a knob of a nested object
        table = body
        for name in outer:
            table = table.setdefault(name, {})
        table[leaf] = float(value) if "." in value else int(value)
    cloud_control({"op": "policy", "device": args.device, "body": body})
    print(f"policy {body} published for {args.device}")
    return 0


def fault(args: argparse.Namespace) -> int:
    """``pocket-lab fault KIND [options]`` / ``fault clear`` / ``fault list`` (issue 9)."""
    request: dict[str, Any] = {"kind": args.kind}
    for option in ("seconds", "bytes", "count", "code", "cause", "rsrp", "sinr", "retry_after", "refuse", "step",
                   "carrier"):
        value = getattr(args, option, None)
        if value not in (None, False):
            request[option] = value
    try:
        reply = faults.send(LAB_DIR, request)
    except faults.FaultError as exc:
        raise LabError(str(exc)) from exc
    print(json.dumps(reply) if args.json else " ".join(f"{k}={v}" for k, v in reply.items() if k != "ok"))
    return 0


def agent(args: argparse.Namespace) -> int:
    if args.action == "kill":
        print("agent killed" if _stop("agent", signal.SIGKILL) else "no agent was running")
        return 0
    if args.action == "stop":
        print("agent stopped" if _stop("agent") else "no agent was running")
        return 0
    if args.action == "start":
        start_agent()
        print(f"agent started (pid {_pid('agent')})")
        return 0
    _stop("agent")
    start_agent()
    print(f"agent restarted (pid {_pid('agent')})")
    return 0


# ---- the subcommand interface (board/virtual/lab/cli.py's table points here) ----------
def configure(parser: argparse.ArgumentParser) -> None:
    name = parser.prog.split()[-1]
    if name in ("up", "status", "usage", "clock"):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    if name == "up":
        parser.add_argument("--no-agent", action="store_true",
                            help="do not start the lab's agent: the device's namespace and modem wait for one "
                                 "started elsewhere (the system test's container)")
    if name == "up":
        parser.add_argument("--carriers", type=int, default=1,
                            help="carrier networks, each its own PLMN and core (issue 23; default 1: the "
                                 "lab as it always was)")
        parser.add_argument("--plans", choices=["lab", "table"], default="lab",
                            help="the pool's plans: the lab's usual five, or every plan of domain.md's table "
                                 "in the rules form (docs/protocol.md 4.2)")
    if name == "up":
        parser.add_argument("--board", choices=sorted(BOARDS),
                            help=f"the board: 'virtual' (vSIM slots) or 'remote-sim' (the agent answers as the "
                                 f"SIM over AT, docs/remote-sim.md); default ${BOARD_ENV} or virtual")
    if name == "up":
        parser.add_argument("--capture-at", type=Path, metavar="FILE",
                            help="append every byte of the modem's AT port, both ways, to FILE (0600): what a "
                                 "second process on the UART would see (tests search it for SIM keys)")
    if name == "up":
        parser.add_argument("--time-scale", type=float, metavar="S",
                            help=f"multiply every modelled modem latency by S ({MIN_TIME_SCALE:g}..1; default "
                                 f"${TIME_SCALE_ENV} or 1): tests that do not measure modem time run faster")
    if name == "clock":
        parser.add_argument("--advance", type=float, help="seconds to move lab time forward")
        parser.add_argument("--to", help="move lab time forward to this ISO time (with its UTC offset)")
    if name == "swap":
        parser.add_argument("--plan", help="assign only SIMs of this plan (a name from domain.md's table; "
                                           "'any': every plan again)")
        parser.add_argument("--carrier", help="the next SIM assigned is of this carrier (A, B, its name or PLMN)")
    if name == "throttle":
        parser.add_argument("--rate", type=int, help="kbit/s (default: the SIM's plan rate, else 128)")
        parser.add_argument("--off", action="store_true", help="remove the policer")
    if name == "traffic":
        parser.add_argument("action", choices=["start", "stop"])
        parser.add_argument("--kind", choices=["bulk", "web", "video"], default="bulk")
        parser.add_argument("--duration", type=float, default=600.0, help="seconds, at most")
    if name == "agent":
        parser.add_argument("action", choices=["restart", "kill", "stop", "start"])
    if name == "used-elsewhere":
        parser.add_argument("bytes", type=int, help="bytes the SIM carried in other routers")
        parser.add_argument("--ago", type=float, default=0.0, help="seconds of lab time before now (default 0)")
        parser.add_argument("--iccid", help="the SIM (default: the one in use)")
    if name == "update":
        parser.add_argument("--artifact", required=True, help="the release's .tar.gz (packaging/release.py cut)")
        parser.add_argument("--manifest", required=True, help="its signed .manifest.json")
        parser.add_argument("--fault", choices=["truncate", "extend"],
                            help="the cloud serves the chunks badly (board/virtual/cloud/releases.py)")
        parser.add_argument("--as-manifest-says", action="store_true",
                            help="shelve the artifact under the manifest's hash, whatever its bytes hash to")
    if name in ("swap", "policy", "plan-update", "used-elsewhere", "update"):
        parser.add_argument("--device", default=DEVICE_ID, help="device id (default: the lab's router)")
    if name == "plan-update":
        parser.add_argument("--remaining", action="append", metavar="RULE=BYTES",
                            help="a corrected allowance for one rule of the SIM's plan (the old plans' rule: cap)")
        parser.add_argument("--topup", type=int, metavar="BYTES", help="a top-up bought now")
        parser.add_argument("--addon", type=int, metavar="BYTES", help="an add-on bought now")
        parser.add_argument("--iccid", help="the SIM (default: the one in use)")
    if name == "swap":
        parser.add_argument("--window", type=float, default=0.0,
                            help="seconds: the device picks a random moment inside (default: now)")
    if name == "policy":
        parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                            help="a policy field (docs/protocol.md 3.8), e.g. max_per_hour=20 or "
                                 "pacing.backoff_cap_s=10")
    if name == "fault":  # issue 9: options per kind in docs/virtual-board.md
        parser.add_argument("kind", choices=[*faults.KINDS, "clear", "list"])
        parser.add_argument("--seconds", type=float, help=f"how long it lasts (default {faults.DEFAULT_SECONDS:g})")
        parser.add_argument("--bytes", type=int, help="garbage: bytes of noise")
        parser.add_argument("--count", type=int, help="busy: commands answered busy")
        parser.add_argument("--code", type=int, help="busy: +CME ERROR code (14 or 515)")
        parser.add_argument("--cause", type=int, help="reject: EMM cause; pdn-reject: ESM cause")
        parser.add_argument("--rsrp", type=float, help="radio: RSRP dBm")
        parser.add_argument("--sinr", type=float, help="radio: SINR dB")
        parser.add_argument("--retry-after", type=float, help="cloud-busy: seconds the cloud asks for")
        parser.add_argument("--refuse", action="store_true", help="cloud-busy: answer 'no capacity'")
        parser.add_argument("--step", type=float, help="clock: seconds to step the wall clock (negative: back)")
        parser.add_argument("--carrier", help="outage, blackhole, pdn-reject, congestion: only this carrier "
                                              "(A, B, its name or PLMN) in a lab with several")
        parser.add_argument("--json", action="store_true", help="machine-readable output")


def main(args: argparse.Namespace) -> int:
    handler = {"up": up, "down": down, "status": status, "throttle": throttle,
               "traffic": traffic, "usage": usage, "agent": agent, "swap": swap, "policy": policy,
               "fault": fault, "clock": clock, "plan-update": plan_update,
               "used-elsewhere": used_elsewhere, "update": update}[args.command]
    try:
        return handler(args)
    except (LabError, netns.LabCommandError) as exc:
        print(f"pocket-lab {args.command}: {exc}", file=sys.stderr)
        return 1
