"""Plans in the whole lab (issue 22): the pool holds every plan of domain.md's table, the
carrier applies each rule on lab time, and the device swaps before a rule's cap.

This module brings up its own lab (``pocket-lab up --plans table``) and gives the session's
lab back afterwards. Measured on the lab's 50 Mbit/s cell with bulk load: a 100 MB / 3 days
SIM lasts ~16 s; the device swaps ~4 s before its cap (``CAP_MARGIN_S``). The larger caps
are reached the way a shared SIM reaches a router: most of the rule already used in other
routers (``pocket-lab used-elsewhere``: the carrier, the cloud and the device all count
those bytes), so each test is a minute of lab time, moved with ``pocket-lab clock`` where a
window must turn (a JST midnight, 72 hours)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from board.virtual.cloud.plans import GB, MB
from tests.lab.conftest import (
    LAB_DIR,
    agent_status,
    control,
    event_data,
    keep_logs,
    lab,
    lab_json,
    lab_needed_after,
    set_policy,
    wait_until,
)

CAP = 100 * MB
DEVICE_VS_CARRIER_BYTES = 64 * 1024
"""How far the device's 72-hour count of the SIM in use may be from the carrier's once the
load stopped: the meter's last unread second plus its header estimate (docs/usage.md);
measured 116 bytes on the first run."""


@pytest.fixture(scope="module")
def plan_lab(running_lab: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    lab("traffic", "stop", check=False)
    lab("down", check=False)
    lab("up", "--plans", "table", timeout=240)
    try:
        yield lab_json("status")
    finally:
        lab("traffic", "stop", check=False)
        keep_logs("plans")
        if lab_needed_after(request):
            lab("down", check=False)
            lab("up", timeout=240)  # the session's lab, as the other modules expect it


def pool_plans() -> dict[str, str]:
    pool = json.loads((LAB_DIR / "pool.json").read_text())
    return {s["iccid"]: s["plan"]["name"] for s in pool["sims"]}


def carrier_count(iccid: str) -> int:
    counts = lab_json("usage")[iccid]["carrier"]
    return int(counts["up"]) + int(counts["down"])


def on_plan(name: str) -> dict[str, Any] | None:
    status = agent_status()
    sim = status.get("sim") or {}
    rows = status.get("allowance") or []
    return status if (sim.get("plan") or {}).get("name") == name and rows else None


def test_a_100mb_3day_sim_is_swapped_before_its_72_hour_cap(plan_lab: dict[str, Any]) -> None:
    seen = len(event_data("health"))  # the flat plan's policed SIM, reported before
    set_policy(max_per_hour=30)
    lab("swap", "--plan", "100MB-3days")
    wait_until("the device on a 100 MB / 3 days SIM", lambda: on_plan("100MB-3days"), 60)
    lab("traffic", "start", "--kind", "bulk", "--duration", "60")
    try:
        wait_until("two swaps before the cap", lambda: len([e for e in event_data("swap")
                                                             if e.get("reason") == "allowance" and e.get("ok")]) >= 2,
                   90)
    finally:
        lab("traffic", "stop")
    plans = pool_plans()
    swapped = [e for e in event_data("swap") if e.get("reason") == "allowance"]
    assert all(plans[e["from_iccid"]] == "100MB-3days" for e in swapped)
    for iccid, name in plans.items():  # the carrier never counted one byte past a cap it polices at
        if name == "100MB-3days":
            assert carrier_count(iccid) <= CAP, iccid
    assert not [h for h in event_data("health")[seen:] if h.get("state") == "throttled"]
    current = wait_until("the meter settled", lambda: on_plan("100MB-3days"), 30)
    iccid = current["sim"]["iccid"]
    device = current["allowance"][0]["used"]
    assert current["allowance"][0]["rule"] == "72h"
    assert abs(device - carrier_count(iccid)) <= DEVICE_VS_CARRIER_BYTES


def test_the_carrier_throttles_at_the_cap_and_lifts_72_lab_hours_later(plan_lab: dict[str, Any]) -> None:
    """With the device kept from swapping (its hourly limit spent), the carrier polices the
    SIM past 100 MB: the device reports the rule it believes was hit; 72 hours of lab time
    later the rule has drained, the carrier lifts it and the device counts afresh."""
    seen = len(event_data("health"))
    set_policy(max_per_hour=1)  # the swaps of the test before spent it
    status = wait_until("on a 100 MB / 3 days SIM", lambda: on_plan("100MB-3days"), 30)
    iccid = status["sim"]["iccid"]
    lab("traffic", "start", "--kind", "bulk", "--duration", "60")
    try:
        throttled = wait_until("a throttled event", lambda: [h for h in event_data("health")[seen:]
                                                            if h.get("state") == "throttled"], 90)
    finally:
        lab("traffic", "stop")
    assert throttled[0]["iccid"] == iccid and throttled[0]["rule"] == "72h"
    assert throttled[0]["no_rule_explains"] is False
    assert carrier_count(iccid) > CAP
    lab("clock", "--advance", str(72 * 3600 + 60))
    wait_until("the carrier lifting the 72-hour rule",
               lambda: "policer lifted" in (LAB_DIR / "logs" / "labd.log").read_text(), 30)
    wait_until("the device's 72-hour count drained",
               lambda: (on_plan("100MB-3days") or {}).get("allowance", [{}])[0].get("used", CAP) < MB, 30)


FLAT_SERVE_S = float(os.environ.get("POCKET_FLAT_SERVE_S", "120"))
"""How long the flat-rate SIM is served under load with no swap and no throttled event.
Issue 22 asks for 10 minutes: ``make soak`` runs this test with 600 (``POCKET_FLAT_SERVE_S``);
``make test`` keeps two, within issue 21's ten minutes for the whole suite, since the verdict
needs only seconds (the classifier decides within ~10 s of a flat ceiling)."""


def test_a_flat_200_kbps_sim_is_served_at_its_rate_and_reported_when_policed_below(
        plan_lab: dict[str, Any]) -> None:
    """After the 72-hour tests on purpose: their lab clock is 72 hours ahead of the host's.
    The reference cloud sealed its envelopes on the host's clock, so the device (on lab
    time) refused every assignment as expired: the 200 kbps SIM was found, sealed and
    refused (fixed: the cloud lives on lab time, board/virtual/network/labclock.py
    ``LabClock``)."""
    set_policy(max_per_hour=30)
    lab("swap", "--plan", "200kbps")
    flat = wait_until("the device on the 200 kbps plan",
                      lambda: (agent_status().get("sim") or {}).get("plan", {}).get("name") == "200kbps"
                      and agent_status()["sim"]["iccid"], 60)
    wait_until("the carrier holding it at 200 kbps",
               lambda: "held at its nominal rate" in (LAB_DIR / "logs" / "labd.log").read_text(), 30)
    seen = len(event_data("health"))
    lab("traffic", "start", "--kind", "bulk", "--duration", str(FLAT_SERVE_S + 60))
    try:
        wait_until("a flat ceiling judged", lambda: (agent_status().get("health") or {}).get("state") is not None, 60)
        time.sleep(FLAT_SERVE_S)  # the lab's own time passing under load: nothing to await but its end
        health = event_data("health")[seen:]
        assert not [h for h in health if h.get("state") == "throttled"]
        assert not [e for e in event_data("swap") if e.get("from_iccid") == flat]
        lab("throttle", "--rate", "32")  # the carrier polices the flat plan below what it sells
        report = wait_until("the 32 kbps throttle reported",
                            lambda: [h for h in event_data("health")[seen:]
                                     if h.get("state") == "throttled" and h.get("iccid") == flat], 90)
    finally:
        lab("traffic", "stop")
    assert report[0]["kbps"] < 40 and report[0]["no_rule_explains"] is True and report[0]["rule"] is None
    state = json.loads((LAB_DIR / "cloud" / "state.json").read_text())
    assert state["sims"][flat]["contract_changed"] is True
    assert flat in [e["iccid"] for flagged in state["contracts_changed"].values() for e in flagged]


# ---- every plan of the table before its cap, with bytes used in other routers ------------------
LEFT_AT_START = 150 * MB
"""What the SIM has left when its test's traffic starts: the rest of the cap was used in
other routers (``pocket-lab used-elsewhere``), so each plan's cap is seconds away on the
lab's 50 Mbit/s cell instead of hours (25 s at bulk load)."""
CHECK_S = 2.0
"""The lab carrier's cap check (board/virtual/lab/daemon.py CAP_CHECK_SECONDS)."""


