"""The renter's status page on the real daemon in the lab (root; shares the lab session).

Seen as a renter sees it: headless Chromium (Debian's package) runs inside the lab's LAN
namespace and opens the router's LAN address, in English and in Japanese, while the
router serves normally, during an outage, before and after a planned swap and after a
throttled SIM's swap; the rendered DOM's text is checked against the lab's own figures
(the carrier's byte counts, the SIM the agent serves on, the virtual modem's network) and
against the JSON and the console's ``status`` of the same moment; screenshots go to
build/page-*.png. The carrier side never gets an answer, and no response holds a pool
SIM's ICCID, IMSI, Ki or OPc, or the cloud's address.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from agent.faces.page.words import NETWORK_NAMES
from board.virtual.lab import ctl as labctl
from tests.conftest import need_tool
from tests.lab.conftest import LAB_DIR, agent_status, control, in_ns, lab, wait_until

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
CHROMIUM_TIMEOUT_S = 60
"""Chromium starts in 1-4 s on an idle machine; the parallel lab groups can slow it ten times."""
WINDOW_WORDS = {"month": ("this month", "今月"), "day": ("today", "本日"),
                "rolling": ("in the last 72 hours", "直近72時間"), "none": ("No data limit", "容量制限なし")}
"""What each plan window reads like on the page (the pool's plans: board/virtual/cloud/pool.py)."""
USAGE_SLACK_BYTES = 256_000
"""Page (metered once a second) against the carrier's counters, read a moment apart on an
idle router: the agent's own reports and echoes move a few kB a second."""


# ---- helpers ------------------------------------------------------------------------------
def page_json(lang: str = "en") -> dict[str, Any]:
    proc = lab("page", "--json", "--lang", lang)
    return json.loads(proc.stdout)


class Texts(HTMLParser):
    """The text inside each element with an ``id`` (the page's blocks), as rendered."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("meta", "link", "br", "rect", "line", "path"):
            return
        ident = dict(attrs).get("id")
        self._open.append(ident)
        if ident:
            self.by_id.setdefault(ident, "")

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("meta", "link", "br", "rect", "line", "path") and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for ident in self._open:
            if ident:
                self.by_id[ident] += data


def chromium(lang: str, shot: str, tmp: Path) -> dict[str, str]:
    """Open the page in headless Chromium from the LAN namespace: the rendered DOM's texts by
    element id; a screenshot at build/page-<shot>.png (a phone-sized window)."""
    need_tool("chromium")
    url = labctl.page_url()
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars",
             f"--user-data-dir={tmp / ('chromium-' + shot)}", f"--accept-lang={lang}", f"--lang={lang}"]
    BUILD.mkdir(exist_ok=True)
    shot_proc = in_ns(labctl.LAYOUT.lan, "chromium", *flags, "--window-size=412,860",
                      f"--screenshot={BUILD / f'page-{shot}.png'}", url, timeout=CHROMIUM_TIMEOUT_S)
    assert shot_proc.returncode == 0, shot_proc.stderr[-2000:]
    dom = in_ns(labctl.LAYOUT.lan, "chromium", *flags, "--dump-dom", url, timeout=CHROMIUM_TIMEOUT_S)
    assert dom.returncode == 0 and "</html>" in dom.stdout, dom.stderr[-2000:]
    assert f'<html lang="{lang}">' in dom.stdout
    parsed = Texts()
    parsed.feed(dom.stdout)
    return {k: " ".join(v.split()) for k, v in parsed.by_id.items()}


def shown_bytes(text: str) -> float:
    """The first figure of a rule's sentence ("9.8 kB of 100 GB ..."; "今月 9.8 kB / ...") in bytes."""
    m = re.search(r"(\d+(?:\.\d)?) (B|kB|MB|GB)", text)
    assert m, text
    return float(m.group(1)) * {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9}[m.group(2)]


def console_status(running_lab: dict[str, Any]) -> dict[str, Any]:
    return control(running_lab, "status")


def carrier_bytes(iccid: str) -> int:
    usage = json.loads(lab("usage", "--json").stdout)
    counts = usage.get(iccid, {}).get("carrier", {})
    return int(counts.get("up", 0)) + int(counts.get("down", 0))


def secrets() -> list[bytes]:
    """Every pool SIM's ICCID, IMSI, Ki and OPc in the forms a leak could take."""
    pool = json.loads((LAB_DIR / "pool.json").read_text())
    out: list[bytes] = []
    for sim in [pool["seed"], *pool["sims"]]:
        out += [sim["iccid"].encode(), sim["imsi"].encode()]
        for key in (sim["ki"], sim["opc"]):
            out += [key.lower().encode(), key.upper().encode(), base64.b64encode(bytes.fromhex(key))]
    return out


# ---- where it answers ---------------------------------------------------------------------
def test_page_answers_on_the_lan_and_never_on_the_carrier_side(running_lab: dict[str, Any]) -> None:
    assert running_lab["page"]["url"] == labctl.page_url()
    assert page_json()["version"] == 1
    refused = lab("page", "--from", "internet", check=False)
    assert refused.returncode == 1 and "not reachable from the internet namespace" in refused.stderr
    # Stronger than no route: the carrier itself sends to the LAN address over the cell link,
    # and to the router's WAN address. The kernel refuses both (the socket is bound to lan0):
    # a refusal, not a timeout, shows the packets reached the router.
    host, port = labctl.page_address()
    wan = _wan_address()
    core = labctl.LAYOUT.core
    in_ns(core, "ip", "route", "replace", f"{host}/32", "dev", labctl.LAYOUT.cell_if)
    try:
        for target in (host, wan):
            code = (f"import socket; s=socket.socket(); s.settimeout(3)\n"
                    f"try:\n s.connect(({target!r}, {port})); print('open')\n"
                    f"except ConnectionRefusedError: print('refused')\n"
                    f"except OSError as e: print('error', e)")
            assert in_ns(core, sys.executable, "-c", code, timeout=20).stdout.strip() == "refused", target
    finally:
        in_ns(core, "ip", "route", "del", f"{host}/32", "dev", labctl.LAYOUT.cell_if)


def _wan_address() -> str:
    out = in_ns(labctl.LAYOUT.dev, "ip", "-4", "-br", "addr", "show", labctl.LAYOUT.wan_if).stdout.split()
    return out[2].split("/")[0]


# ---- normal serving, in a real browser ---------------------------------------------------------
def test_chromium_shows_the_labs_figures_in_both_languages(running_lab: dict[str, Any], tmp_path: Path) -> None:
    wait_until("a link verdict (idle or ok) on the page",
               lambda: page_json()["state"]["code"] == "full_speed", timeout=90, interval=2)
    iccid = agent_status()["sim"]["iccid"]
    # the network the virtual modem serves on now (earlier tests may have moved it: roaming),
    # and the window of the plan the pool gave this SIM (month, day or none)
    status = control(running_lab, "status")
    op = str(status["operator"])
    network, window = NETWORK_NAMES.get(op, f"{op[:3]}-{op[3:]}"), status["allowance"][0]["window"]
    for lang, words in (("en", ("Full speed", WINDOW_WORDS[window][0], network, f"SIM ending {iccid[-4:]}")),
                        ("ja", ("高速で接続中", WINDOW_WORDS[window][1], network, f"SIM末尾 {iccid[-4:]}"))):
        before = page_json(lang)
        seen = chromium(lang, f"{lang}-serving", tmp_path)
        after = page_json(lang)
        assert seen["state"] == after["state"]["text"] == before["state"]["text"]
        assert all(w in seen["state"] + seen["data"] + seen["signal"] for w in words), (seen, words)
        assert re.search(r"[1-4]", seen["signal"]) and after["signal"]["bars"] >= 1
        assert "today" in seen  # the plot's section
        # the last swap of this run (none when an earlier test restarted the agent)
        assert seen.get("last-swap") == (after["last_swap"] or {}).get("text")
        # the same moment's figure: the browser's between the JSON's before and after (the
        # agent's own reports move a few kB meanwhile), the rest of the sentence the same
        low, high = before["data"][0]["used_bytes"], after["data"][0]["used_bytes"]
        if window == "none":  # a flat-rate plan: nothing used up, the sentence alone
            assert seen["rule-0"] == after["data"][0]["text"]
            continue
        assert low * 0.9 <= shown_bytes(seen["rule-0"]) <= high * 1.1 + 1000, (seen["rule-0"], low, high)
        assert seen["rule-0"].split(" ", 2)[2] == after["data"][0]["text"].split(" ", 2)[2]
    # the page's figures are the lab's: the SIM the agent serves on, the carrier's bytes
    doc = page_json()
    console = console_status(running_lab)
    carrier = carrier_bytes(iccid)
    assert doc["sim"]["ends_with"] == iccid[-4:] == console["sim"]["iccid"][-4:]
    assert len(doc["data"]) == len(console["allowance"]) == len(agent_status()["allowance"] or [None])
    rule, same = doc["data"][0], console["allowance"][0]  # every rule of the plan: the lab's plans have one
    assert rule["cap_bytes"] == same["cap_bytes"] and rule["window"] == same["window"]
    assert rule["rule"] == same["rule"] == (agent_status()["allowance"] or [{"rule": None}])[0]["rule"]
    if window != "none":
        assert abs(rule["used_bytes"] - same["used_bytes"]) < USAGE_SLACK_BYTES
        assert abs(rule["used_bytes"] - carrier) < USAGE_SLACK_BYTES, (rule, carrier)
    assert doc["signal"]["bars"] == {"excellent": 4, "good": 3, "fair": 2, "poor": 1}.get(
        console["signal"]["rating"], 0)


def test_no_response_holds_a_secret_or_the_cloud(running_lab: dict[str, Any]) -> None:
    bodies = [lab("page", "--html", "--lang", lang).stdout.encode() for lang in ("en", "ja")]
    bodies += [lab("page", "--json", "--lang", lang).stdout.encode() for lang in ("en", "ja")]
    favicon = in_ns(labctl.LAYOUT.lan, sys.executable, "-c",
                    "import urllib.request,sys; sys.stdout.buffer.write(urllib.request.urlopen("
                    f"{labctl.page_url() + 'favicon.ico'!r}, timeout=5).read())")
    bodies.append(favicon.stdout.encode())
    everything = b"\n".join(bodies)
    assert b"<svg" in bodies[-1]
    for secret in secrets():
        assert secret not in everything
    assert labctl.LAYOUT.internet_addr.encode() not in everything  # the broker's address


# ---- an outage, a planned swap, a throttled SIM ----------------------------------------------
def test_outage_on_the_page(running_lab: dict[str, Any], tmp_path: Path) -> None:
    lab("fault", "outage", "--seconds", "25")
    try:
        doc = wait_until("no service on the page", lambda: (d := page_json()) and d["state"]["code"] == "no_service"
                         and d, timeout=30, interval=1)
        assert doc["state"]["retrying"] and "retrying by itself" in doc["state"]["text"]
        seen = chromium("ja", "ja-outage", tmp_path)
        assert "圏外" in seen["state"] and "自動で再接続" in seen["state"]
        assert doc["signal"]["bars"] == 0
    finally:
        lab("fault", "clear", check=False)
    wait_until("the page back to a connected state",
               lambda: page_json()["state"]["code"] in ("full_speed", "connected"), timeout=120, interval=2)


def test_planned_swap_is_announced_then_reported(running_lab: dict[str, Any], tmp_path: Path) -> None:
    lab("policy", "--set", "max_per_hour=30", "--set", "max_per_day=200")
    before = agent_status()["sim"]["iccid"]
    lab("swap", "--window", "90")
    notice = wait_until("the notice on the page", lambda: page_json()["notice"], timeout=20, interval=0.5)
    assert notice["kind"] == "planned_swap" and notice["reason"] == "command" and 0 <= notice["in_s"] <= 90
    assert re.search(r"A ~\d+-second pause (in about \d+ min|within a minute)", notice["text"])
    if notice["in_s"] > 8:  # time to see it in a browser before it happens
        seen = chromium("en", "en-planned-swap", tmp_path)
        assert "pause" in seen["notice"]
    wait_until("the commanded swap", lambda: agent_status()["sim"]["iccid"] != before, timeout=150, interval=1)
    last = wait_until("the swap on the page", lambda: (d := page_json()) and d["last_swap"]
                      and d["last_swap"]["reason"] == "command" and d, timeout=30, interval=1)["last_swap"]
    history = control(running_lab, "swaps")["swaps"]  # the console's figures of the same swap
    assert last["ok"] and last["break_s"] == round(history[-1]["break_ms"] / 1000, 1)
    assert "planned by your operator" in last["text"]
    assert console_status(running_lab)["sim"]["iccid"][-4:] == page_json()["sim"]["ends_with"]
    assert page_json()["notice"] is None


def test_throttled_sim_is_swapped_and_the_page_says_why(running_lab: dict[str, Any], tmp_path: Path) -> None:
    lab("policy", "--set", "max_per_hour=30", "--set", "max_per_day=200")
    before = agent_status()["sim"]["iccid"]
    lab("traffic", "start", "--kind", "bulk", "--duration", "120")
    try:
        lab("throttle")
        seen_states = set()

        def swapped() -> bool:
            seen_states.add(page_json()["state"]["code"])
            return agent_status()["sim"]["iccid"] != before
        wait_until("the throttled SIM swapped", swapped, timeout=120, interval=1)
        last = wait_until("the swap on the page", lambda: (d := page_json())["last_swap"]
                          and d["last_swap"]["reason"] == "throttled" and d["last_swap"], timeout=30, interval=1)
        assert last["ok"] and "slowed" in last["text"]
        seen = chromium("en", "en-after-throttle", tmp_path)
        assert "the SIM had been slowed" in seen["last-swap"]
    finally:
        lab("traffic", "stop", check=False)
    print(f"\npage states seen while throttled: {sorted(seen_states)}")



# ---- the low-allowance notice, and what a restart keeps ---------------------------------------
CAPPED_PLAN = "5GB-month"
"""A lab plan with a cap whose low marks are far apart: the renter's at a fifth (1 GB), the
policy's at a tenth (500 MB, under the lab's ``swap_below_bytes``), so the notice shows with
no swap planned and the test can watch it appear."""


def test_low_allowance_notice_appears_when_the_allowance_crosses_the_mark(running_lab: dict[str, Any],
                                                                         tmp_path: Path) -> None:
    """The platform corrects the SIM's allowance (a signed plan update, as after the
    wholesaler's own count): at 30 % left the page shows none; at 15 % the notice appears,
    in both languages and in the browser, naming what is left of the rule; the figure is the
    console's. Then a swap to a fresh SIM leaves the session's lab as it was."""
    lab("policy", "--set", "max_per_hour=30", "--set", "max_per_day=200")
    if (agent_status().get("sim") or {}).get("plan", {}).get("name") != CAPPED_PLAN:
        lab("swap", "--plan", CAPPED_PLAN)
        wait_until(f"the device on a {CAPPED_PLAN} SIM",
                   lambda: (agent_status().get("sim") or {}).get("plan", {}).get("name") == CAPPED_PLAN
                   and agent_status().get("allowance"), timeout=90, interval=1)
    [rule] = page_json()["data"]
    cap = rule["cap_bytes"]
    assert page_json()["low_allowance"] is None and not rule["low"]
    lab("plan-update", "--remaining", f"{rule['rule']}={cap * 30 // 100}")
    wait_until("30 % left on the page", lambda: abs(page_json()["data"][0]["left_bytes"] - cap * 30 // 100)
               < USAGE_SLACK_BYTES, timeout=30, interval=1)
    assert page_json()["low_allowance"] is None
    lab("plan-update", "--remaining", f"{rule['rule']}={cap * 15 // 100}")
    low = wait_until("the low-allowance notice", lambda: page_json()["low_allowance"], timeout=30, interval=1)
    assert low["rule"] == rule["rule"] and abs(low["left_bytes"] - cap * 15 // 100) < USAGE_SLACK_BYTES
    assert low["text"].startswith("Data running low: 750 MB left of 5.0 GB per month.")
    assert page_json("ja")["low_allowance"]["text"].startswith("データ残量が少なくなっています：1か月あたり 5.0 GB のうち残り")
    [same] = console_status(running_lab)["allowance"]
    assert same["low"] and abs(same["left_bytes"] - low["left_bytes"]) < USAGE_SLACK_BYTES
    assert page_json()["notice"] is None  # the policy's own mark (a tenth) is not reached: no swap announced
    seen = chromium("en", "en-low-allowance", tmp_path)
    assert seen["low-allowance"].startswith("Data running low: 750 MB left of 5.0 GB per month.")
    before = agent_status()["sim"]["iccid"]
    lab("swap", "--plan", "any")  # a fresh SIM, of any plan again, for the tests after
    wait_until("a fresh SIM", lambda: agent_status()["sim"]["iccid"] != before, timeout=150, interval=1)


def test_the_last_swap_survives_an_agent_restart(running_lab: dict[str, Any]) -> None:
    """The swap history is on flash (swaps.json): after a restart the console still lists the
    swaps before it, and the page's last swap is one of them or a newer one (a restart may
    swap at start-up)."""
    before = control(running_lab, "swaps")["swaps"]
    assert before, "the tests before made swaps"
    lab("agent", "restart")
    wait_until("the page answering again", lambda: page_json()["state"]["code"] in ("full_speed", "connected"),
               timeout=180, interval=2)
    after = control(running_lab, "swaps")["swaps"]
    assert before[-1]["swap_id"] in [s["swap_id"] for s in after]
    last = page_json()["last_swap"]
    assert last is not None and last["reason"] in ("command", "throttled", "allowance", "boot")
