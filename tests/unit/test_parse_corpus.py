"""Our AT parsers against ModemManager's captured test vectors (../shared/at-corpus).

Each vector of the families the agent uses is run through the matching parser and the
result is compared, field by field, with what ModemManager's own test checks. A vector we
knowingly do not match is listed in tests/corpus_known_gaps.toml with its reason; a listed
gap that starts passing fails the test, so the list cannot rot. A per-family pass table is
written to the terminal at the end of the session (no -s needed).
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ParseError
from agent.modem import codes, errcodes
from agent.modem import parse as p
from agent.modem.dialects import get_dialect
from agent.modem.driver import select_cid
from tests.conftest import CORPUS, CORPUS_MISSING

GAPS_FILE = Path(__file__).resolve().parent.parent / "corpus_known_gaps.toml"

FAMILIES_UNDER_TEST = (
    "+CREG", "+CGREG", "+CEREG", "+C5GREG", "+CESQ", "+COPS?", "+COPS=?", "+CPIN?", "ICCID",
    "+CGDCONT?", "+CGDCONT=?", "+CGACT?", "+CGCONTRDP", "+CGEV", "+CFUN?", "+CME ERROR",
    "+CMS ERROR", "MODEM ERROR", "final result code", "echo removal", "+CEER", "+CCLK?", "+GSN",
)
EXPECTED_VECTORS = 293
"""How many vectors these families hold at the corpus commit the README names."""

MIN_PASSING = 285
"""The brief's bar: at most 8 vectors may be listed as known gaps."""

FLOAT_TOLERANCE = 0.1
"""The corpus README: converted dBm/dB values are compared with a tolerance of 0.1."""


def _load_vectors() -> list[dict[str, Any]]:
    """The vectors of the families under test; none when the corpus is missing, and then
    ``test_vector`` gets one case that fails with the reason (never an empty parametrization,
    which pytest reports as a skip)."""
    if not CORPUS.exists():
        return []
    with CORPUS.open(encoding="utf-8") as handle:
        vectors = [json.loads(line) for line in handle if line.strip()]
    return [v for v in vectors if v["command_family"] in FAMILIES_UNDER_TEST]


def _load_gaps() -> dict[str, str]:
    with GAPS_FILE.open("rb") as handle:
        return dict(tomllib.load(handle).get("gaps", {}))


VECTORS = _load_vectors()
GAPS = _load_gaps()


# ---- adapters: one vector -> a dict in the corpus's field names --------------------------------


def _frame(raw: str) -> dict[str, Any]:
    frame = codes.final_result(raw)
    return {
        "final_result_found": frame is not None,
        "is_error": bool(frame and frame.final.is_error),
        "final_result": frame.final.line if frame else None,
        "body_lines": list(frame.body) if frame else None,
    }


def _registration(v: dict[str, Any]) -> dict[str, Any]:
    reg = p.parse_registration(v["raw"], family=v["command_family"])
    return {"stat": reg.stat, "lac": reg.lac, "tac": reg.tac, "ci": reg.ci, "act": reg.act}


def _cesq(v: dict[str, Any]) -> dict[str, Any]:
    sig = p.parse_cesq(v["raw"])
    names = {
        "gsm_rssi_dbm": sig.rssi_dbm,
        "umts_rscp_dbm": sig.rscp_dbm,
        "umts_ecio_db": sig.ecno_db,
        "lte_rsrq_db": sig.rsrq_db,
        "lte_rsrp_dbm": sig.rsrp_dbm,
    }
    return {**sig.raw, "converted": {k: val for k, val in names.items() if val is not None}}


def _cops_query(v: dict[str, Any]) -> dict[str, Any]:
    ctx = v.get("context", {})
    if "scope" in ctx:
        return {"operator": p.decode_text(v["raw"], ctx.get("charset", "GSM"))}
    op = p.parse_cops_query(v["raw"], charset=ctx.get("charset", "GSM"))
    return {"mode": op.mode, "format": op.format, "operator": op.oper, "act": op.act}


def _cops_test(v: dict[str, Any]) -> dict[str, Any]:
    nets = p.parse_cops_test(v["raw"], charset=v.get("context", {}).get("charset", "GSM"))
    return {
        "networks": [
            {"stat": n.stat, "operator_long": n.long_name, "operator_short": n.short_name,
             "operator_id": n.numeric, "act": n.act}
            for n in nets
        ]
    }


def _cpin(v: dict[str, Any]) -> dict[str, Any]:
    if codes.parse_error(v["raw"]) is not None:
        return {"lock": None}
    return {"lock": p.parse_cpin(v["raw"])}