def lab_now() -> datetime:
    return datetime.fromisoformat(json.loads(lab("clock", "--json").stdout)["jst"])


def room_in_month(hours: float) -> None:
    """Lab time at least ``hours`` (and a margin) past its month's start, and not in the last
    day of the month: bytes used ``hours`` ago fall in this month, and no month start
    comes during the test. Lab time only moves forward."""
    now = lab_now()
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if now - first < timedelta(hours=hours + 2):
        lab("clock", "--to", (first + timedelta(hours=hours + 3)).isoformat())
    elif (now + timedelta(days=1)).month != now.month:
        lab("clock", "--to", (now + timedelta(days=1, hours=hours + 3)).replace(day=1).isoformat())
        room_in_month(hours)


def away_from_midnight() -> None:
    """Not within the last 20 minutes of a JST day: a day rule resetting within 15 minutes
    is no reason to swap (agent/plans/predict.py RESET_SOON_S), which is not what these
    tests look at."""
    now = lab_now()
    if now.hour == 23 and now.minute >= 40:
        lab("clock", "--to", (now + timedelta(hours=1)).replace(minute=5, second=0, microsecond=0).isoformat())


def put_on(plan: str) -> dict[str, Any]:
    """The device on a fresh SIM of ``plan``, with its allowance rows."""
    set_policy(max_per_hour=30)
    before = (agent_status().get("sim") or {}).get("iccid")
    lab("swap", "--plan", plan)
    return wait_until(f"the device on a fresh {plan} SIM",
                      lambda: (s := on_plan(plan)) and s["sim"]["iccid"] != before and s, 90)


