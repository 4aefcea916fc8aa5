"""The renter's page, its pure parts: the allowance figure, the planned-swap notice, the
day's plot, the document and its two languages, the HTML, the request parser, settings."""

from __future__ import annotations

import copy
import json
import random
import re
import subprocess
import sys
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from agent.boardprofile import load_profile
from agent.clock import JST, FakeClock
from agent.core import page_settings
from agent.core import policy as pol
from agent.core.daygraph import BUCKET_S, DayGraph
from agent.errors import ConfigError
from agent.faces.page import facts, render, words
from agent.faces.page.server import MAX_HEADERS, BadRequest, parse_head
from agent.plans import shown
from agent.plans.tracker import Allowance
from agent.usage.allowance import human_bytes
from board.virtual.cloud.plans import MB
from board.virtual.cloud.plans import plan as table_plan
from tests.console.rig import RENTER

GB = 10**9
WALL = datetime(2025, 12, 3, 21, 55, tzinfo=JST).timestamp()
ICCID = "8981100000001000019"


def renter(**changes: Any) -> dict[str, Any]:
    r = copy.deepcopy(RENTER)
    for key, value in changes.items():
        r[key] = value
    return r


# ---- every rule of the plan, from the tracker the policy acts on ------------------------
def tracker_on(tmp: Path, name: str, remaining: dict[str, int] | None = None,
               wall: float = WALL) -> tuple[Allowance, dict[str, Any]]:
    """A real allowance tracker (ledger on disk) with a SIM of the table's plan ``name``
    current, assigned at ``wall`` with the cloud's ``remaining``."""
    clock = FakeClock(epoch=wall)
    tracker = Allowance(tmp, clock, "+09:00")
    body = table_plan(name)
    if remaining:
        body["remaining"] = remaining
    facts_ = {"iccid": ICCID, "assignment_id": "a-1", "plan": body}
    tracker.on_sim(facts_)
    return tracker, facts_


def use(tracker: Allowance, nbytes: int, start: float, end: float) -> None:
    day = datetime.fromtimestamp(end, JST).date().isoformat()
    tracker.ledger.add(ICCID, day, start, end, nbytes, 0)


def rows_of(tracker: Allowance, facts_: dict[str, Any], kbps: float = 0.0) -> list[dict[str, Any]]:
    return shown.rows(tracker.plan(facts_), tracker.status(facts_), kbps * 1000 / 8, tracker.clock.wall())


def test_a_double_cap_shows_both_rules_with_what_is_left_and_when_it_throttles(tmp_path: Path) -> None:
    """5 GB a month *or* 800 MB in 72 hours: 790 MB in the last day is 10 MB from the
    72-hour cap while the month still has 4 GB: the renter sees both, and the 72-hour
    rule's throttle time at the current rate."""
    tracker, sim = tracker_on(tmp_path, "5GB-month", {"month": 4_200_000_000, "72h": 800 * MB})
    use(tracker, 790 * MB, WALL - 3600, WALL - 60)
    month, rolling = rows_of(tracker, sim, kbps=4000)  # 0.5 MB/s
    assert (month["rule"], month["window"], month["cap_bytes"]) == ("month", "month", 5 * GB)
    assert month["used_bytes"] == 800 * MB + 790 * MB and month["left_bytes"] == 5 * GB - 1590 * MB
    assert month["resets_at"] == datetime(2026, 1, 1, tzinfo=JST).timestamp()  # December rolls into January
    assert (rolling["rule"], rolling["window"], rolling["hours"]) == ("72h", "rolling", 72)
    assert (rolling["used_bytes"], rolling["left_bytes"]) == (790 * MB, 10 * MB)
    assert rolling["throttle_at"] == pytest.approx(WALL + 20, abs=0.1) and rolling["low"] and not month["low"]
    assert month["throttle_at"] == pytest.approx(WALL + month["left_bytes"] / 500_000, abs=0.1)
    doc = facts.document(renter(wall=WALL, rules=[month, rolling]), "en")
    assert doc["data"][0]["text"].startswith("1.6 GB of 5.0 GB this month, resets Jan 1 00:00 (JST); 3.4 GB left")
    assert doc["data"][1]["text"] == ("790 MB of 800 MB in the last 72 hours; 10 MB left, then low speed, "
                                      "at this rate from about 21:55")
    assert facts.document(renter(wall=WALL, rules=[month, rolling]), "ja")["data"][1]["text"].startswith(
        "直近72時間 790 MB / 800 MB 使用（残り 10 MB、超過後は 低速、この速度だと 21:55 ごろに上限")
    assert doc["low_allowance"]["rule"] == "72h" and doc["low_allowance"]["text"] == (
        "Data running low: 10 MB left of 800 MB per 72 hours. At this rate it runs out at about 21:55. "
        "The router moves to another SIM before then when it can, to keep you at full speed.")


