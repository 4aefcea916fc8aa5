"""The loop closed, live: a SIM policed to 128 kbps under bulk load is reported throttled
upstream in the contract's words, marked at the cloud, swapped away from, and never
assigned again (the 2020 failure, prevented)."""

from __future__ import annotations

import json
from typing import Any

from agent.cloud.schema import validate_event_data
from agent.health.event import EVENT_KEYS
from tests.lab.conftest import LAB_DIR, agent_status, event_data, lab, wait_until

RATE = 128
DETECTION_TIMEOUT = 60.0
"""The classifier's goal is under 20 s worst case; three times that before failing."""


def throttled_events(iccid: str) -> list[dict[str, Any]]:
    out = []
    for line in (LAB_DIR / "cloud" / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("kind") != "health":
            continue
        data = event["body"]["body"]["data"]
        if data.get("state") == "throttled" and data.get("iccid") == iccid:
            out.append(data)
    return out


def swaps_from(iccid: str) -> list[dict[str, Any]]:
    return [d for d in event_data("swap") if d["from_iccid"] == iccid and d["ok"] and d["reason"] == "throttled"]


def test_policed_sim_is_reported_marked_and_swapped_away(running_lab: dict[str, Any]) -> None:
    iccid = agent_status()["sim"]["iccid"]
    assert not throttled_events(iccid), "no throttled event before the carrier throttles"
    lab("traffic", "start", "--kind", "bulk", "--duration", "120")
    try:
        lab("throttle", "--rate", str(RATE))
        events = wait_until("a throttled health event at the cloud", lambda: throttled_events(iccid),
                            DETECTION_TIMEOUT)
        swaps = wait_until("a swap away from the throttled SIM", lambda: swaps_from(iccid), DETECTION_TIMEOUT)
    finally:
        lab("traffic", "stop")
    event = events[0]
    print(f"\nthrottled event: {event['kbps']} kbps ({event['mechanism']}) on {event['plmn']} cell {event['cell']} "
          f"since {event['since']}; swap {swaps[0]['phases_ms']} break {swaps[0]['break_ms']} ms")
    validate_event_data("health", event)
    assert set(event) == set(EVENT_KEYS)
    assert abs(event["kbps"] - RATE) <= 0.2 * RATE and event["mechanism"] == "policer"
    assert event["imsi"] and event["plmn"] == event["imsi"][:5]  # numeric network code, not "LAB MOBILE"
    assert event["cell"] is not None and event["since"].endswith("+09:00") and event["clock_trusted"]
    totals = json.loads((LAB_DIR / "cloud" / "totals.json").read_text())
    assert totals[iccid]["throttled"], "the cloud marked the SIM throttled"
    assert swaps[0]["reason"] == "throttled" and swaps[0]["to_iccid"] != iccid
    assert agent_status()["sim"]["iccid"] == swaps[0]["to_iccid"]