def row(rule: str) -> dict[str, Any]:
    return next(r for r in agent_status().get("allowance") or [] if r["rule"] == rule)


def log_since(name: str, offset: int) -> str:
    return (LAB_DIR / "logs" / name).read_text()[offset:]


def log_size(name: str) -> int:
    return len((LAB_DIR / "logs" / name).read_text())


@pytest.mark.parametrize(("plan", "rule", "cap", "ago_h"), [
    ("monthly-100GB", "month", 100 * GB, 0),
    ("5GB-month", "72h", 800 * MB, 0),
    ("5GB-month", "month", 5 * GB, 80),  # used more than 72 h ago: the month rule alone is near
    ("10GB-month", "72h", 2 * GB, 0),
    ("daypass-3GB", "day", 3 * GB, 0),
])
def test_each_capped_plan_is_swapped_before_the_rule_its_use_is_near(plan_lab: dict[str, Any], plan: str,
                                                                   rule: str, cap: int, ago_h: float) -> None:
    """The rest of the rule's cap used in other routers, the device told by a signed plan
    update; under bulk load it swaps in time, for the rule the bytes are near (its log
    names it), and the carrier, which counts the same bytes, never polices the SIM."""
    room_in_month(ago_h)
    away_from_midnight()
    seen, agent_at, labd_at = len(event_data("health")), log_size("agent.log"), log_size("labd.log")
    iccid = put_on(plan)["sim"]["iccid"]
    lab("used-elsewhere", str(cap - LEFT_AT_START), "--ago", str(ago_h * 3600))
    wait_until(f"the device's {rule} rule told", lambda: row(rule)["remaining"] <= LEFT_AT_START, 30)
    # the renter's page: every rule of the plan, and the low-allowance notice for this one
    page = json.loads(lab("page", "--json").stdout)
    assert [d["rule"] for d in page["data"]] == [r["rule"] for r in agent_status()["allowance"]]
    assert page["low_allowance"]["rule"] == rule and page["low_allowance"]["left_bytes"] <= LEFT_AT_START
    assert json.loads(lab("page", "--json", "--lang", "ja").stdout)["low_allowance"]["text"].startswith(
        "データ残量が少なくなっています")
    lab("traffic", "start", "--kind", "bulk", "--duration", "90")
    try:
        swap = wait_until("a swap before the cap", lambda: [e for e in event_data("swap") if e.get("from_iccid") == iccid
                                                             and e.get("ok")], 90)
    finally:
        lab("traffic", "stop")
    assert swap[0]["reason"] == "allowance"
    assert re.search(rf"swap policy: allowance \(\d+ bytes left under rule {rule}[;)]", log_since("agent.log", agent_at))
    assert carrier_count(iccid) <= cap  # a fresh SIM: its lifetime count is the window's
    assert iccid not in log_since("labd.log", labd_at)  # never policed (nor held) by the carrier
    assert not [h for h in event_data("health")[seen:] if h.get("state") == "throttled"]


