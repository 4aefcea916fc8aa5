"""The remote-SIM board's cards at rest (agent/cloud/cardvault.py): encrypted, bound to
device and slot, 0600 from the first byte; the seed opened from its platform envelope."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.cloud import sealing
from agent.cloud.cardvault import CardVault, open_seed
from agent.errors import SealError
from agent.sim import SimProfile
from agent.usim.sqn import SqnState

KI, OPC = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc"), bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
PROFILE = SimProfile(iccid="8981100000000000010", imsi="440101234567891", ki=KI, opc=OPC, plmn="44010", apn="a.example")


@pytest.fixture
def key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def test_a_card_round_trips_with_its_sqn_and_no_key_is_on_disk(tmp_path: Path, key: X25519PrivateKey) -> None:
    vault = CardVault(tmp_path / "cards", key, "rtr-1")
    sqn = SqnState(seq=(5,) + (0,) * 31)
    vault.keep(1, PROFILE, sqn)
    vault.keep_active(1, PROFILE.iccid)
    blob = (tmp_path / "cards" / "slot-1.sealed").read_bytes()
    for secret in (KI, OPC, KI.hex().encode(), OPC.hex().encode(), PROFILE.imsi.encode()):
        assert secret not in blob
    assert stat.S_IMODE((tmp_path / "cards" / "slot-1.sealed").stat().st_mode) == 0o600
    again = CardVault(tmp_path / "cards", key, "rtr-1")
    profile, state = again.open(1)  # type: ignore[misc]
    assert (profile.ki, profile.opc, profile.iccid, state) == (KI, OPC, PROFILE.iccid, sqn)
    assert again.active() == (1, PROFILE.iccid) and again.slots() == [1]


def test_a_new_sqn_state_is_kept(tmp_path: Path, key: X25519PrivateKey) -> None:
    vault = CardVault(tmp_path, key, "rtr-1")
    vault.keep(2, PROFILE, None)
    later = SqnState(seq=(0, 9) + (0,) * 30)
    vault.keep_sqn(2, later)
    assert vault.open(2)[1] == later  # type: ignore[index]


@pytest.mark.parametrize("change", ["other_key", "other_device", "other_slot", "flipped"])
def test_a_file_that_is_not_this_devices_slot_does_not_open(tmp_path: Path, key: X25519PrivateKey,
                                                            change: str) -> None:
    CardVault(tmp_path, key, "rtr-1").keep(1, PROFILE, None)
    path = tmp_path / "slot-1.sealed"
    vault = CardVault(tmp_path, key, "rtr-1")
    slot = 1
    if change == "other_key":
        vault = CardVault(tmp_path, X25519PrivateKey.generate(), "rtr-1")
    elif change == "other_device":
        vault = CardVault(tmp_path, key, "rtr-2")
    elif change == "other_slot":
        path.rename(tmp_path / "slot-2.sealed")
        slot = 2
    else:
        blob = bytearray(path.read_bytes())
        blob[-1] ^= 1
        path.write_bytes(bytes(blob))
    with pytest.raises(SealError) as info:
        vault.open(slot)
    assert info.value.reason == "at_rest"
    assert KI.hex() not in str(info.value) and OPC.hex() not in str(info.value)


def test_the_seed_opens_from_its_platform_envelope_and_a_forged_one_does_not(tmp_path: Path,
                                                                             key: X25519PrivateKey) -> None:
    import json

    platform = Ed25519PrivateKey.generate()
    env = sealing.seal(PROFILE, device_id="rtr-1", device_public=key.public_key(), platform_key=platform,
                       assignment_id="seed", seq=0, issued_at=0, expires_at=1)  # long expired: a seed does not expire
    (tmp_path / "seed").write_text(json.dumps(env))
    seed = open_seed(tmp_path / "seed", device_id="rtr-1", sealing_key=key, platform_public=platform.public_key())
    assert (seed.ki, seed.iccid) == (KI, PROFILE.iccid)
    with pytest.raises(SealError) as info:
        open_seed(tmp_path / "seed", device_id="rtr-1", sealing_key=key,
                  platform_public=Ed25519PrivateKey.generate().public_key())
    assert info.value.reason == "signature"
