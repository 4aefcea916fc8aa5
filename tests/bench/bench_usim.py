"""Benchmark: the host-side USIM's own share of an APDU's answer time (issue 24).

A baseband gives up on a silent card: under T=0 the work waiting time with the default
parameters is WI x 960 x Fi / f = 10 x 960 x 372 / 3.57 MHz = 1.0 s (ISO/IEC 7816-3
10.2), the deadline a physical card must meet between a command and its answer. A card
behind a host spends part of that on the AT line and the host's event loop; this measures
the part that is the card's: ``Uicc.transmit`` for each APDU of a baseband's power-up
read sequence, and for AUTHENTICATE (MILENAGE's AES blocks and the SQN check), printed as
median, p95 and p99 beside the 1 s budget.

Run: .venv/bin/python tests/bench/bench_usim.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.sim import SimProfile
from agent.usim.card import Uicc
from agent.usim.milenage import Milenage
from agent.usim.sqn import SqnState

WWT_S = 10 * 960 * 372 / 3.57e6
"""T=0 work waiting time with WI = 10, Fi = 372 at 3.57 MHz: a physical card's deadline."""
KI = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
PROFILE = SimProfile(iccid="8981100000001000019", imsi="440100000100001", ki=KI, opc=OPC, plmn="44010")
AID = "A0000000871002FFFFFFFF8900000100"
POWER_UP = [
    "00A40004023F00", "00C0000022", "00A40004022FE2", "00C0000019", "00B000000A",
    "00A40004022F00", "00C000001C", "00B2010426", "00A4040410" + AID, "00C000002F",
    *[cmd for fid in ("6F05", "6F07", "6FAD", "6F38", "6F56", "6F78", "6F7B", "6F31", "6F7E", "6F73",
                      "6FE3", "6F08", "6F09", "6F5B", "6F5C")
      for cmd in ("00A40004" + "02" + fid, "00B0870009" if fid == "6F07" else "80F2000C00")],
]
"""SELECT MF, EF_ICCID, EF_DIR and its record, the ADF by AID, then each ADF file (SELECT
and a read or STATUS): the commands of a power-up, answered as a baseband sends them."""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def show(name: str, seconds: list[float]) -> None:
    us = [s * 1e6 for s in seconds]
    print(f"{name:<28} n={len(us):>6}  median {statistics.median(us):8.1f} us  p95 {pct(us, 0.95):8.1f} us  "
          f"p99 {pct(us, 0.99):8.1f} us  (budget {WWT_S * 1e6:,.0f} us: {statistics.median(seconds) / WWT_S:.2e} of it)")


def power_up(rounds: int) -> list[float]:
    card = Uicc()
    card.load(PROFILE, spn="Pocket Lab")
    commands = [bytes.fromhex(c) for c in POWER_UP]
    times = []
    for _ in range(rounds):
        card.reset()
        for command in commands:
            start = time.perf_counter()
            card.transmit(command)
            times.append(time.perf_counter() - start)
    return times


def authenticate(rounds: int) -> list[float]:
    card = Uicc()
    card.load(PROFILE, sqn=SqnState())
    card.transmit(bytes.fromhex("00A4040C10" + AID))
    m = Milenage(KI, OPC)
    rand = bytes(range(16))
    out = m.f2345(rand)
    times = []
    for n in range(1, rounds + 1):
        sqn = (n << 5).to_bytes(6, "big")  # SEQ n, IND 0: fresh each time
        autn = bytes(a ^ b for a, b in zip(sqn, out.ak, strict=True)) + b"\x80\x00" + m.f1(rand, sqn, b"\x80\x00")
        command = bytes.fromhex("0088008122") + b"\x10" + rand + b"\x10" + autn
        start = time.perf_counter()
        answer = card.transmit(command)
        times.append(time.perf_counter() - start)
        assert answer == b"\x61\x2c", answer.hex()
        card.transmit(bytes.fromhex("00C000002C"))
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 50 if args.quick else 500
    show("power-up APDUs", power_up(rounds))
    show("AUTHENTICATE (3G context)", authenticate(rounds * 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