def _cgdcont_query(v: dict[str, Any]) -> dict[str, Any]:
    contexts = p.parse_cgdcont_query(v["raw"])
    ctx = v.get("context", {})
    if "requested_apn" in ctx:
        formats = p.parse_cgdcont_test(ctx["cgdcont_test_response"])
        choice = select_cid(contexts, formats, ctx["requested_apn"], ctx["requested_pdp_type"])
        return {
            "selected_cid": choice.cid,
            "reuses_existing_context": choice.reuses_existing,
            "overwrites_existing_context": choice.overwrites_existing,
        }
    return {"contexts": [{"cid": c.cid, "pdp_type": c.pdp_type, "apn": c.apn} for c in contexts]}


def _cgdcont_test(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "formats": [
            {"pdp_type": f.pdp_type, "min_cid": f.min_cid, "max_cid": f.max_cid}
            for f in p.parse_cgdcont_test(v["raw"])
        ]
    }


def _cgact(v: dict[str, Any]) -> dict[str, Any]:
    return {"contexts": [{"cid": s.cid, "active": s.active} for s in p.parse_cgact_query(v["raw"])]}


def _subnet(prefix: int | None, address: str | None) -> str | None:
    if prefix is None or address is None or ":" in address:
        return None
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((mask >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def _cgcontrdp(v: dict[str, Any]) -> dict[str, Any]:
    params = p.parse_cgcontrdp(v["raw"])[0]
    return {
        "cid": params.cid,
        "bearer_id": params.bearer_id,
        "apn": params.apn,
        "address": params.address,
        "subnet": _subnet(params.prefix, params.address),
        "gateway": params.gateway,
        "dns_primary": params.dns[0] if params.dns else None,
        "dns_secondary": params.dns[1] if len(params.dns) > 1 else None,
    }


def _cgev(v: dict[str, Any]) -> dict[str, Any]:
    event = p.parse_cgev(v["raw"])
    return {k: getattr(event, k) for k in ("event", "pdp_type", "address", "cid", "parent_cid", "event_type")}


def _cfun(v: dict[str, Any]) -> dict[str, Any]:
    fun = p.parse_cfun(v["raw"])
    dialect = "ublox" if "blox" in v.get("vendor", "") else "generic"
    return {
        "fun": fun,
        "power_state": get_dialect(dialect).cfun_power_state(fun),
        "allowed_modes": p.cfun_allowed_modes(fun),
        "mbm_mode": fun if fun in (5, 6) else None,
    }


def _error(v: dict[str, Any]) -> dict[str, Any]:
    if "scope" in v.get("context", {}):
        lookup = errcodes.cme_code_for_text if v["command_family"] == "+CME ERROR" else errcodes.cms_code_for_text
        return {"error_code": lookup(v["raw"])}
    return _frame(v["raw"])


def _mm_iso8601(moment: datetime) -> str:
    """ModemManager's format: ``Z`` for UTC, ``+HH`` when the minutes are zero, else ``+HH:MM``."""
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if minutes == 0:
        return base + "Z"
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{base}{sign}{hours:02d}" + (f":{mins:02d}" if mins else "")


def _cclk(v: dict[str, Any]) -> dict[str, Any]:
    moment = p.parse_cclk(v["raw"])
    offset = moment.utcoffset()
    return {
        "iso8601": _mm_iso8601(moment),
        "tz_offset_minutes": int(offset.total_seconds() // 60) if offset is not None else None,
    }


def _gsn(v: dict[str, Any]) -> dict[str, Any]:
    ids = p.parse_gsn(v["raw"])
    return {"imei": ids.imei, "esn": ids.esn, "meid": ids.meid}


ADAPTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "+CREG": _registration,
    "+CGREG": _registration,
    "+CEREG": _registration,
    "+C5GREG": _registration,
    "+CESQ": _cesq,
    "+COPS?": _cops_query,
    "+COPS=?": _cops_test,
    "+CPIN?": _cpin,
    "ICCID": lambda v: {"iccid": p.parse_iccid(v["raw"])},
    "+CGDCONT?": _cgdcont_query,
    "+CGDCONT=?": _cgdcont_test,
    "+CGACT?": _cgact,
    "+CGCONTRDP": _cgcontrdp,
    "+CGEV": _cgev,
    "+CFUN?": _cfun,
    "+CME ERROR": _error,
    "+CMS ERROR": _error,
    "MODEM ERROR": _error,
    "final result code": lambda v: _frame(v["raw"]),
    "echo removal": lambda v: {"after_echo_removal": codes.strip_echo(v["raw"])},
    "+CEER": lambda v: {"reason": p.parse_ceer(v["raw"]).reason},
    "+CCLK?": _cclk,
    "+GSN": _gsn,
}


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        return expected is not None and actual is not None and abs(expected - actual) <= FLOAT_TOLERANCE
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(_same(expected[k], actual[k]) for k in expected)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(e, a) for e, a in zip(expected, actual))
    return bool(expected == actual)


def check_vector(vector: dict[str, Any]) -> str | None:
    """None when our parser matches the vector, else a one-line description of the mismatch."""
    expected = vector["expected"]
    adapter = _frame_adapter if vector.get("context", {}).get("synthetic") else ADAPTERS[vector["command_family"]]
    try:
        actual = adapter(vector)
    except ParseError as exc:
        return None if expected.get("parse_error") else f"ParseError: {exc}"
    if expected.get("parse_error"):
        return f"expected a ParseError, got {actual}"
    wrong = {k: (expected[k], actual.get(k, "<missing>")) for k in expected if not _same(expected[k], actual.get(k))}
    return f"mismatch (expected, got): {wrong}" if wrong else None


def _frame_adapter(vector: dict[str, Any]) -> dict[str, Any]:
    return _frame(vector["raw"])


# ---- tests ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tally(request: pytest.FixtureRequest, corpus_path: Path) -> Counter[tuple[str, bool]]:
    """Collects (family, passed) per vector and writes the table when the session ends."""
    counts: Counter[tuple[str, bool]] = Counter()

    def report() -> None:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or not counts:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                _write_table(reporter, counts)
        else:
            _write_table(reporter, counts)

    request.addfinalizer(report)
    return counts


def _write_table(reporter: Any, counts: Counter[tuple[str, bool]]) -> None:
    """The per-family pass table, straight to the terminal (capture is off meanwhile)."""
    reporter.write_line("")
    reporter.write_line("AT corpus: vectors matched per family")
    for family in FAMILIES_UNDER_TEST:
        ok, bad = counts[(family, True)], counts[(family, False)]
        if ok or bad:
            reporter.write_line(f"  {family:<18} {ok:>3}/{ok + bad}")
    total_ok = sum(n for (_, passed), n in counts.items() if passed)
    reporter.write_line(f"  {'total':<18} {total_ok:>3}/{sum(counts.values())}")


def test_corpus_has_the_expected_families(corpus_path: Path) -> None:
    assert len(VECTORS) == EXPECTED_VECTORS
    assert {v["command_family"] for v in VECTORS} == set(FAMILIES_UNDER_TEST)


def test_gap_list_names_real_vectors_and_stays_small(corpus_path: Path) -> None:
    ids = {v["id"] for v in VECTORS}
    assert set(GAPS) <= ids, f"gaps that are not vectors: {set(GAPS) - ids}"
    assert all(reason.strip() for reason in GAPS.values()), "every gap needs a reason"
    assert EXPECTED_VECTORS - len(GAPS) >= MIN_PASSING


@pytest.mark.parametrize("vector", VECTORS or [None], ids=[v["id"] for v in VECTORS] or ["corpus-missing"])
def test_vector(vector: dict[str, Any] | None, tally: Counter[tuple[str, bool]]) -> None:
    if vector is None:
        pytest.fail(CORPUS_MISSING)
    problem = check_vector(vector)
    tally[(vector["command_family"], problem is None)] += 1
    if vector["id"] in GAPS:
        assert problem is not None, f"listed gap now passes, remove it from {GAPS_FILE.name}"
        return
    assert problem is None, problem


def test_harness_reports_a_wrong_expectation(corpus_path: Path) -> None:
    """The comparison can fail: a vector with one expected value changed is a mismatch,
    and one that wrongly expects a ParseError is caught too."""
    vector = next(v for v in VECTORS if v["id"] == "mm-helpers:cereg2_solicited")
    assert check_vector(vector) is None
    wrong_tac = {**vector, "expected": {**vector["expected"], "tac": 7937}}
    assert "tac" in (check_vector(wrong_tac) or "")
    wants_error = {**vector, "expected": {"parse_error": True}}
    assert check_vector(wants_error) is not None
    cesq = next(v for v in VECTORS if v["id"] == "mm-helpers:cesq-1")
    off_by_more_than_tolerance = {**cesq, "expected": {"converted": {"lte_rsrq_db": -10.2, "lte_rsrp_dbm": -61.0}}}
    assert check_vector(off_by_more_than_tolerance) is not None
