"""Valid event bodies for tests, built the one way the contract says (agent/cloud/schema.py)."""

from __future__ import annotations

from typing import Any

from agent.cloud.schema import HEALTH_STATES


def health(state: str = "ok", iccid: str | None = None, **fields: Any) -> dict[str, Any]:
    """A health body that validates: the given state and SIM, everything else unknown."""
    assert state in HEALTH_STATES, state
    body: dict[str, Any] = {"state": state, "iccid": iccid, "imsi": None, "plmn": "44010", "cell": None,
                            "tac": None, "act": 7, "kbps": None, "mechanism": None,
                            "since": "2026-01-01T00:00:00+09:00", "age_s": 0.0, "clock_trusted": True,
                            "previous": None, "evidence": {}}
    if state == "throttled":  # the contract: a throttled report names the SIM (iccid, imsi) and its rate
        body.update(imsi="440100000100001", kbps=128.0, mechanism="policer")
    body.update(fields)
    return body


def outage(cause: str = "radio", start: float = 1_767_193_200.0, end: float | None = None) -> dict[str, Any]:
    """An outage interval body (unix seconds) that validates."""
    return {"id": 1, "kind": "no_service", "cause": cause, "start": start, "end": end,
            "duration_s": None if end is None else end - start, "wall_trusted": True}
