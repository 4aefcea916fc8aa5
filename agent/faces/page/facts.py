"""The renter's facts, versioned: the daemon's ``renter`` answer in the page's own terms.

One document (``document()``) is both the JSON endpoint's body and what the HTML page is
drawn from, so the two can never disagree. It speaks in renter states, not the agent's
codes: ``state.code`` is one of ``STATE_CODES`` (stable, for a router's screen or LED
driver) and ``state.text`` the sentence for a person, in the chosen language. Its shape
is docs/status-page.md's; a change that breaks a reader bumps ``VERSION``.

Pure: no I/O, no clock (the daemon's answer carries its own ``wall``).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from agent.faces.page.words import NETWORK_NAMES, say
from agent.usage.allowance import human_bytes

VERSION = 1
STATE_CODES = ("full_speed", "connected", "slow_signal", "slow_busy", "slow_cap", "switching", "no_service",
               "starting", "stopped", "unknown")
BARS = {"excellent": 4, "good": 3, "fair": 2, "poor": 1}
"""Signal bars from the view's RSRP rating (agent/core/view.py ``signal_rating``): the four
steps operators' coverage maps draw; "no signal" is none."""
HEALTH_TO_STATE = {"ok": "full_speed", "idle": "full_speed", "throttled": "slow_cap", "poor_radio": "slow_signal",
                   "congested": "slow_busy", "no_service": "no_service"}
"""The classifier's states (agent/health/thresholds.py STATES) in the renter's words. Idle
is full speed: nobody asked for data, and the link was fine when they last did."""
SWAP_REASONS = ("allowance", "throttled", "command", "no_service", "auth_failed", "boot")
MIN_BACK_IN_S = 1


def zone(tz_offset: str) -> tuple[tzinfo, str]:
    """The plan's zone and its label ("JST" for +09:00, else "UTC+hh:mm")."""
    try:
        parsed = datetime.fromisoformat(f"2000-01-01T00:00:00{tz_offset}").tzinfo
    except ValueError:
        parsed = None
    offset = parsed.utcoffset(None) if parsed is not None else None
    if offset is None:
        return timezone(timedelta(hours=9)), "JST"
    if offset == timedelta(hours=9):
        return timezone(offset), "JST"
    return timezone(offset), f"UTC{tz_offset}"


def rate_text(kbps: float | None) -> str:
    if kbps is None:
        return "-"
    return f"{kbps / 1000:.1f} Mbit/s" if kbps >= 1000 else f"{kbps:.0f} kbit/s"


def _iso(wall: float | None, tz: tzinfo) -> str | None:
    return datetime.fromtimestamp(wall, tz).isoformat(timespec="seconds") if wall is not None else None


