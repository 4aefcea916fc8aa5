"""An opened profile's plaintext fields, each checked against its format (agent/cloud/profilecheck.py).

Every refusal names the field and never the value: the value may be a key, and the rest
of it is text whoever writes profiles controls."""

from __future__ import annotations

from typing import Any

import pytest

from agent.cloud import sealing
from agent.cloud.profilecheck import ProfileFieldError, check_profile, luhn_valid
from agent.errors import SealError

GOOD: dict[str, Any] = {
    "iccid": "8981100000001000019", "imsi": "440100000100001", "plmn": "44010", "apn": "internet.a.lab",
    "ki": "000102030405060708090a0b0c0d0e0f", "opc": "f0e0d0c0b0a090807060504030201000",
    "plan": {"name": "5GB-month", "cap_bytes": 5_000_000_000, "window": "month", "throttle_kbps": 128,
             "remaining_bytes": 1_000_000, "tz": "+09:00"},
}

BAD: list[tuple[str, Any, str]] = [
    ("iccid", "8981100000001000\u00e919", "iccid"),  # the crash of issue 20: non-ASCII into AT+VSIMLOAD
    ("iccid", "8981100000001000\u0661\u0669", "iccid"),  # Arabic-Indic digits: \d takes them, the modem does not
    ("iccid", "8981100000001000018", "iccid"),  # Luhn
    ("iccid", "1234567890123456789", "iccid"),  # not a telecom ICCID (89...)
    ("iccid", "89811", "iccid"),
    ("iccid", 8981100000001000019, "iccid"),
    ("imsi", "4401000001000A", "imsi"),
    ("imsi", "4401000001000\u00e9", "imsi"),
    ("imsi", "4401000001000011", "imsi"),  # 16 digits
    ("plmn", "4401", "plmn"),
    ("plmn", '44010"', "plmn"),
    ("apn", 'internet",,"x', "apn"),  # would break out of the AT string
    ("apn", "a..b", "apn"),
    ("apn", "-" * 63, "apn"),
    ("apn", "rac1.example", "apn"),
    ("apn", "internet.mnc010.mcc440.gprs", "apn"),
    ("apn", "x\r\nAT+CFUN=0", "apn"),
    ("apn", 7, "apn"),
    ("ki", "0001020304050607", "ki"),
    ("ki", "zz0102030405060708090a0b0c0d0e0f", "ki"),
    ("opc", " 000102030405060708090a0b0c0d0e0f", "opc"),  # bytes.fromhex would have taken the blank
    ("opc", "F0E0D0C0B0A090807060504030201000", "opc"),  # one spelling: lowercase (docs/protocol.md 4)
    ("plan", [], "plan"),
    ("plan", {"cap_bytes": "lots"}, "plan.cap_bytes"),
    ("plan", {"cap_bytes": -1}, "plan.cap_bytes"),
    ("plan", {"cap_bytes": 10**18}, "plan.cap_bytes"),
    ("plan", {"cap_bytes": True}, "plan.cap_bytes"),
    ("plan", {"throttle_kbps": 0}, "plan.throttle_kbps"),
    ("plan", {"throttle_kbps": 128.5}, "plan.throttle_kbps"),
    ("plan", {"remaining_bytes": -5}, "plan.remaining_bytes"),
    ("plan", {"window": "fortnight"}, "plan.window"),
    ("plan", {"name": "\x1b[2J"}, "plan.name"),
    ("plan", {"name": ""}, "plan.name"),
    ("plan", {"tz": "Asia/Tokyo"}, "plan.tz"),
    ("plan", {"tz": "+15:00"}, "plan.tz"),
    ("plan", {"extra": 1}, "plan.<unknown>"),
    ("secret_sauce", "x", "<unknown>"),
]


@pytest.mark.parametrize(("key", "value", "field"), BAD)
def test_a_bad_field_is_refused_by_name_never_by_value(key: str, value: Any, field: str) -> None:
    body = dict(GOOD, **{key: value})
    with pytest.raises(ProfileFieldError) as err:
        check_profile(body)
    assert err.value.field == field and err.value.reason == "profile_field"
    assert isinstance(err.value, SealError)  # refused and reported like any bad envelope
    shown = str(err.value) + repr(err.value)
    for secret in (GOOD["ki"], GOOD["opc"], str(value)):
        if len(str(secret)) > 4:
            assert str(secret) not in shown


def test_a_good_profile_and_its_variants_pass() -> None:
    check_profile(GOOD)
    check_profile(dict(GOOD, imsi="44010000010000", apn="", plan={}))  # 14-digit IMSI, default APN
    check_profile(dict(GOOD, plan=None, apn="3gnet"))
    check_profile({k: v for k, v in GOOD.items() if k not in ("apn", "plan")})
    assert sealing.profile_from_dict(GOOD).iccid == GOOD["iccid"]


def test_missing_fields_are_named() -> None:
    for key in ("iccid", "imsi", "plmn", "ki", "opc"):
        with pytest.raises(ProfileFieldError, match=f"'{key}' is missing"):
            check_profile({k: v for k, v in GOOD.items() if k != key})
    with pytest.raises(ProfileFieldError, match="'profile' is not an object"):
        check_profile(["not", "a", "profile"])


def test_luhn() -> None:
    assert luhn_valid("8981100000001000019") and luhn_valid("79927398713")
    assert not luhn_valid("8981100000001000018") and not luhn_valid("79927398710")


def test_profile_from_dict_checks_before_building() -> None:
    with pytest.raises(ProfileFieldError, match="'iccid'"):
        sealing.profile_from_dict(dict(GOOD, iccid="8981100000001000\u00e919"))
