"""The console's ``usage`` and the status file show each plan rule's used / cap /
resets-at (issue 22, step 4): the real allowance's rows, through the real view and the
console's renderer."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.clock import Clock, FakeClock
from agent.core.audit import AuditLog
from agent.core.view import SupervisorView
from agent.faces.console.commands import COMMANDS
from agent.plans.tracker import Allowance
from board.virtual.cloud.plans import MB, plan
from tests.unit.test_console_view import fake_sup

JST = timezone(timedelta(hours=9))
ICCID = "8981100000001000019"
FACTS = {"iccid": ICCID, "imsi": "440100000100001", "assignment_id": "a-1", "plan": plan("5GB-month")}


def test_usage_shows_each_rule_used_cap_and_reset(tmp_path: Path) -> None:
    at = datetime(2026, 1, 14, 12, tzinfo=JST).timestamp()
    clock = FakeClock(epoch=at)
    allowance = Allowance(tmp_path, clock)
    allowance.on_sim(FACTS)
    allowance.ledger.add(ICCID, "2026-01-14", at - 60, at - 30, 900 * MB, 0)
    rows = allowance.report(FACTS)
    assert [(r["rule"], r["used"], r["cap"], r["resets_at"], r["exceeded"]) for r in rows] == [
        ("month", 900 * MB, 5_000_000_000, "2026-02-01T00:00:00.000+09:00", False),
        ("72h", 900 * MB, 800 * MB, "2026-01-17T11:59:30.000+09:00", True)]
    view = SupervisorView(fake_sup(tmp_path, allowance_report=lambda: rows), audit=AuditLog(tmp_path / "console",
                          Clock()), technicians_file=tmp_path / "technicians.json")
    result = asyncio.run(view.usage())
    assert result["rules"] == rows
    text = "\n".join(COMMANDS["usage"].render(result))  # type: ignore[misc]
    assert "month (month, throttle): used 900000000 / 5000000000 bytes, resets 2026-02-01T00:00:00.000+09:00" in text
    assert "72h (rolling 72 h, throttle): used 900000000 / 800000000 bytes, resets 2026-01-17T11:59:30.000+09:00  " \
           "EXCEEDED" in text


def test_usage_without_a_plan_says_so(tmp_path: Path) -> None:
    view = SupervisorView(fake_sup(tmp_path), audit=AuditLog(tmp_path / "console", Clock()),
                          technicians_file=tmp_path / "technicians.json")
    text = COMMANDS["usage"].render(asyncio.run(view.usage()))  # type: ignore[misc]
    assert "rules: none (no plan known for the SIM in use)" in text
