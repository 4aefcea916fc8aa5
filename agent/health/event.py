"""The health event upstream, in the contract's words (agent/cloud/schema.py HEALTH).

Pure: it is handed the classifier's decision, the SIM in use, the serving network as the
modem reported it and the clock, and returns the body the cloud validates. Two things
the platform depends on are decided here: the network is an MCC-MNC code (the numeric
``+COPS`` format), never an operator's display name, and ``since`` is wall time with its
UTC offset only while the wall clock is trusted; otherwise it is null and ``age_s``
(monotonic, always right) says how long ago the state began.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from agent.clock import JST, Clock
from agent.cloud.schema import PLMN_RE


def numeric_plmn(value: Any) -> str | None:
    """The MCC-MNC if ``value`` is one (``"44010"``), else None (a name is no network code)."""
    text = str(value or "").strip().strip('"')
    return text if PLMN_RE.match(text) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def health_event(change: Any, *, sample_t: float, sim: dict[str, Any] | None, network: dict[str, Any],
                 clock: Clock, tz: timezone = JST) -> dict[str, Any]:
    """The ``health`` event data for ``change`` (a classifier ``StateChange``).

    ``sample_t`` is the sample clock's "now" (the same clock as ``change.t``), so the age
    of the state is exact whatever the wall clock does.
    """
    sim = sim or {}
    onset = change.onset_t if change.onset_t is not None else change.t
    age = max(0.0, round(sample_t - onset, 3))
    trusted = clock.wall_trusted()
    since = (datetime.fromtimestamp(clock.wall() - age, tz).isoformat(timespec="seconds")
             if trusted else None)
    evidence = dict(change.evidence or {})
    mechanism = evidence.get("mechanism") if change.state == "throttled" else None
    return {
        "state": change.state,
        "iccid": sim.get("iccid"),
        "imsi": sim.get("imsi"),
        "plmn": numeric_plmn(network.get("plmn")),
        "cell": _text(network.get("cell")),
        "tac": _text(network.get("tac")),
        "act": _text(network.get("act")),
        "kbps": None if change.rate_kbps is None else round(float(change.rate_kbps), 1),
        "mechanism": mechanism if mechanism in ("policer", "shaper") else None,
        "since": since,
        "age_s": age,
        "clock_trusted": trusted,
        "previous": change.previous,
        "evidence": evidence,
    }


def status_event(state: str, *, sim: dict[str, Any] | None, clock: Clock, evidence: dict[str, Any],
                 network: dict[str, Any] | None = None, tz: timezone = JST) -> dict[str, Any]:
    """A health event that is not a classifier decision (e.g. ``modem_recovered``): it
    begins now."""
    sim, network = sim or {}, network or {}
    trusted = clock.wall_trusted()
    return {
        "state": state, "iccid": sim.get("iccid"), "imsi": sim.get("imsi"),
        "plmn": numeric_plmn(network.get("plmn")), "cell": _text(network.get("cell")),
        "tac": _text(network.get("tac")), "act": _text(network.get("act")), "kbps": None, "mechanism": None,
        "since": datetime.fromtimestamp(clock.wall(), tz).isoformat(timespec="seconds") if trusted else None,
        "age_s": 0.0, "clock_trusted": trusted, "previous": None, "evidence": dict(evidence),
    }