def _clock(wall: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(wall, tz).strftime("%H:%M")


def _state(r: dict[str, Any], lang: str, tz: tzinfo) -> dict[str, Any]:
    status, swap, health = r.get("state"), r.get("swap") or {}, r.get("health") or {}
    out: dict[str, Any]
    if swap.get("in_progress_s") is not None or status == "swapping":
        back = max(MIN_BACK_IN_S, round(float(swap.get("expected_break_s") or 0) - float(swap.get("in_progress_s") or 0)))
        return {"code": "switching", "back_in_s": back, "text": say(lang, "state.switching", seconds=back)}
    if status in (None, "starting"):
        code = "starting"
    elif status not in ("serving",):
        code = "stopped"
    else:
        code = HEALTH_TO_STATE.get(str(health.get("state")), "connected")
    out = {"code": code}
    if code == "no_service":
        since = r.get("no_service_since") if r.get("wall_trusted") else None
        out["since"] = _iso(since, tz)
        out["retrying"] = True
        text = say(lang, "state.no_service", since=_clock(since, tz)) if since is not None \
            else say(lang, "state.no_service_now")
        cause = health.get("cause")
        if cause in ("not_registered", "no_data"):
            text += ("" if lang == "ja" else " ") + say(lang, f"cause.{cause}")  # Japanese runs sentences on
        out["text"] = text
        return out
    out["text"] = say(lang, f"state.{code}")
    return out


def _when(wall: float, tz: tzinfo, lang: str, now: float | None = None) -> str:
    """A moment as a renter reads it: the time alone today, with the date otherwise."""
    local = datetime.fromtimestamp(wall, tz)
    if now is not None and local.date() == datetime.fromtimestamp(now, tz).date():
        return f"{local:%H:%M}"
    return f"{local:%b} {local.day} {local:%H:%M}" if lang == "en" else f"{local.month}月{local.day}日 {local:%H:%M}"


def _rate(lang: str, kbps: int | None) -> str:
    return say(lang, "data.rate", kbps=kbps) if kbps else say(lang, "data.low_speed")


def _window(lang: str, rule: dict[str, Any]) -> str:
    """"per month", "per 72 hours"...: the window in the words of a sentence about a cap."""
    return say(lang, f"window.{rule.get('window')}", hours=rule.get("hours") or 0)


def _rule(rule: dict[str, Any], lang: str, tz: tzinfo, zone_label: str, now: float) -> dict[str, Any]:
    out = {k: rule.get(k) for k in ("rule", "window", "hours", "action", "cap_bytes", "used_bytes", "left_bytes",
                                    "exceeded", "throttle_kbps", "nominal_kbps", "low")}
    out["resets_at"] = _iso(rule.get("resets_at"), tz)
    out["throttle_at"] = _iso(rule.get("throttle_at"), tz)
    window, cap, used = rule.get("window"), rule.get("cap_bytes"), rule.get("used_bytes")
    if window not in ("month", "day", "rolling") or cap is None:
        kbps = rule.get("nominal_kbps") or rule.get("throttle_kbps")
        out["text"] = say(lang, "data.none", kbps=kbps) if kbps else say(lang, "data.none_no_rate")
        return out
    hours = rule.get("hours") or 0
    if used is None:
        out["text"] = say(lang, "data.unknown_use", cap=human_bytes(cap), window=_window(lang, rule))
        return out
    reset = rule.get("resets_at")
    when = _when(reset, tz, lang) if reset is not None else ""
    figures = {"used": human_bytes(used), "cap": human_bytes(cap), "when": when, "zone": zone_label, "hours": hours}
    if rule.get("action") == "price_step":
        key = "data.price_step_passed" if rule.get("exceeded") else "data.price_step"
        out["text"] = say(lang, key, **figures)
        return out
    text = say(lang, f"data.{window}", **figures)
    if rule.get("exceeded"):
        extras = [say(lang, "data.used_up_until" if reset is not None else "data.used_up",
                      rate=_rate(lang, rule.get("throttle_kbps")), when=when)]
    else:
        extras = [say(lang, "data.left", left=human_bytes(rule.get("left_bytes"))),
                  say(lang, "data.after_cap", rate=_rate(lang, rule.get("throttle_kbps")))]
        if rule.get("throttle_at") is not None:
            extras.append(say(lang, "data.slow_at", when=_when(rule["throttle_at"], tz, lang, now)))
    out["text"] = f"{text}; {', '.join(extras)}" if lang == "en" else f"{text}（{'、'.join(extras)}）"
    return out


def _low(rules: list[dict[str, Any]], lang: str, tz: tzinfo, now: float) -> dict[str, Any] | None:
    """The low-allowance notice: the throttle rule nearest its cap among those below the
    renter's low mark (agent/plans/shown.py ``LOW_NOTICE_SHARE``), soonest by time when
    the rate says, else by the share left."""
    low = [r for r in rules if r.get("low") and r.get("cap_bytes")]
    if not low:
        return None
    rule = min(low, key=lambda r: (r.get("throttle_at") is None, r.get("throttle_at") or 0,
                                   (r.get("left_bytes") or 0) / r["cap_bytes"]))
    text = say(lang, "low.left", left=human_bytes(rule.get("left_bytes")), cap=human_bytes(rule["cap_bytes"]),
               window=_window(lang, rule))
    at = rule.get("throttle_at")
    if at is not None:
        text += ("" if lang == "ja" else " ") + say(lang, "low.at", when=_when(at, tz, lang, now))
    text += ("" if lang == "ja" else " ") + say(lang, "low.swap")
    return {"kind": "low_allowance", "rule": rule.get("rule"), "left_bytes": rule.get("left_bytes"),
            "cap_bytes": rule["cap_bytes"], "throttle_at": _iso(at, tz), "text": text}


def _signal(r: dict[str, Any], lang: str) -> dict[str, Any]:
    sig, plmn = r.get("signal") or {}, (r.get("network") or {}).get("plmn")
    registered = plmn is not None
    bars = BARS.get(str(sig.get("rating")), 0) if registered else 0
    name = NETWORK_NAMES.get(plmn or "", f"{plmn[:3]}-{plmn[3:]}" if plmn else None)
    return {"bars": bars, "network": name,
            "text": say(lang, "signal.bars", bars=bars) + " · " + (say(lang, "signal.network", name=name)
                                                                  if name else say(lang, "signal.no_network"))}


def _notice(r: dict[str, Any], lang: str) -> dict[str, Any] | None:
    swap = r.get("swap") or {}
    planned = swap.get("planned")
    if not planned or swap.get("in_progress_s") is not None:
        return None
    pause = max(1, round(float(swap.get("expected_break_s") or 0)))
    in_s = float(planned.get("in_s") or 0)
    minutes = max(1, round(in_s / 60))
    if in_s < 60:
        text = say(lang, "notice.planned_soon", pause=pause)
    elif planned.get("at_lull"):
        text = say(lang, "notice.planned_lull", pause=pause, minutes=minutes)
    else:
        text = say(lang, "notice.planned", pause=pause, minutes=minutes)
    return {"kind": "planned_swap", "reason": planned.get("reason"), "in_s": round(in_s),
            "at_lull": bool(planned.get("at_lull")), "pause_s": pause, "text": text}


def _last_swap(r: dict[str, Any], lang: str, tz: tzinfo) -> dict[str, Any] | None:
    last = (r.get("swap") or {}).get("last")
    if not last:
        return None
    seconds = round(float(last.get("break_ms") or 0) / 1000, 1)
    reason = last.get("reason") if last.get("reason") in SWAP_REASONS else "other"
    started = last.get("started")
    try:
        at = datetime.fromisoformat(started).astimezone(tz) if started else None
    except ValueError:
        at = None
    key = "swap.ok" if last.get("ok") else "swap.failed"
    text = say(lang, key, at=at.strftime("%H:%M") if at else "-", why=say(lang, f"why.{reason}"), seconds=seconds)
    return {"ok": bool(last.get("ok")), "reason": reason, "at": at.isoformat(timespec="seconds") if at else None,
            "break_s": seconds, "text": text}


def document(r: dict[str, Any], lang: str, brand: str = "", support_phone: str = "") -> dict[str, Any]:
    """The versioned document of docs/status-page.md from the daemon's ``renter`` answer."""
    tz, zone_label = zone(str(r.get("tz") or "+09:00"))
    wall = float(r.get("wall") or 0)
    sim = r.get("sim") or {}
    throughput = r.get("throughput") or {}
    rules = [_rule(rule, lang, tz, zone_label, wall) for rule in r.get("rules") or []]
    return {
        "version": VERSION,
        "lang": lang,
        "at": _iso(wall, tz) if r.get("wall_trusted") else None,
        "zone": zone_label,
        "brand": brand or say(lang, "default_brand"),
        "support_phone": support_phone or None,
        "state": _state(r, lang, tz),
        "signal": _signal(r, lang),
        "sim": {"ends_with": sim.get("iccid_tail"), "plan": sim.get("plan")} if not sim.get("seed") else None,
        "data": rules,
        "data_text": None if rules else say(lang, "data.no_plan"),
        "notice": _notice(r, lang),
        "low_allowance": _low(r.get("rules") or [], lang, tz, wall),
        "last_swap": _last_swap(r, lang, tz),
        "throughput": {"now_kbps": throughput.get("now_kbps"), "bucket_s": throughput.get("bucket_s"),
                       "day": throughput.get("day"), "today_kbps": list(throughput.get("today_kbps") or [])},
    }


def unavailable(lang: str, brand: str = "") -> dict[str, Any]:
    """The document while the daemon does not answer (starting, or busy beyond the bound)."""
    return {"version": VERSION, "lang": lang, "at": None, "zone": None, "brand": brand or say(lang, "default_brand"),
            "support_phone": None, "state": {"code": "unknown", "text": say(lang, "state.unknown")},
            "signal": None, "sim": None, "data": [], "data_text": None, "notice": None, "low_allowance": None,
            "last_swap": None, "throughput": None}