def test_a_rolling_rule_over_its_cap_says_when_it_drains_and_a_day_pass_when_it_resets(tmp_path: Path) -> None:
    tracker, sim = tracker_on(tmp_path, "100MB-3days")
    use(tracker, 60 * MB, WALL - 50 * 3600, WALL - 50 * 3600 + 60)
    use(tracker, 50 * MB, WALL - 600, WALL - 60)
    [row] = rows_of(tracker, sim)
    assert row["exceeded"] and row["left_bytes"] == 0 and row["throttle_at"] == WALL
    assert row["resets_at"] == pytest.approx(WALL - 50 * 3600 + 60 + 72 * 3600, abs=1)  # the 60 MB age out
    text = facts.document(renter(wall=WALL, rules=[row]), "en")["data"][0]["text"]
    assert text == "110 MB of 100 MB in the last 72 hours; used up: low speed until about Dec 4 19:56"
    assert facts.document(renter(wall=WALL, rules=[row]), "en")["low_allowance"] is None  # used up is not "low"
    day_tracker, day_sim = tracker_on(tmp_path / "day", "daypass-3GB")
    [day] = rows_of(day_tracker, day_sim, kbps=800)  # 30000 s to the cap, 7500 s to midnight
    assert day["resets_at"] == datetime(2025, 12, 4, tzinfo=JST).timestamp() and day["throttle_at"] is None
    assert facts.document(renter(wall=WALL, rules=[day]), "en")["data"][0]["text"] == (
        "0 B of 3.0 GB today, resets at midnight (JST); 3.0 GB left, then 384 kbit/s")  # midnight before the cap


def test_flat_and_tiered_plans_read_as_what_they_sell(tmp_path: Path) -> None:
    flat_tracker, flat_sim = tracker_on(tmp_path / "flat", "200kbps")
    [flat] = rows_of(flat_tracker, flat_sim)
    assert (flat["window"], flat["cap_bytes"], flat["nominal_kbps"]) == ("none", None, 200)
    assert facts.document(renter(rules=[flat]), "ja")["data"][0]["text"] == "容量制限なし（最大 200 kbps）"
    tiered_tracker, tiered_sim = tracker_on(tmp_path / "tiered", "tiered")
    use(tiered_tracker, 1200 * MB, WALL - 600, WALL - 60)
    steps = rows_of(tiered_tracker, tiered_sim, kbps=50_000)
    assert [r["rule"] for r in steps] == ["step-1gb", "step-5gb", "step-20gb", "step-40gb"]
    assert not any(r["low"] or r["throttle_at"] for r in steps)  # a price step never slows the SIM
    texts = [d["text"] for d in facts.document(renter(wall=WALL, rules=steps), "en")["data"]]
    assert texts[:2] == ["1.2 GB this month: past the 1.0 GB price step (same speed)",
                         "1.2 GB of 5.0 GB this month before the next price step (same speed)"]
    assert shown.rows(None, [], 0.0, WALL) == []  # the seed SIM has no plan
    assert human_bytes(2_100_000_000) == "2.1 GB" and human_bytes(41 * GB) == "41 GB"