def test_a_tiered_sim_past_a_price_step_is_never_slowed_nor_swapped(plan_lab: dict[str, Any]) -> None:
    seen, labd_at = len(event_data("health")), log_size("labd.log")
    iccid = put_on("tiered")["sim"]["iccid"]
    lab("used-elsewhere", str(GB + 200 * MB))
    lab("traffic", "start", "--kind", "bulk", "--duration", "60")
    try:
        wait_until("the 1 GB step passed on the device", lambda: row("step-1gb")["exceeded"], 30)
        steps = wait_until("60 MB more of bulk load past the step", lambda: row("step-1gb")["used"]
                           >= GB + 260 * MB and agent_status()["allowance"], 60)
    finally:
        lab("traffic", "stop")
    assert [r["rule"] for r in steps if r["exceeded"]] == ["step-1gb"]
    assert agent_status()["sim"]["iccid"] == iccid
    assert not [e for e in event_data("swap") if e.get("from_iccid") == iccid]
    assert not [h for h in event_data("health")[seen:] if h.get("state") == "throttled"]
    assert iccid not in log_since("labd.log", labd_at)


def test_a_day_pass_used_up_resets_at_jst_midnight(plan_lab: dict[str, Any]) -> None:
    """Kept on the SIM (its hourly swaps spent), the day pass over its 3 GB is policed at
    384 kbps; at the next JST midnight of lab time the carrier lifts it and the device
    counts the new day from zero."""
    away_from_midnight()
    labd_at = log_size("labd.log")
    iccid = put_on("daypass-3GB")["sim"]["iccid"]
    set_policy(max_per_hour=1)
    lab("used-elsewhere", str(3 * GB + 10 * MB))
    wait_until("the carrier policing the day rule", lambda: f"{iccid} over rule day: policing to 384 kbps"
               in log_since("labd.log", labd_at), 30)
    assert wait_until("the device's day rule exceeded", lambda: row("day")["exceeded"], 30)
    midnight = (lab_now() + timedelta(days=1)).replace(hour=0, minute=0, second=30, microsecond=0)
    lab("clock", "--to", midnight.isoformat())
    wait_until("the carrier lifting it at midnight", lambda: f"{iccid} back under every rule of daypass-3GB"
               in log_since("labd.log", labd_at), 30)
    day = wait_until("the device's new day", lambda: (r := row("day")) and r["used"] < MB and r, 30)
    assert not day["exceeded"] and day["resets_at"].startswith((midnight + timedelta(days=1)).date().isoformat())


