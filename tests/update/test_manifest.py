"""The manifest's signature and the checks of an offer: each refusal its own typed error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cloud import platformsig
from agent.errors import (
    BadManifest,
    BadReleaseSignature,
    Downgrade,
    IncompatibleState,
    OversizedArtifact,
    ReplayedManifest,
    UpdateError,
    WrongBoard,
)
from agent.update import manifest as mf

DEVICE = mf.DeviceFacts(board="virtual", running="0.1.0", state_version=1)


def signed(cut, **kw) -> tuple[dict, Path]:
    artifact, manifest = cut(**kw)
    return json.loads(manifest.read_text()), artifact


def test_a_cut_release_verifies_and_is_accepted(cut, release_key):
    doc, artifact = signed(cut)
    m = mf.verify(doc, release_key.public_key())
    assert (m.version, m.size, m.rollout) == ("0.2.0", artifact.stat().st_size, 1)
    mf.check_offer(m, DEVICE)
    assert not mf.same_as_running(m, DEVICE)


def test_a_manifest_signed_by_another_key_is_refused(cut, release_key):
    doc, _ = signed(cut, key=Ed25519PrivateKey.generate())
    with pytest.raises(BadReleaseSignature):
        mf.verify(doc, release_key.public_key())


def test_the_platform_key_signing_the_same_bytes_under_its_own_context_does_not_verify(cut, release_key):
    """A policy signature (another context) over the manifest's body is no release signature."""
    doc, _ = signed(cut)
    forged = platformsig.sign_policy({k: v for k, v in doc.items() if k != "sig"}, device_id="d", key=release_key)
    with pytest.raises(BadReleaseSignature):
        mf.verify(forged, release_key.public_key())


@pytest.mark.parametrize("field,value", [("size", 1), ("sha256", "0" * 64), ("version", "9.9.9"),
                                         ("boards", ["virtual", "other"]), ("urgent", True), ("rollout", 99)])
def test_any_field_changed_after_signing_breaks_the_signature(cut, release_key, field, value):
    doc, _ = signed(cut)
    with pytest.raises(BadReleaseSignature):
        mf.verify({**doc, field: value}, release_key.public_key())


def test_unsigned_and_garbled_signatures_are_refused(cut, release_key):
    doc, _ = signed(cut)
    for sig in (None, "", "not base64!", "AAAA"):
        with pytest.raises(BadReleaseSignature):
            mf.verify({**doc, "sig": sig}, release_key.public_key())


def test_another_board_is_refused(cut, release_key):
    doc, _ = signed(cut, board_names=["quectel-ec25-openwrt"])
    with pytest.raises(WrongBoard) as info:
        mf.check_offer(mf.verify(doc, release_key.public_key()), DEVICE)
    assert info.value.reason == "board" and info.value.version == "0.2.0"


def test_a_release_below_the_floor_is_a_refused_downgrade(cut, release_key):
    doc, _ = signed(cut, version="0.1.5")
    m = mf.verify(doc, release_key.public_key())
    mf.check_offer(m, DEVICE)  # older than running but above every floor: the platform may roll back
    with pytest.raises(Downgrade):
        mf.check_offer(m, mf.DeviceFacts(board="virtual", running="0.1.0", state_version=1, floor="0.1.10"))
    doc, _ = signed(cut, version="0.1.5", floor="0.2.0", rollout=2)
    with pytest.raises(Downgrade):
        mf.check_offer(mf.verify(doc, release_key.public_key()), DEVICE)


def test_an_older_rollout_is_a_replay_and_the_same_one_with_another_artifact_too(cut, release_key):
    doc, _ = signed(cut, rollout=5)
    m = mf.verify(doc, release_key.public_key())
    seen = mf.DeviceFacts(board="virtual", running="0.1.0", state_version=1, rollout=6, rollout_sha256="a" * 64)
    with pytest.raises(ReplayedManifest):
        mf.check_offer(m, seen)
    with pytest.raises(ReplayedManifest):
        mf.check_offer(m, mf.DeviceFacts(board="virtual", running="0.1.0", state_version=1, rollout=5,
                                         rollout_sha256="a" * 64))
    mf.check_offer(m, mf.DeviceFacts(board="virtual", running="0.1.0", state_version=1, rollout=5,
                                     rollout_sha256=m.sha256))  # the same offer again: a resume


def test_a_release_that_cannot_read_this_state_is_refused(cut, release_key):
    doc, _ = signed(cut, min_state_version=2, state_version=2)
    with pytest.raises(IncompatibleState):
        mf.check_offer(mf.verify(doc, release_key.public_key()), DEVICE)


def test_a_size_beyond_the_device_limit_is_refused_before_any_fetch(release_key):
    body = {"version": "0.2.0", "build": "b", "size": mf.MAX_ARTIFACT_BYTES + 1, "sha256": "a" * 64,
            "min_state_version": 1, "state_version": 1, "boards": ["virtual"], "rollout": 1, "floor": "0"}
    with pytest.raises(OversizedArtifact):
        mf.verify(mf.sign(body, release_key), release_key.public_key())


@pytest.mark.parametrize("change", [{"version": "1.x"}, {"sha256": "A" * 64}, {"size": 0}, {"rollout": -1},
                                    {"boards": []}, {"min_state_version": 3}, {"urgent": "yes"},
                                    {"build": "b" * 65}, {"size": True}])
def test_malformed_signed_manifests_are_bad_manifests(release_key, change):
    body = {"version": "0.2.0", "build": "b", "size": 10, "sha256": "a" * 64, "min_state_version": 1,
            "state_version": 1, "boards": ["virtual"], "rollout": 1, "floor": "0", **change}
    with pytest.raises(BadManifest):
        mf.verify(mf.sign(body, release_key), release_key.public_key())


def test_every_refusal_is_an_update_error_with_its_own_reason():
    reasons = {cls.reason for cls in (BadManifest, BadReleaseSignature, Downgrade, IncompatibleState,
                                      OversizedArtifact, ReplayedManifest, WrongBoard)}
    assert len(reasons) == 7 and all(issubclass(c, UpdateError) for c in (Downgrade, WrongBoard))


def test_versions_compare_as_numbers():
    assert mf.version_key("0.10.0") > mf.version_key("0.9.9")
    assert mf.version_key("1.0") == mf.version_key("1.0.0")
