"""Issue 5 live: a SIM policed to 128 kbps under bulk load is reported throttled upstream."""

from __future__ import annotations

import json
from typing import Any

from agent.health.event import EVENT_KEYS
from tests.lab.conftest import LAB_DIR, lab, wait_until

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


def test_policed_sim_under_bulk_load_is_reported_throttled(running_lab: dict[str, Any]) -> None:
    status = json.loads((LAB_DIR / "agent" / "status.json").read_text())
    iccid = status["sim"]["iccid"]
    assert not throttled_events(iccid), "no throttled event before the carrier throttles"
    lab("traffic", "start", "--kind", "bulk", "--duration", "120")
    try:
        lab("throttle", "--rate", str(RATE))
        events = wait_until("a throttled health event at the cloud", lambda: throttled_events(iccid),
                            DETECTION_TIMEOUT)
    finally:
        lab("traffic", "stop")
        lab("throttle", "--off")
    event = events[0]
    print(f"\nthrottled event: rate {event['kbps']} kbps, evidence {event['evidence']}")
    assert set(event) == set(EVENT_KEYS)
    assert abs(event["kbps"] - RATE) <= 0.2 * RATE and event["mechanism"] == "policer"
    assert event["cell"] is not None and event["imsi"] and event["plmn"] and event["plmn"].isdigit()
