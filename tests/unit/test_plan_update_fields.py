"""A plan update's fields (docs/protocol.md 4.3 step 2), read as the platform sent them or
refused naming the field (issue 22; issue 29's mutation run on agent/plans/update.py).

A refusal reaches the platform as an ``error`` event whose ``detail`` is the refusal's text
(agent/core/supervisor.py ``_plan_update``): the field and the rule are what an operator
reads to fix the update, so each is asserted exactly. The signature (step 1) and the
per-SIM checks (steps 3-5) are tests/unit/test_plan_update.py's."""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import PlanError
from agent.plans.allowance import Credit
from agent.plans.rules import MAX_PLAN_BYTES, parse_plan
from agent.plans.update import MAX_CREDITS, MAX_TIME, parse_update
from board.virtual.cloud.plans import MB, plan

ICCID = "8981100000001000019"
T0 = 1_768_089_600.0


def credit(**changes: Any) -> dict[str, Any]:
    return {"id": "t-1", "kind": "topup", "bytes": 500 * MB, "bought": T0, **changes}


def body(**fields: Any) -> dict[str, Any]:
    return {"iccid": ICCID, "update_id": "u-1", "version": 1, "credits": [credit()], **fields}


def credits(n: int) -> list[dict[str, Any]]:
    return [credit(id=f"t-{i}") for i in range(n)]


C0 = "plan_update.credits[0]"
CREDIT_ID = "is not a unique id of 1-64 letters, digits, '_', '.', ':' or '-'"
REFUSALS: list[tuple[str, Any, str, str]] = [
    ("not an object", [ICCID], "plan_update", "is not an object"),
    ("unknown field", body(colour="red"), "plan_update.<unknown>", "is not a field of the contract"),
    ("iccid missing", {k: v for k, v in body().items() if k != "iccid"}, "plan_update.iccid",
     "is not 18-20 digits starting 89"),
    ("iccid not starting 89", body(iccid="9981100000001000019"), "plan_update.iccid", "is not 18-20 digits starting 89"),
    ("iccid of 17 digits", body(iccid="89811000000010000"), "plan_update.iccid", "is not 18-20 digits starting 89"),
    ("iccid of 21 digits", body(iccid="898110000000100001912"), "plan_update.iccid", "is not 18-20 digits starting 89"),
    ("iccid with other digits", body(iccid="89811000000010000\u0661\u0669"), "plan_update.iccid",
     "is not 18-20 digits starting 89"),
    ("numeric iccid", body(iccid=8981100000001000019), "plan_update.iccid", "is not 18-20 digits starting 89"),
    ("empty update_id", body(update_id=""), "plan_update.update_id",
     "is not 1-64 letters, digits, '_', '.', ':' or '-'"),
    ("65-character update_id", body(update_id="u" * 65), "plan_update.update_id",
     "is not 1-64 letters, digits, '_', '.', ':' or '-'"),
    ("numeric update_id", body(update_id=1), "plan_update.update_id",
     "is not 1-64 letters, digits, '_', '.', ':' or '-'"),
    ("negative version", body(version=-1), "plan_update.version", "is not a non-negative integer"),
    ("boolean version", body(version=True), "plan_update.version", "is not a non-negative integer"),
    ("text version", body(version="2"), "plan_update.version", "is not a non-negative integer"),
    ("version missing", {k: v for k, v in body().items() if k != "version"}, "plan_update.version",
     "is not a non-negative integer"),
    ("a bad replacement plan", body(plan={"name": ""}), "plan_update.plan.name",
     "is not 1-64 printable ASCII characters"),
    ("as_of before 1970", body(as_of=-1), "plan_update.as_of", f"is not UNIX seconds 0-{MAX_TIME}"),
    ("as_of in milliseconds", body(as_of=MAX_TIME + 1), "plan_update.as_of", f"is not UNIX seconds 0-{MAX_TIME}"),
    ("as_of as a boolean", body(as_of=True), "plan_update.as_of", f"is not UNIX seconds 0-{MAX_TIME}"),
    ("as_of as text", body(as_of="now"), "plan_update.as_of", f"is not UNIX seconds 0-{MAX_TIME}"),
    ("remaining without as_of", body(remaining={"72h": 1}), "plan_update.as_of",
     "is missing beside remaining (when was it true?)"),
    ("remaining not an object", body(remaining=[1], as_of=T0), "plan_update.remaining",
     f"is not an object of rule id -> bytes 0-{MAX_PLAN_BYTES}"),
    ("remaining negative", body(remaining={"72h": -1}, as_of=T0), "plan_update.remaining",
     f"is not an object of rule id -> bytes 0-{MAX_PLAN_BYTES}"),
    ("remaining above 1 PB", body(remaining={"72h": MAX_PLAN_BYTES + 1}, as_of=T0), "plan_update.remaining",
     f"is not an object of rule id -> bytes 0-{MAX_PLAN_BYTES}"),
    ("remaining as a boolean", body(remaining={"72h": True}, as_of=T0), "plan_update.remaining",
     f"is not an object of rule id -> bytes 0-{MAX_PLAN_BYTES}"),
    ("remaining as text", body(remaining={"72h": "1"}, as_of=T0), "plan_update.remaining",
     f"is not an object of rule id -> bytes 0-{MAX_PLAN_BYTES}"),
    ("nothing to apply", body(credits=[]), "plan_update", "carries no plan, remaining or credits"),
    ("credits not a list", body(credits=credit()), "plan_update.credits", "is not a list"),
    ("17 credits", body(credits=credits(MAX_CREDITS + 1)), "plan_update.credits",
     f"has more than {MAX_CREDITS} credits"),
    ("credit not an object", body(credits=["t-1"]), C0, "is not an object of id, kind, bytes, bought"),
    ("credit with an unknown field", body(credits=[credit(price=5)]), C0,
     "is not an object of id, kind, bytes, bought"),
    ("credit id empty", body(credits=[credit(id="")]), f"{C0}.id", CREDIT_ID),
    ("credit id numeric", body(credits=[credit(id=7)]), f"{C0}.id", CREDIT_ID),
    ("credit id repeated", body(credits=[credit(), credit()]), "plan_update.credits[1].id", CREDIT_ID),
    ("credit of an unknown kind", body(credits=[credit(kind="gift")]), f"{C0}.kind",
     "is not one of ['topup', 'addon']"),
    ("credit of 0 bytes", body(credits=[credit(bytes=0)]), f"{C0}.bytes",
     f"is not a whole number from 1 to {MAX_PLAN_BYTES}"),
    ("credit above 1 PB", body(credits=[credit(bytes=MAX_PLAN_BYTES + 1)]), f"{C0}.bytes",
     f"is not a whole number from 1 to {MAX_PLAN_BYTES}"),
    ("credit bytes as a boolean", body(credits=[credit(bytes=True)]), f"{C0}.bytes",
     f"is not a whole number from 1 to {MAX_PLAN_BYTES}"),
    ("credit bytes as text", body(credits=[credit(bytes="5")]), f"{C0}.bytes",
     f"is not a whole number from 1 to {MAX_PLAN_BYTES}"),
    ("credit bought missing", body(credits=[{"id": "t-1", "kind": "topup", "bytes": 1}]), f"{C0}.bought",
     "is missing"),
    ("credit bought in milliseconds", body(credits=[credit(bought=T0 * 1000)]), f"{C0}.bought",
     f"is not UNIX seconds 0-{MAX_TIME}"),
]


