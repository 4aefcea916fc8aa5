"""``pocket-agent decode`` run as a technician runs it: the real console entry in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent

DECODE_TIMEOUT_S = 20
"""Generous for one interpreter start-up on a loaded CI runner; decode itself takes ms."""


def run_decode(data: bytes, *args: str) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[bytes]]:
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "decode", *args],
        input=data,
        capture_output=True,
        cwd=REPO,
        timeout=DECODE_TIMEOUT_S,
        check=False,
    )
    objects = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    return objects, proc


SESSION = (
    b"AT+CPIN?\r\r\n+CPIN: READY\r\n\r\nOK\r\n"
    b'\r\n+CEREG: 1,"1F00","79D903",7\r\n'
    b"AT+CESQ\r\r\n+CESQ: 99,99,255,255,20,80\r\n\r\nOK\r\n"
    b"AT+CCID\r\r\n+CCID: 984402003576012594F9\r\n\r\nOK\r\n"
    b"AT+CGDCONT?\r\r\n+CGDCONT: 1,\"IP\",\"internet\",\"\",0,0\r\n+CGDCONT: 2,\"IPV6\",\"\",\"\",0,0\r\n\r\nOK\r\n"
    b"AT+CGACT=1,3\r\r\n+CME ERROR: 133\r\n"
    b"+CGEV: NW PDN DEACT 1\r\n"
    b"this is not AT\r\n"
)


def test_a_session_decodes_to_one_object_per_response_urc_and_error() -> None:
    objects, proc = run_decode(SESSION)
    assert proc.returncode == 0, proc.stderr.decode()
    content = [o for o in objects if o["kind"] != "echo"]
    assert [(o.get("family"), o["kind"]) for o in content] == [
        ("+CPIN", "response"),
        ("+CEREG", "urc"),
        ("+CESQ", "response"),
        ("+CCID", "response"),
        ("+CGDCONT", "response"),
        ("+CME ERROR", "error"),
        ("+CGEV", "urc"),
        (None, "unknown"),
    ]
    cpin, cereg, cesq, ccid, cgdcont, error, cgev, unknown = content
    assert cpin["lock"] == "READY"
    assert (cereg["stat"], cereg["tac"], cereg["ci"], cereg["act"]) == (1, 0x1F00, 0x79D903, "lte")
    assert cesq["rsrp"] == 80 and cesq["converted"] == {"rsrq_db": -10.0, "rsrp_dbm": -61.0}
    assert ccid["iccid"] == "8944200053671052499"
    assert cgdcont["contexts"] == [
        {"cid": 1, "pdp_type": "IP", "apn": "internet"},
        {"cid": 2, "pdp_type": "IPV6", "apn": None},
    ]
    assert (error["code"], error["name"]) == (133, "requested service option not subscribed")
    assert (cgev["event"], cgev["cid"]) == ("nw_pdn_deact", 1)
    assert unknown["raw"] == "this is not AT"


def test_framing_cr_only_lf_only_and_no_trailing_newline_give_the_same_objects() -> None:
    crlf, _ = run_decode(b"+CSQ: 20,99\r\n+CREG: 5\r\n+CFUN: 4\r\n")
    cr_only, _ = run_decode(b"+CSQ: 20,99\r+CREG: 5\r+CFUN: 4")
    lf_only, _ = run_decode(b"\n\n+CSQ: 20,99\n+CREG: 5\n\n+CFUN: 4\n")
    assert crlf == cr_only == lf_only
    csq, creg, cfun = crlf
    assert csq["converted"] == {"rssi_dbm": -73.0} and csq["ber"] == 99
    assert (creg["kind"], creg["stat"], creg["roaming"]) == ("urc", 5, True)
    assert (cfun["fun"], cfun["power_state"]) == (4, "low")


def test_no_line_is_dropped_even_garbage_or_malformed_known_families() -> None:
    data = b"+CREG: 42\r\n\xff\xfe binary\r\n+CSQ: x,y\r\nNO CARRIER\r\nRING\r\n^MODE: 17,17\r\nOK\r\n"
    objects, proc = run_decode(data)
    assert proc.returncode == 0
    kinds = [(o.get("family"), o["kind"]) for o in objects]
    assert kinds == [
        ("+CREG", "unknown"),
        (None, "unknown"),
        ("+CSQ", "unknown"),
        ("NO CARRIER", "error"),
        ("RING", "urc"),
        ("^MODE", "urc"),
    ]
    assert objects[0]["raw"] == "+CREG: 42" and "out of range" in objects[0]["error"]
    assert "binary" in objects[1]["raw"]


def test_ucs2_charset_option_decodes_operator_names() -> None:
    objects, _ = run_decode(b'+COPS: 0,0,"0056006500720069007A006F006E",7\r\n', "--charset", "UCS2")
    assert objects == [{"family": "+COPS", "kind": "response", "mode": 0, "format": 0,
                        "operator": "Verizon", "act": "lte"}]


def test_solicited_registration_after_echo_is_a_response_with_n() -> None:
    objects, _ = run_decode(b'AT+CEREG?\r\r\n+CEREG: 4,1,"1F00","79D903",7,,,"00100100","01000111"\r\nOK\r\n')
    (echo, reg) = objects
    assert echo == {"kind": "echo", "command": "AT+CEREG?"}
    assert (reg["kind"], reg["n"], reg["stat"], reg["tac"]) == ("response", 4, 1, 0x1F00)


def test_every_corpus_response_decodes_in_process_without_raising(corpus_path: Path) -> None:
    """The whole corpus (all 761 vectors, every family) through the decoder: it never raises,
    and a vector made of one non-OK line always yields exactly one non-echo object."""
    from agent.modem.decode import decode_stream

    vectors = [json.loads(line) for line in corpus_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for vector in vectors:
        lines = [line.strip() for line in vector["raw"].replace("\r", "\n").split("\n") if line.strip()]
        objects = list(decode_stream(lines))
        content = [o for o in objects if o["kind"] != "echo"]
        if len(lines) == 1 and lines[0] != "OK" and not lines[0].upper().startswith("AT"):
            assert len(content) == 1, (vector["id"], objects)
        for obj in content:
            assert obj["kind"] in ("response", "urc", "error", "unknown"), obj