def test_a_top_up_lifts_the_month_rule_never_the_72_hour_rule(plan_lab: dict[str, Any]) -> None:
    """domain.md: top-ups "do not lift a 72-hour limit". The 5 GB plan over both rules (5.1 GB
    used elsewhere four days ago, 850 MB now); a 1 GB top-up bought now: the device's month
    rule is back under its cap, its 72-hour rule still over; the carrier keeps policing until
    the 850 MB age out of the 72 hours, and then lifts, which it would not do without the
    top-up (the month would still be at 5.95 GB of 5 GB)."""
    room_in_month(96)
    labd_at = log_size("labd.log")
    iccid = put_on("5GB-month")["sim"]["iccid"]
    set_policy(max_per_hour=1)  # kept on this SIM: the swaps of the tests before spent it
    lab("used-elsewhere", str(5100 * MB), "--ago", str(96 * 3600))
    lab("used-elsewhere", str(850 * MB))
    wait_until("the carrier policing the SIM", lambda: f"{iccid} over rule" in log_since("labd.log", labd_at), 30)
    wait_until("both rules over on the device", lambda: row("month")["exceeded"] and row("72h")["exceeded"], 30)
    lab("plan-update", "--topup", str(GB))
    month = wait_until("the month rule lifted by the top-up", lambda: (r := row("month")) and not r["exceeded"] and r,
                       30)
    assert month["cap"] == 6 * GB and row("72h")["exceeded"] and row("72h")["cap"] == 800 * MB
    policed_at = log_size("labd.log")
    time.sleep(3 * CHECK_S)  # the absence of a lift: three of the carrier's checks, nothing to await
    assert "policer lifted" not in log_since("labd.log", policed_at)
    lab("clock", "--advance", str(72 * 3600 + 120))
    wait_until("the carrier lifting once the 850 MB aged out",
               lambda: f"{iccid} back under every rule of 5GB-month" in log_since("labd.log", policed_at), 30)
    wait_until("the device's rules both under their caps again (its status file is rewritten every few seconds)",
               lambda: not row("72h")["exceeded"] and not row("month")["exceeded"], 30)


RESTART_AT = 0.9
"""The share of the cap used when the agent restarts (issue 22: "a restart at 90 % of a cap")."""


def test_a_restart_at_90_percent_of_a_cap_keeps_the_allowance(plan_lab: dict[str, Any]) -> None:
    """Real traffic to 90 % of a 100 MB / 3 days SIM (the device kept on it), then the agent
    restarts: it resumes the same SIM with the same count, the carrier's to within the
    meter's granularity, never the assignment's number again."""
    iccid = put_on("100MB-3days")["sim"]["iccid"]
    set_policy(max_per_hour=1)
    # the SIM may have carried bytes in an earlier test (the pool's freshest 100 MB SIM):
    # the device's and the carrier's counts are compared by what they add from here
    device0, carrier0 = row("72h")["used"], carrier_count(iccid)
    lab("traffic", "start", "--kind", "bulk", "--duration", "60")
    try:  # the daemon's own figure, on demand (the status file is two seconds behind: 12 MB at bulk load)
        wait_until("90 % of the cap used", lambda: control(plan_lab, "status")["allowance"][0]["used_bytes"]
                   >= RESTART_AT * CAP, 60, interval=0.2)
    finally:
        lab("traffic", "stop")
    def against_carrier(used: int) -> int:
        return abs((used - device0) - (carrier_count(iccid) - carrier0))

    settled = wait_until("the meter settled on the carrier's count",
                         lambda: against_carrier(row("72h")["used"]) <= DEVICE_VS_CARRIER_BYTES and row("72h"), 30)
    assert settled["used"] >= RESTART_AT * CAP
    lab("agent", "restart")
    after = wait_until("the agent back on the same SIM", lambda: (s := on_plan("100MB-3days"))
                       and s["sim"]["iccid"] == iccid and s.get("state") == "serving" and s, 120)
    [rule] = after["allowance"]
    assert abs(rule["used"] - settled["used"]) <= DEVICE_VS_CARRIER_BYTES  # the agent's own reports since
    assert against_carrier(rule["used"]) <= DEVICE_VS_CARRIER_BYTES
