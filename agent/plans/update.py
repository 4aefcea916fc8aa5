"""A ``plan_update``: a top-up, an add-on or a corrected allowance for the SIM in use.

Why its own message: the allowance the platform knew at assignment goes stale. A top-up
bought later, an add-on, a correction after the wholesaler's own count: without them the
device swaps on a number that is not the carrier's (issue 22). It comes inside a
``plan_update`` command (docs/protocol.md 3.7, 4.3) and is checked in this order, each
refusal naming its field and reported as an ``error`` event; the previous plan stays:

1. signed by the platform for this device (agent/cloud/platformsig.py) [signature,
   wrong_device]: whoever can publish on the device's topic cannot buy data for it;
2. fields of the contract, typed and bounded [plan]: at most ``MAX_CREDITS`` credits, bytes
   0-10^15, kinds ``topup`` and ``addon``, and a replacement plan read as any plan is;
3. for the SIM in use [wrong_sim]: a top-up for another SIM is not this one's;
4. newer than the last update applied to that SIM [replay]: ``version`` is a per-SIM
   counter, bounded as policy versions are; the same ``update_id`` again is a redelivery,
   acknowledged and not applied twice [duplicate];
5. at most ``MAX_ADDONS_PER_MONTH`` add-ons bought in one month [plan].
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent.errors import PlanError
from agent.plans.allowance import Credit
from agent.plans.rules import MAX_PLAN_BYTES, PlanRules, parse_plan

UPDATE_KEYS = frozenset({"v", "device", "sig", "iccid", "update_id", "version", "issued_at", "plan", "remaining",
                         "as_of", "credits"})
CREDIT_KEYS = frozenset({"id", "kind", "bytes", "bought"})
CREDIT_KINDS = ("topup", "addon")
MAX_CREDITS = 16
"""Credits in one update: three add-ons a month and a few top-ups over three months fit
many times over; the bound keeps the message and the durable view small."""
MAX_TIME = 2**33
"""UNIX seconds up to the year 2242: a larger time is a unit mistake (milliseconds)."""
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
ICCID_RE = re.compile(r"89\d{16,18}")


@dataclass(frozen=True)
class PlanUpdate:
    """A checked plan update (its signature already verified)."""

    iccid: str
    update_id: str
    version: int
    plan: PlanRules | None
    remaining: dict[str, int] | None
    as_of: float | None
    credits: tuple[Credit, ...]


def parse_update(body: Any) -> PlanUpdate:
    """The update's fields (step 2), or PlanError naming the first that breaks the contract."""
    if not isinstance(body, dict):
        raise PlanError("plan_update", "is not an object")
    if any(k not in UPDATE_KEYS for k in body):
        raise PlanError("plan_update.<unknown>", "is not a field of the contract")
    iccid = body.get("iccid")
    if not isinstance(iccid, str) or not iccid.isascii() or not ICCID_RE.fullmatch(iccid):
        raise PlanError("plan_update.iccid", "is not 18-20 digits starting 89")
    update_id = body.get("update_id")
    if not isinstance(update_id, str) or not update_id.isascii() or not ID_RE.fullmatch(update_id):
        raise PlanError("plan_update.update_id", "is not 1-64 letters, digits, '_', '.', ':' or '-'")
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise PlanError("plan_update.version", "is not a non-negative integer")
    plan = parse_plan(body["plan"], "plan_update.plan") if body.get("plan") is not None else None
    as_of = _time(body, "as_of")
    remaining = body.get("remaining")
    if remaining is not None:
        if as_of is None:
            raise PlanError("plan_update.as_of", "is missing beside remaining (when was it true?)")
        if not isinstance(remaining, dict) or not all(
                isinstance(k, str) and not isinstance(v, bool) and isinstance(v, int) and 0 <= v <= MAX_PLAN_BYTES
                for k, v in remaining.items()):
            raise PlanError("plan_update.remaining", f"is not an object of rule id -> bytes 0-{MAX_PLAN_BYTES}")
    credits = _credits(body.get("credits"))
    if plan is None and remaining is None and not credits:
        raise PlanError("plan_update", "carries no plan, remaining or credits")
    return PlanUpdate(iccid, update_id, version, plan, dict(remaining) if remaining is not None else None, as_of,
                      credits)


def _time(body: dict[str, Any], key: str, where: str = "plan_update") -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_TIME:
        raise PlanError(f"{where}.{key}", f"is not UNIX seconds 0-{MAX_TIME}")
    return float(value)


def _credits(raw: Any) -> tuple[Credit, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PlanError("plan_update.credits", "is not a list")
    if len(raw) > MAX_CREDITS:
        raise PlanError("plan_update.credits", f"has more than {MAX_CREDITS} credits")
    out = []
    ids = set()
    for i, item in enumerate(raw):
        where = f"plan_update.credits[{i}]"
        if not isinstance(item, dict) or any(k not in CREDIT_KEYS for k in item):
            raise PlanError(where, "is not an object of id, kind, bytes, bought")
        cid = item.get("id")
        if not isinstance(cid, str) or not cid.isascii() or not ID_RE.fullmatch(cid) or cid in ids:
            raise PlanError(f"{where}.id", "is not a unique id of 1-64 letters, digits, '_', '.', ':' or '-'")
        ids.add(cid)
        if item.get("kind") not in CREDIT_KINDS:
            raise PlanError(f"{where}.kind", f"is not one of {list(CREDIT_KINDS)}")
        nbytes = item.get("bytes")
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or not 0 < nbytes <= MAX_PLAN_BYTES:
            raise PlanError(f"{where}.bytes", f"is not a whole number from 1 to {MAX_PLAN_BYTES}")
        bought = _time(item, "bought", where)
        if bought is None:
            raise PlanError(f"{where}.bought", "is missing")
        out.append(Credit(cid, item["kind"], nbytes, bought))
    return tuple(out)