def test_the_low_notice_comes_at_a_fifth_of_the_cap_or_an_hour_before_it(tmp_path: Path) -> None:
    tracker, sim = tracker_on(tmp_path, "monthly-100GB")
    use(tracker, 79 * GB, WALL - 7200, WALL - 3600)
    [row] = rows_of(tracker, sim)
    assert not row["low"] and facts.document(renter(rules=[row]), "en")["low_allowance"] is None
    assert rows_of(tracker, sim, kbps=50_000)[0]["low"]  # 21 GB at 50 Mbit/s: under an hour
    use(tracker, 2 * GB, WALL - 3000, WALL - 60)
    [row] = rows_of(tracker, sim)
    assert row["low"] and row["throttle_at"] is None  # no traffic: low by the share, no time
    low = facts.document(renter(rules=[row]), "ja")["low_allowance"]
    assert low["text"].startswith("データ残量が少なくなっています：1か月あたり 100 GB のうち残り 19 GB。")


# ---- the notice before a planned swap -----------------------------------------------
def test_planned_swap_is_announced_for_orders_and_low_allowance_never_for_urgent_ones() -> None:
    policy = pol.SwapPolicy(swap_below_bytes=50_000_000, lull_wait_s=600)
    order = pol.Order("c1", due=1000.0)
    assert pol.planned(policy, pol.Inputs(now=880.0, order=order)) == pol.Planned("command", 120.0, at_lull=False)
    low = pol.Inputs(now=1000.0, remaining_bytes=10_000_000, low_since=700.0, traffic_kbps=5000)
    assert pol.planned(policy, low) == pol.Planned("allowance", 300.0, at_lull=True)
    assert pol.planned(policy, pol.Inputs(now=1000.0, health="throttled", remaining_bytes=1)) is None
    assert pol.planned(policy, pol.Inputs(now=1000.0, on_seed=True)) is None
    assert pol.planned(policy, pol.Inputs(now=1000.0, remaining_bytes=10**9)) is None
    # a 100 MB rule's own low mark is 10 MB (agent/plans/predict.py): at 30 MB left the
    # policy will not swap yet, so no swap is announced
    assert pol.planned(policy, pol.Inputs(now=1000.0, remaining_bytes=30_000_000, low_below=10_000_000)) is None


def test_notice_and_last_swap_in_words() -> None:
    r = renter()
    r["swap"]["planned"] = {"reason": "command", "in_s": 125.0, "at_lull": False}
    doc = facts.document(r, "en")
    assert doc["notice"]["text"] == "A ~6-second pause in about 2 min, to keep you at full speed."
    assert doc["notice"]["pause_s"] == 6 and doc["notice"]["in_s"] == 125
    assert "約2分後に約6秒" in facts.document(r, "ja")["notice"]["text"]
    assert doc["last_swap"]["text"] == "At 21:40: switched SIM (the SIM had been slowed); the connection paused " \
                                       "for 5.9 s."
    r["swap"]["in_progress_s"] = 2.0  # while it runs: the state says when it is back, no notice
    doc = facts.document(r, "en")
    assert doc["notice"] is None and doc["state"] == {"code": "switching", "back_in_s": 4,
                                                      "text": "Switching to a better SIM, back in about 4 s."}


# ---- states in the renter's words -----------------------------------------------------
@pytest.mark.parametrize(("health", "code"), [("ok", "full_speed"), ("idle", "full_speed"), (None, "connected"),
                                              ("poor_radio", "slow_signal"), ("congested", "slow_busy"),
                                              ("throttled", "slow_cap")])
def test_states_never_show_a_raw_code(health: str | None, code: str) -> None:
    r = renter(health={"state": health, "kbps": 128.0, "cause": "ceiling"})
    for lang in ("en", "ja"):
        state = facts.document(r, lang)["state"]
        assert state["code"] == code
        assert not re.search(r"poor_radio|congested|throttled|ceiling|no_service|_", state["text"])


def test_no_service_says_since_when_and_that_it_retries() -> None:
    since = WALL - 600
    r = renter(health={"state": "no_service", "kbps": None, "cause": "not_registered"}, no_service_since=since)
    state = facts.document(r, "en")["state"]
    assert state["code"] == "no_service" and state["retrying"] and state["since"] == "2025-12-03T21:45:00+09:00"
    assert state["text"] == ("No service since 21:45. The router is retrying by itself. "
                             "No mobile network answers here.")
    assert facts.document(r, "ja")["state"]["text"].startswith("21:45から圏外です。")
    r["wall_trusted"] = False  # a clock nobody vouched for: no time of day
    assert facts.document(r, "en")["state"]["text"].startswith("No service. The router is retrying")


