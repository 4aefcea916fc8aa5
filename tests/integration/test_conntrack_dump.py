"""agent/net/conntrack.py's own ctnetlink decoder reads the kernel's conntrack table as
pyroute2's ``NFCTSocket`` does (flow key and bytes both ways), on a real table: TCP and
UDP flows in a scratch network namespace with byte accounting on. Both dump IPv4 only
(the IPv6 flows made here are in the table and in neither dump)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_root, need_tool

REPO = Path(__file__).resolve().parents[2]

TRAFFIC = """
import socket, threading
def serve(family, addr):
    tcp = socket.socket(family, socket.SOCK_STREAM); tcp.bind((addr, 0)); tcp.listen()
    port = tcp.getsockname()[1]
    def take():
        conn, _ = tcp.accept(); conn.recv(4096); conn.sendall(b"y" * 3000); conn.close()
    threading.Thread(target=take).start()
    c = socket.create_connection((addr, port)); c.sendall(b"x" * 1000); c.recv(4096); c.close()
    udp = socket.socket(family, socket.SOCK_DGRAM); udp.bind((addr, 0))
    u = socket.socket(family, socket.SOCK_DGRAM); u.sendto(b"z" * 500, udp.getsockname()); udp.recv(600)
serve(socket.AF_INET, "127.0.0.1")
serve(socket.AF_INET6, "::1")
"""

BOTH_DUMPS = """
import json
from agent.net.conntrack import _netlink_dump
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTSocket

def attr(node, *names):
    for name in names:
        if node is None:
            return None
        node = node.get_attr(name)
    return node

def pyroute2_flow(msg):  # the decoding agent/net/conntrack.py did with pyroute2 until issue 19
    orig = attr(msg, "CTA_TUPLE_ORIG")
    src = attr(orig, "CTA_TUPLE_IP", "CTA_IP_V4_SRC") or attr(orig, "CTA_TUPLE_IP", "CTA_IP_V6_SRC")
    dst = attr(orig, "CTA_TUPLE_IP", "CTA_IP_V4_DST") or attr(orig, "CTA_TUPLE_IP", "CTA_IP_V6_DST")
    key = [int(attr(orig, "CTA_TUPLE_PROTO", "CTA_PROTO_NUM") or 0), str(src), str(dst),
           int(attr(orig, "CTA_TUPLE_PROTO", "CTA_PROTO_SRC_PORT") or 0),
           int(attr(orig, "CTA_TUPLE_PROTO", "CTA_PROTO_DST_PORT") or 0)]
    total = sum(attr(msg, d, "CTA_COUNTERS_BYTES") or 0 for d in ("CTA_COUNTERS_ORIG", "CTA_COUNTERS_REPLY"))
    return [key, int(total)]

with NFCTSocket() as sock:
    theirs = sorted(pyroute2_flow(m) for m in sock.dump())
ours = sorted([list(f.key), f.bytes] for f in _netlink_dump())
print(json.dumps({"ours": ours, "theirs": theirs}))
"""


@pytest.fixture
def namespace() -> Iterator[str]:
    need_root()
    need_tool("nft")
    name = f"pwct-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        run = ["ip", "netns", "exec", name]
        subprocess.run([*run, "ip", "link", "set", "lo", "up"], check=True)
        # a conntrack rule makes the namespace track its flows; accounting counts their bytes
        rules = "add table inet t; add chain inet t c { type filter hook output priority 0; }; add rule inet t c ct state new accept"
        subprocess.run([*run, "nft", rules], check=True)
        subprocess.run([*run, "sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_own_decoder_reads_what_pyroute2_reads(namespace: str) -> None:
    run = ["ip", "netns", "exec", namespace, sys.executable]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([*run, "-c", TRAFFIC], check=True, timeout=30, env=env)
    done = subprocess.run([*run, "-c", BOTH_DUMPS], capture_output=True, text=True, timeout=60, env=env,
                          check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen["ours"] == seen["theirs"]
    assert {key[0] for key, _ in seen["ours"]} >= {6, 17}  # TCP and UDP
    assert not any(":" in key[1] for key, _ in seen["ours"])
    tcp4 = [total for key, total in seen["ours"] if key[0] == 6 and key[1] == "127.0.0.1"]
    assert tcp4 and all(total > 4000 for total in tcp4)  # 1000 + 3000 payload bytes, plus headers