@pytest.mark.parametrize(("update", "field", "rule"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_each_refusal_names_the_field_and_the_rule_broken(update: Any, field: str, rule: str) -> None:
    with pytest.raises(PlanError) as caught:
        parse_update(update)
    assert (caught.value.field, str(caught.value), caught.value.reason) == (field, f"plan field {field!r} {rule}",
                                                                            "plan")


def test_a_top_up_reads_as_sent() -> None:
    got = parse_update(body(version=0))
    assert (got.iccid, got.update_id, got.version, got.plan, got.remaining, got.as_of) == (ICCID, "u-1", 0, None,
                                                                                           None, None)
    assert got.credits == (Credit("t-1", "topup", 500 * MB, T0),)


def test_every_bound_is_inclusive() -> None:
    low = parse_update(body(iccid="8" + "9" + "0" * 16, update_id="u", remaining={"72h": 0}, as_of=0,
                            credits=[credit(id="a", kind="addon", bytes=1, bought=0)]))
    assert (low.iccid, low.update_id, low.remaining, low.as_of) == ("890000000000000000", "u", {"72h": 0}, 0.0)
    assert low.credits == (Credit("a", "addon", 1, 0.0),)
    high = parse_update(body(iccid="89" + "1" * 18, update_id="u" * 64, remaining={"72h": MAX_PLAN_BYTES},
                             as_of=MAX_TIME, credits=[credit(id="c" * 64, bytes=MAX_PLAN_BYTES, bought=MAX_TIME)]))
    assert (high.iccid, high.update_id, high.remaining, high.as_of) == ("89" + "1" * 18, "u" * 64,
                                                                        {"72h": MAX_PLAN_BYTES}, float(MAX_TIME))
    assert high.credits == (Credit("c" * 64, "topup", MAX_PLAN_BYTES, float(MAX_TIME)),)
    assert len(parse_update(body(credits=credits(MAX_CREDITS))).credits) == MAX_CREDITS


def test_a_corrected_remaining_alone_or_a_plan_alone_is_an_update() -> None:
    corrected = parse_update(body(credits=None, remaining={"72h": 5 * MB}, as_of=T0 + 0.5))
    assert (corrected.remaining, corrected.as_of, corrected.credits) == ({"72h": 5 * MB}, T0 + 0.5, ())
    replaced = parse_update(body(credits=[], plan=plan("5GB-month")))
    assert replaced.plan == parse_plan(plan("5GB-month")) and replaced.remaining is None
    assert isinstance(corrected.as_of, float) and isinstance(parse_update(body(as_of=5)).as_of, float)


def test_credits_keep_their_order_and_kinds() -> None:
    got = parse_update(body(credits=[credit(id="a-1", kind="addon", bytes=2), credit(id="t-2", bytes=3, bought=T0 + 9)]))
    assert got.credits == (Credit("a-1", "addon", 2, T0), Credit("t-2", "topup", 3, T0 + 9))
