"""The SIM pool file: what the reference cloud assigns and the lab's carrier authenticates.

Format (JSON; a contract with board/virtual's carrier network)::

    {"seed": {...one SIM...},
     "sims": [{"iccid", "imsi", "ki", "opc" (32 hex digits each), "plmn", "apn", "carrier",
               "plan": {"name", "cap_bytes", "window", "throttle_kbps"}}, ...]}

Plans come from domain.md's contract tables. The pool is generated from a seed so a
test can name "the third SIM" and get the same keys every run. The file holds Ki/OPc:
it is written 0600 and belongs to the lab (the carrier's side), never to the device.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from agent import store

GB = 1_000_000_000

PLANS: list[dict[str, Any]] = [
    {"name": "monthly-100GB", "cap_bytes": 100 * GB, "window": "month", "throttle_kbps": 128},
    {"name": "5GB-month", "cap_bytes": 5 * GB, "window": "month", "throttle_kbps": 128},
    {"name": "10GB-month", "cap_bytes": 10 * GB, "window": "month", "throttle_kbps": 128},
    {"name": "daypass-3GB", "cap_bytes": 3 * GB, "window": "day", "throttle_kbps": 384},
    {"name": "200kbps", "cap_bytes": None, "window": "none", "throttle_kbps": 200},
]
"""domain.md: monthly 100 GB -> 128 kbps; 5 and 10 GB/month -> low speed (128 kbps here);
overseas day pass 3 GB/day -> 384 kbps; the 200 kbps plan is always 200 kbps."""

CARRIERS = [("carrier-a", "44010", "internet.a.lab"), ("carrier-b", "44020", "internet.b.lab"),
            ("carrier-c", "44051", "internet.c.lab")]
"""(name, PLMN, APN). MCC 440 is Japan; MNCs are illustrative."""


def luhn_digit(digits: str) -> str:
    """The Luhn check digit for ``digits`` (ICCIDs end with one, ITU-T E.118)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


def _sim(rng: random.Random, index: int, plan: dict[str, Any], carrier: tuple[str, str, str]) -> dict[str, Any]:
    name, plmn, apn = carrier
    body = f"898110{index:012d}"  # 89 telecom, 81 Japan, issuer 10, serial: 18 digits
    return {"iccid": body + luhn_digit(body), "imsi": f"{plmn}{index:010d}",
            "ki": rng.randbytes(16).hex(), "opc": rng.randbytes(16).hex(),
            "plmn": plmn, "apn": apn, "carrier": name, "plan": dict(plan)}


def make_pool(count: int, seed: int, plans: list[dict[str, Any]] | None = None,
              carriers: int | None = None) -> dict[str, Any]:
    """``count`` data SIMs spread over ``plans`` (default: ``PLANS``) and the carriers, plus
    one seed SIM (``pocket-lab up --plans table`` gives every plan of domain.md's table in
    the rules form, board/virtual/cloud/plans.py). ``carriers``: a lab with that many
    carrier networks (``up --carriers N``, issue 23): the SIMs are spread over the first N
    carriers only, and the pool names them (``carriers``) so the lab builds one core each;
    the seed SIM is on the first."""
    plans = plans or PLANS
    rng = random.Random(seed)
    spread = CARRIERS[:carriers] if carriers else CARRIERS
    seed_sim = _sim(rng, 900_000_000 + seed % 1000, {"name": "seed", "cap_bytes": None, "window": "none",
                                                       "throttle_kbps": 200}, CARRIERS[0])
    # IMSIs have at most 15 digits (MCC+MNC+10 here): keep the serial within 10 digits.
    sims = [_sim(rng, (seed % 10_000) * 1_000 + i + 1, plans[i % len(plans)], spread[i % len(spread)])
            for i in range(count)]
    pool: dict[str, Any] = {"seed": seed_sim, "sims": sims}
    if carriers:
        pool["carriers"] = [{"name": name, "plmn": plmn, "apn": apn} for name, plmn, apn in spread]
    return pool


def load_pool(path: Path | str) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict) or not isinstance(data.get("sims"), list):
        raise ValueError(f"{path}: not a pool file (needs a 'sims' list)")  # noqa: TRY004 - bad file, not bad arg
    return data


def save_pool(path: Path | str, pool: dict[str, Any]) -> None:
    store.atomic_write_json(path, pool)
