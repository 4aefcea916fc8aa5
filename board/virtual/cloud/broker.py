"""The lab's MQTT broker: Debian's mosquitto, TLS only, one certificate per client.

Configuration choices (each mirrors what a production broker for the fleet must do):
- ``require_certificate true`` + ``use_identity_as_username true``: a client is who
  its certificate's CN says, nothing else; there is no password path.
- ``use_username_as_clientid true``: the client id is that CN as well, whatever the
  client asked for, so one device cannot knock another off by borrowing its client id.
- an ACL with ``%u`` patterns: a device reads and writes only pw/v1/<its CN>/..., and
  within it only in the direction the contract says (docs/protocol.md); the user
  "cloud" reaches every tree.
- persistence on, so queued QoS 1 messages survive a graceful restart; the contract's
  end-to-end acks make correctness independent of it.

``pocket-lab broker`` runs one in the foreground with the lab's PKI.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.cloud.protocol import MAX_MESSAGE_BYTES
from board.virtual.cloud.pki import CLOUD_CN, LabPki, create_lab_pki

LOGGER = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
"""mosquitto accepts TLS within ~50 ms on a laptop; 10 s covers a loaded CI runner."""

STOP_TIMEOUT_S = 5.0
"""Grace for SIGTERM (it writes its persistence file) before SIGKILL."""

POLL_S = 0.05
"""Readiness poll interval while waiting for an external process (no event to await)."""

MAX_QUEUED = 1000
"""Per-client queue while offline: a device's backlog is bounded by its own outbox anyway."""

DEVICE_WRITE = ("state", "usage", "event/#", "assign/request", "cert/request", "update/get")
DEVICE_READ = ("assignment", "command", "policy", "ack", "cert", "update/chunk")


def acl_text() -> str:
    """The ACL: the cloud everywhere; each device only its own tree, in the contract's directions."""
    lines = [f"user {CLOUD_CN}", "topic readwrite pw/v1/#", ""]
    lines += [f"pattern write pw/v1/%u/{leaf}" for leaf in DEVICE_WRITE]
    lines += [f"pattern read pw/v1/%u/{leaf}" for leaf in DEVICE_READ]
    return "\n".join(lines) + "\n"


def write_config(directory: Path, pki: LabPki, host: str, port: int) -> Path:
    """Write mosquitto.conf and its ACL into ``directory``; returns the config path."""
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    acl = d / "acl"
    acl.write_text(acl_text())
    (d / "data").mkdir(exist_ok=True)
    conf = d / "mosquitto.conf"
    user = "root" if os.geteuid() == 0 else ""
    conf.write_text("\n".join([
        "# written by board/virtual/cloud/broker.py",
        # As root, mosquitto would switch to user "mosquitto", which cannot read the
        # lab's 0600 keys; the lab broker listens on loopback or inside a lab namespace.
        f"user {user}" if user else "",
        "per_listener_settings false",
        "allow_anonymous false",
        f"acl_file {acl}",
        "persistence true",
        f"persistence_location {d / 'data'}/",
        "autosave_interval 1",
        f"max_queued_messages {MAX_QUEUED}",
        f"max_packet_size {MAX_MESSAGE_BYTES + 1024}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages false",
        f"listener {port} {host}",
        f"cafile {pki.ca_cert}",
        f"certfile {pki.broker_cert}",
        f"keyfile {pki.broker_key}",
        "require_certificate true",
        "use_identity_as_username true",
        # The client id is the certificate's CN too: a device presenting its own valid
        # certificate with another device's client id cannot take that device's session
        # over (and discard what the broker queued for it).
        "use_username_as_clientid true",
        "tls_version tlsv1.2",
        "",
    ]))
    return conf


def tls_probe(pki: LabPki, host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a TLS handshake with the cloud's certificate succeeds right now."""
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    ctx.load_cert_chain(str(pki.cloud_cert), str(pki.cloud_key))
    ctx.check_hostname = False
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, ctx.wrap_socket(raw) as tls:
            tls.do_handshake()
        return True
    except OSError:
        return False


def start_broker(directory: Path, pki: LabPki, host: str, port: int, netns: str | None = None) -> subprocess.Popen:
    """Start mosquitto and return once it accepts TLS; raises with its stderr otherwise."""
    exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if exe is None:
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    conf = write_config(directory, pki, host, port)
    cmd = [exe, "-c", str(conf)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    with open(Path(directory) / "mosquitto.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if netns is None and tls_probe(pki, host, port):
            return proc
        if netns is not None and _probe_in_netns(netns, pki, host, port):
            return proc
        time.sleep(POLL_S)
    stop_broker(proc)
    err = (Path(directory) / "mosquitto.log").read_text(errors="replace")[-2000:]
    raise RuntimeError(f"mosquitto did not accept TLS on {host}:{port} within {START_TIMEOUT_S}s: {err}")


def _probe_in_netns(netns: str, pki: LabPki, host: str, port: int) -> bool:
    """Readiness inside a namespace: a TLS probe run there with openssl-free Python."""
    code = (f"import sys; from pathlib import Path; sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r});"
            "from board.virtual.cloud import broker, pki as p;"
            f"k = p.LabPki(**{{f: Path(v) if isinstance(v, str) else v for f, v in {_pki_fields(pki)!r}.items()}});"
            f"sys.exit(0 if broker.tls_probe(k, {host!r}, {port}) else 1)")
    return subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code],
                          capture_output=True, timeout=10, check=False).returncode == 0


def _pki_fields(pki: LabPki) -> dict[str, object]:
    return {f: str(getattr(pki, f)) for f in pki.__dataclass_fields__ if f != "devices"}


def stop_broker(proc: subprocess.Popen) -> None:
    """SIGTERM (mosquitto saves its persistence file), then SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def default_dir() -> Path:
    return Path(os.environ.get("POCKET_LAB_DIR", "/run/pocket-lab")) / "broker"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", type=Path, default=None, help="broker and PKI directory (default $POCKET_LAB_DIR/broker)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8883)
    parser.add_argument("--device", action="append", default=[], help="device id to issue a certificate for")
    parser.add_argument("--netns", default=None)


STOP_POLL_S = 0.2
"""How often ``pocket-lab broker`` looks for its stop request while mosquitto runs."""


def main(args: argparse.Namespace) -> int:
    directory = args.dir or default_dir()
    pki = create_lab_pki(directory / "pki", args.device or ["dev-0001"], [args.host])
    # SIGTERM only sets a flag: raising from the handler (as this did) leaked mosquitto when
    # the signal came between start_broker's return and the try below, a window a loaded
    # machine stretches past the moment a caller that read "broker on" sends its SIGTERM.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    proc = start_broker(directory, pki, args.host, args.port, args.netns)
    try:
        print(f"broker on {args.host}:{args.port} pid {proc.pid}; PKI in {pki.directory}", flush=True)
        while proc.poll() is None and not stop.wait(STOP_POLL_S):
            pass
        return proc.returncode if proc.returncode is not None else 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 0
    finally:
        stop_broker(proc)
