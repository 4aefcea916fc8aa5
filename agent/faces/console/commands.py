"""The console's commands: one declaration each (name, help, control op, privilege, text).

Adding a command is one ``Command`` in ``COMMANDS``: ``help`` lists it, the session
dispatches it, ``--json`` prints the control op's result as one JSON object, and the
text renderer turns the same result into lines for a human. Renderers are pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.usage.allowance import human_bytes

LOG_DEFAULT = 20
LOG_MAX = 500
"""Lines ``log`` shows by default and at most (the daemon keeps a ring of this many)."""


class UsageError(Exception):
    """The command line does not fit the command; the message is the fix."""


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    details: str
    op: str | None
    """The control op that answers it (None: handled by the session itself)."""
    privileged: bool = False
    args: Callable[[list[str], str], dict[str, Any]] = lambda words, rest: _no_args(words)
    render: Callable[[dict[str, Any]], list[str]] = lambda result: _kv(result)


def _no_args(words: list[str]) -> dict[str, Any]:
    if words:
        raise UsageError(f"takes no arguments (got {words[0]!r})")
    return {}


def _log_args(words: list[str], rest: str) -> dict[str, Any]:
    if not words:
        return {"n": LOG_DEFAULT}
    if len(words) > 1 or not words[0].isdigit() or not 1 <= int(words[0]) <= LOG_MAX:
        raise UsageError(f"log [N]: N is a number from 1 to {LOG_MAX}")
    return {"n": int(words[0])}


def _trace_args(words: list[str], rest: str) -> dict[str, Any]:
    if words not in (["start"], ["stop"]):
        raise UsageError("trace start|stop")
    return {"action": words[0]}


def _at_args(words: list[str], rest: str) -> dict[str, Any]:
    if not rest:
        raise UsageError("at <command>, e.g. at +CESQ")
    command = rest if rest.upper().startswith("AT") else "AT" + rest
    return {"command": command}


def _swap_args(words: list[str], rest: str) -> dict[str, Any]:
    return {"reason": "technician" + (f": {rest}" if rest else "")}


def _signal_args(words: list[str], rest: str) -> dict[str, Any]:
    if words not in ([], ["watch"]):
        raise UsageError("signal [watch]")
    return {}


# ---- text renderers ----------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "-"
    return str(value)


def _kv(result: dict[str, Any]) -> list[str]:
    width = max((len(k) for k in result), default=0)
    return [f"{k:<{width}}  {_fmt(v)}" for k, v in result.items()]


def _signal_line(sig: dict[str, Any]) -> str:
    parts = [f"{label} {sig[key]:.0f} {unit}" for key, label, unit in
             (("rsrp_dbm", "RSRP", "dBm"), ("rsrq_db", "RSRQ", "dB"), ("sinr_db", "SINR", "dB"),
              ("rssi_dbm", "RSSI", "dBm")) if sig.get(key) is not None]
    return f"{sig.get('rating', 'unknown')}: " + (", ".join(parts) or "no measurement")


def render_status(r: dict[str, Any]) -> list[str]:
    sim = r.get("sim") or {}
    cls = r.get("classification") or {}
    thr = r.get("throughput") or {}
    lines = [
        f"device      {r.get('device_id')}   state {r.get('state')}",
        f"SIM         {sim.get('iccid', '-')} (IMSI {sim.get('imsi', '-')}, slot {sim.get('slot', '-')}"
        f"{', bootstrap SIM' if sim.get('seed') else ''})" if sim else "SIM         none assigned",
        f"operator    {_fmt(r.get('operator'))}   radio {_fmt(r.get('technology'))}",
        f"signal      {_signal_line(r.get('signal') or {})}",
        f"address     {_fmt(r.get('address'))}",
        f"throughput  down {_fmt(thr.get('rx_kbps'))} kbit/s, up {_fmt(thr.get('tx_kbps'))} kbit/s",
        f"link        {cls.get('state', 'unknown')}" + (f" at {cls['rate_kbps']:.0f} kbit/s"
                                                        if cls.get("rate_kbps") else ""),
        f"why         {cls.get('why') or '-'}",
        f"cloud       {'connected' if (r.get('cloud') or {}).get('connected') else 'not connected'}",
    ]
    lines += [f"data        {_allowance_line(rule)}" for rule in r.get("allowance") or []]
    return lines + ([_update_line(r["update"])] if r.get("update") else [])


def _update_line(update: dict[str, Any]) -> str:
    """The running version and any update in progress (agent/core/updater.py ``summary``)."""
    line = f"version     {update.get('running')}"
    if update.get("phase") not in (None, "idle"):
        line += f"; update to {update.get('version')}: {update['phase']}"
        if update.get("size"):
            line += f" {update.get('have', 0)}/{update['size']} bytes"
        if update.get("deferred"):
            line += f", waiting ({update['deferred']})"
    return line


def _allowance_line(rule: dict[str, Any]) -> str:
    """One plan rule as the renter's page states it (agent/plans/shown.py's row)."""
    if rule.get("cap_bytes") is None:
        return f"no cap ({_fmt(rule.get('nominal_kbps') or rule.get('throttle_kbps'))} kbit/s plan)"
    used = human_bytes(rule.get("used_bytes")) if rule.get("used_bytes") is not None else "unknown"
    window = f"{rule['hours']} h" if rule.get("window") == "rolling" else rule.get("window")
    name = f"{rule['rule']}: " if rule.get("rule") else ""
    return f"{name}{used} of {human_bytes(rule['cap_bytes'])} ({window}), {human_bytes(rule.get('left_bytes'))} left"


def render_signal(r: dict[str, Any]) -> list[str]:
    return [f"{_signal_line(r)}   {_fmt(r.get('technology'))}, registration {_fmt(r.get('registration'))}"]


def render_selftest(r: dict[str, Any]) -> list[str]:
    lines = [f"{'PASS' if c['ok'] else 'FAIL'}  {c['name']:<18} {c.get('detail', '')}" for c in r.get("checks", [])]
    return lines + [f"{r.get('passed', 0)} of {len(r.get('checks', []))} checks passed"]


def render_log(r: dict[str, Any]) -> list[str]:
    return [str(line) for line in r.get("lines", [])] or ["(no log lines)"]


def render_rows(key: str, empty: str) -> Callable[[dict[str, Any]], list[str]]:
    def render(r: dict[str, Any]) -> list[str]:
        head = _kv({k: v for k, v in r.items() if k != key})
        rows = [_fmt(row) for row in r.get(key) or []]
        return head + ([f"{key}:"] + [f"  {row}" for row in rows] if rows else [f"{key}: {empty}"])
    return render


def render_usage(r: dict[str, Any]) -> list[str]:
    """The metered SIMs, then each plan rule of the SIM in use: used / cap, resets-at."""
    lines = render_rows("sims", "none")({k: v for k, v in r.items() if k != "rules"})
    rules = r.get("rules") or []
    if not rules:
        return [*lines, "rules: none (no plan known for the SIM in use)"]
    lines.append("rules (SIM in use):")
    for rule in rules:
        window = f"rolling {rule.get('hours')} h" if rule.get("window") == "rolling" else rule.get("window")
        cap = "no cap" if rule.get("cap") is None else f"{rule['cap']} bytes"
        reset = rule.get("resets_at") or ("drains as old bytes age out" if rule.get("window") == "rolling" else "-")
        flag = "  EXCEEDED" if rule.get("exceeded") else ""
        lines.append(f"  {rule.get('rule')} ({window}, {rule.get('action')}): used {rule.get('used')} / {cap}, "
                     f"resets {reset}{flag}")
    return lines


def render_at(r: dict[str, Any]) -> list[str]:
    return [*r.get("lines", []), str(r.get("final", ""))]


COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("status", "status", "state, SIM, operator, signal, address, throughput, link verdict",
            "Everything at a glance: the agent's state, the SIM in use (ICCID and IMSI), the operator "
            "and radio technology, signal in dBm/dB with a rating in words, the data address, "
            "throughput right now, and the link classification (ok, throttled, poor radio, "
            "congested, no service, idle) with the reason.", "status", render=render_status),
    Command("modem", "modem", "modem identity and firmware",
            "Manufacturer, model, firmware revision and IMEI, as the modem reports them.", "modem"),
    Command("signal", "signal [watch]", "signal now; 'watch' repeats every second until Ctrl-C",
            "RSRP (dBm), RSRQ (dB), SINR (dB) with a rating: excellent, good, fair, poor, no signal.",
            "signal", args=_signal_args, render=render_signal),
    Command("sim", "sim", "SIM slots and the active profile (ICCID, IMSI; never keys)",
            "The active slot and profile by ICCID and IMSI, the plan, and the slots the board has. "
            "Secret keys are never shown anywhere.", "sim"),
    Command("usage", "usage", "data used per SIM, and each plan rule's used / cap / resets-at",
            "Usage this device metered and still holds, per SIM: today and this month (JST), "
            "and what is waiting to be reported to the cloud; then each rule of the plan of the SIM "
            "in use (month, day, rolling 72 h ...): bytes used in its window, its cap (with top-ups), "
            "and when it resets.", "usage", render=render_usage),
    Command("health", "health", "link state now, state history and outages with causes",
            "The current classification, recent state changes and the outage log.", "health",
            render=render_rows("outages", "none recorded")),
    Command("swaps", "swaps", "recent SIM swaps with their phase timings",
            "The last SIM swaps: when, why, the SIMs, and how long each phase took.", "swaps",
            render=render_rows("swaps", "none recorded")),
    Command("log", "log [N]", f"the daemon's last N log lines (default {LOG_DEFAULT})",
            f"The newest log lines of the agent, at most {LOG_MAX}.", "log", args=_log_args, render=render_log),
    Command("selftest", "selftest", "check modem, SIM, registration, data, broker, clock, storage",
            "Runs each check and prints PASS or FAIL with the reason, one per line.", "selftest",
            render=render_selftest),
    Command("trace", "trace start|stop", "record a detection trace to hand in (login needed)",
            "Records one line a second of what the throttle detector sees into a CSV file on the "
            "device; 'pocket-agent replay FILE' replays it. It stops by itself after 30 minutes or "
            "1 MB, and only the newest 3 traces are kept. Stop prints the file's path.", "trace",
            privileged=True, args=_trace_args),
    Command("at", "at <command>", "send one AT command to the modem (login needed)",
            "Passes one AT command through the agent's own modem channel and prints the answer. "
            "Identity and firmware writes and profile loads are refused.", "at", privileged=True,
            args=_at_args, render=render_at),
    Command("swap", "swap [reason]", "ask for another SIM now (login needed)",
            "Asks the cloud for another SIM and moves onto it.", "swap", privileged=True, args=_swap_args),
    Command("modem-reset", "modem-reset", "reboot the modem (login needed)",
            "Reboots the baseband; data is down for about a minute.", "modem_reset", privileged=True),
    Command("reboot", "reboot", "reboot the router (login needed)",
            "Reboots the whole router; this console disconnects.", "reboot", privileged=True),
    Command("login", "login", "log in as a technician (Ed25519 challenge)",
            "Prints a challenge; sign it on your laptop with 'pocket-agent console sign --key KEY "
            "\"CHALLENGE\"' and paste the signature at the prompt.", None),
    Command("logout", "logout", "log out (Ctrl-D does the same)", "Ends the technician login.", None),
    Command("colour", "colour on|off", "colour verdicts (off by default: no escape sequences)",
            "With colour on, PASS/FAIL and the link verdict are coloured with ANSI escape sequences; "
            "off (the default), the console sends plain text only.", None),
    Command("help", "help [command]", "list commands, or explain one", "Add --json to any command "
            "for one JSON object, for scripts.", None),
]}


def split(line: str) -> tuple[str, list[str], str, bool]:
    """``(name, words, rest, json)`` where ``rest`` is the text after the name (for ``at``)
    and ``--json`` is taken out wherever it stands."""
    want_json = bool(re.search(r"(^|\s)--json(\s|$)", line))
    line = re.sub(r"(^|\s)--json(?=\s|$)", " ", line).strip()
    if re.match(r"(?i)at[+&^%$]", line):  # "at+csq" typed the way modem manuals write it
        return "at", line.split(), line, want_json
    name, _, rest = line.partition(" ")
    return name.lower(), rest.split(), rest.strip(), want_json


def help_lines(name: str | None = None) -> list[str]:
    if name is None:
        width = max(len(c.usage) for c in COMMANDS.values())
        return ([f"  {c.usage:<{width}}  {c.summary}" for c in COMMANDS.values()] +
                ["Add --json to any command for one JSON object. Ctrl-C stops, Ctrl-D logs out."])
    cmd = COMMANDS.get(name)
    if cmd is None:
        raise UsageError(f"no command {name!r}; type help")
    return [f"{cmd.usage}: {cmd.summary}", cmd.details] + (["(privileged: login first)"] if cmd.privileged else [])


ANSI = {"green": "\x1b[32m", "yellow": "\x1b[33m", "red": "\x1b[31m", "reset": "\x1b[0m"}
VERDICT_COLOUR = {"PASS": "green", "FAIL": "red", "ok": "green", "idle": "green", "throttled": "red",
                  "no_service": "red", "poor_radio": "yellow", "congested": "yellow"}
"""Only asked-for colour: the session applies it after rendering, when ``colour on``."""
VERDICT_RE = re.compile(r"^(PASS|FAIL)\b|^(link\s+)(\w+)")


def colourise(line: str) -> str:
    """Colour a selftest verdict or the status ``link`` verdict at the start of ``line``."""
    def paint(word: str) -> str:
        colour = VERDICT_COLOUR.get(word)
        return f"{ANSI[colour]}{word}{ANSI['reset']}" if colour else word

    return VERDICT_RE.sub(lambda m: paint(m.group(1)) if m.group(1) else m.group(2) + paint(m.group(3)), line)


def as_json(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, default=str)
