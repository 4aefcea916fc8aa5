"""Envelope header checks that a valid platform signature does not excuse (issue 29,
sealing.py:147 and :170): the sequence number must be an integer (it is the replay
guard's high-water mark), and the ephemeral key and nonce must have their lengths. Each
envelope below is *correctly signed* over its bad header, so only the check itself stands
between it and the device; the refusal reason is what goes upstream, so it is asserted."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from agent.cloud import sealing
from agent.errors import SealError
from tests.cloud.test_sealing import DEVICE_KEY, NOW, PLATFORM_KEY, PROFILE, _open


def sealed(**header: Any) -> dict[str, Any]:
    """A fresh envelope for dev-a, its header changed by ``header`` and signed again by the
    platform, as a platform with a bug (or a stolen signing key) would send it."""
    env = sealing.seal(PROFILE, device_id="dev-a", device_public=DEVICE_KEY.public_key(), platform_key=PLATFORM_KEY,
                       assignment_id="a-dev-a-9", seq=9, issued_at=NOW - 60, expires_at=NOW + 600,
                       nonce=header.pop("nonce_bytes", None))
    env.update(header)
    ct = base64.b64decode(env["ct"])
    env["sig"] = base64.b64encode(PLATFORM_KEY.sign(sealing.SIG_CONTEXT + sealing.canonical(env) + ct)).decode()
    return env


def refusal(env: dict[str, Any]) -> str:
    with pytest.raises(SealError) as err:
        _open(env)
    return err.value.reason


def test_a_resigned_envelope_with_a_good_header_opens() -> None:
    """The helper itself: re-signing a good header changes nothing (so the refusals below
    are the checks', not a broken signature's)."""
    opened = _open(sealed())
    assert (opened.assignment_id, opened.seq, opened.profile.iccid) == ("a-dev-a-9", 9, PROFILE.iccid)


@pytest.mark.parametrize("seq", [True, False, "9", 9.0, None, [9]])
def test_a_signed_envelope_whose_seq_is_not_an_integer_is_malformed(seq: Any) -> None:
    assert refusal(sealed(seq=seq)) == "malformed"


@pytest.mark.parametrize("expires_at", ["soon", 1.5, None])
def test_a_signed_envelope_whose_expiry_is_not_an_integer_is_malformed(expires_at: Any) -> None:
    assert refusal(sealed(expires_at=expires_at)) == "malformed"


def test_a_signed_envelope_with_a_short_nonce_is_malformed() -> None:
    """AES-GCM would take an 11-byte nonce (and this one decrypts): the length check is
    the only refusal."""
    assert refusal(sealed(nonce_bytes=bytes(range(11)))) == "malformed"


@pytest.mark.parametrize("length", [31, 33, 0])
def test_a_signed_envelope_with_an_ephemeral_key_of_the_wrong_length_is_malformed(length: int) -> None:
    assert refusal(sealed(epk=base64.b64encode(bytes(range(length))).decode())) == "malformed"