def test_data_rules_in_both_languages() -> None:
    doc = facts.document(renter(), "en")
    assert doc["data"][0]["text"] == ("2.1 GB of 3.0 GB today, resets at midnight (JST); 900 MB left, "
                                      "then 384 kbit/s")
    assert facts.document(renter(), "ja")["data"][0]["text"].startswith("本日 2.1 GB / 3.0 GB 使用")
    month = renter(rules=[{"window": "month", "cap_bytes": 100 * GB, "used_bytes": 41 * GB, "left_bytes": 59 * GB,
                           "resets_at": datetime(2026, 1, 1, tzinfo=JST).timestamp(), "throttle_kbps": 128}])
    assert facts.document(month, "en")["data"][0]["text"].startswith(
        "41 GB of 100 GB this month, resets Jan 1 00:00 (JST)")
    flat = renter(rules=[{"window": "none", "cap_bytes": None, "used_bytes": None, "left_bytes": None,
                          "resets_at": None, "throttle_kbps": 200}])
    assert facts.document(flat, "ja")["data"][0]["text"] == "容量制限なし（最大 200 kbps）"


def test_every_sentence_exists_in_both_languages_with_the_same_slots() -> None:
    assert set(words.WORDS["en"]) == set(words.WORDS["ja"])
    for key, english in words.WORDS["en"].items():
        slots = set(re.findall(r"{(\w+)}", english))
        assert slots == set(re.findall(r"{(\w+)}", words.WORDS["ja"][key])), key


@pytest.mark.parametrize(("header", "override", "lang"), [
    ("ja,en-US;q=0.9,en;q=0.8", None, "ja"), ("en-GB,en;q=0.9,ja;q=0.8", None, "en"),
    ("fr-FR,ja;q=0.5,en;q=0.4", None, "ja"), ("ja;q=0,en", None, "en"), ("de", None, "en"), (None, None, "en"),
    ("ja", "en", "en"), ("en", "xx", "en"), (";;;,q=,ja;q=abc", None, "en"), ("*", None, "en"),
])
def test_language_from_accept_language(header: str | None, override: str | None, lang: str) -> None:
    assert words.choose(header, ("en", "ja"), override) == lang


# ---- nothing of the operator's inventory ------------------------------------------------
def test_the_document_holds_no_iccid_imsi_or_key() -> None:
    r = renter()
    text = json.dumps([facts.document(r, lang) for lang in ("en", "ja")], ensure_ascii=False)
    text += render.page(facts.document(r, "en"))
    assert "8981100000000000017" not in text and "440100000000017" not in text
    assert not re.search(r"\d{15,}", text) and not re.search(r"[0-9a-fA-F]{32}", text)


# ---- the HTML -----------------------------------------------------------------------
class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_page_has_no_script_no_outside_asset_and_escapes_the_brand() -> None:
    doc = facts.document(renter(), "en", brand="<script>alert(1)</script>", support_phone="0120-12-3456")
    html = render.page(doc)
    parsed = Collect()
    parsed.feed(html)
    assert "script" not in parsed.tags and "&lt;script&gt;" in html
    assert not [v for k, v in parsed.attrs if k in ("src", "style") or (k == "href" and v and v.startswith("http"))]
    assert ("href", "tel:0120123456") in parsed.attrs
    assert "svg" in parsed.tags and "path" in parsed.tags  # the plot, inline
    assert len(html.encode()) < 30_000
    style = re.search(r"<style>(.*?)</style>", html, re.DOTALL)
    assert style and style.group(1) == render.STYLE and render.STYLE_HASH in render.CSP
    assert "unsafe-inline" not in render.CSP and "script-src" not in render.CSP


def test_plot_of_a_day_and_of_nothing_yet() -> None:
    assert render.plot_svg([], BUCKET_S, "en").count("<path") == 0
    full = render.plot_svg([1000.0] * 288, BUCKET_S, "ja")
    assert full.count("<path") == 2 and "最大 1.0 Mbit/s" in full


# ---- today's throughput buckets ----------------------------------------------------------
def test_day_graph_buckets_rates_and_starts_again_at_midnight() -> None:
    graph = DayGraph(JST)
    start = datetime(2025, 12, 3, 0, 0, tzinfo=JST).timestamp()
    total = 0
    for second in range(0, 600, 2):  # ten minutes at 1 Mbit/s
        graph.feed(start + second, total)
        total += 250_000
    assert graph.kbps()[0] == pytest.approx(1000.0, rel=0.01) and len(graph.kbps()) == 2
    graph.feed(start + 602, 0)  # the counter went back (interface re-created): nothing added
    assert graph.kbps()[0] == pytest.approx(1000.0, rel=0.01)
    graph.feed(start + 86400 + 10, 10**9)
    assert graph.day == "2025-12-04" and graph.kbps() == [0.0]


# ---- the request head --------------------------------------------------------------
def test_parse_head_and_what_it_refuses() -> None:
    method, target, headers = parse_head(b"GET /?lang=ja HTTP/1.1\r\nHost: 198.18.2.1\r\nAccept-Language: ja")
    assert (method, target, headers["host"], headers["accept-language"]) == ("GET", "/?lang=ja", "198.18.2.1", "ja")
    rng = random.Random(25)
    for bad in (b"", b"GET /", b"GET / HTTP/2", b"get / HTTP/1.1", b"GET / HTTP/1.1\r\nNo colon here",
                b"GET / HTTP/1.1\r\n : empty name", b"GET  / HTTP/1.1",
                b"GET / HTTP/1.1" + b"\r\nX: y" * (MAX_HEADERS + 1),
                bytes(rng.randrange(256) for _ in range(300))):
        with pytest.raises(BadRequest):
            parse_head(bad)


# ---- settings ------------------------------------------------------------------------
def test_settings_from_the_profile_and_the_page_table() -> None:
    profile = load_profile(Path(__file__).resolve().parents[2] / "board" / "profiles" / "virtual.toml")
    s = page_settings.settings({}, profile)
    assert (str(s.interface), s.port, s.device, s.enabled) == ("198.18.2.1/24", 80, "lan0", True)
    s = page_settings.settings({"port": 8080, "brand": "Acme", "languages": ["ja"], "enabled": False}, profile)
    assert (s.port, s.brand, s.languages, s.enabled) == (8080, "Acme", ("ja",), False)
    for bad in ({"port": 0}, {"address": "lan"}, {"languages": ["fr"]}, {"brand": "x" * 41}, {"colour": "red"},
                {"port": True}):
        with pytest.raises(ConfigError):
            page_settings.settings(bad, profile)


def test_the_page_code_is_not_loaded_when_the_page_is_off(tmp_path: Path) -> None:
    """A router that turns the page off pays nothing for it: starting the daemon's side
    with ``enabled = false`` leaves agent.faces.page unimported."""
    child = (
        "import asyncio, sys, types\n"
        "from agent.boardprofile import load_profile\n"
        "from agent.core import paged, supervisor\n"
        "sup = types.SimpleNamespace(cfg=types.SimpleNamespace(page={'enabled': False}),\n"
        "                            profile=load_profile('virtual'), consoled=object())\n"
        "assert asyncio.run(paged.start(sup)) is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('agent.faces.page')))\n")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"


def test_the_documented_json_has_the_shape_the_server_sends() -> None:
    """docs/status-page.md's example is what a reader codes against: same keys, same nesting."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "status-page.md").read_text()
    example = json.loads(re.search(r"```json\n(.*?)```", text, re.DOTALL).group(1))  # type: ignore[union-attr]
    r = renter()
    r["swap"]["planned"] = {"reason": "command", "in_s": 125.0, "at_lull": False}
    sent = facts.document(r, "en")

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shape(value[0])] if value and isinstance(value[0], dict) else "list"
        return "value"
    assert shape(example) == shape(sent)
    assert example["state"] == sent["state"] and example["data"][0]["text"] == sent["data"][0]["text"]
