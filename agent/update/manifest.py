"""A release's manifest: what it is, who signed it, and whether this device may take it.

The manifest is a JSON object signed with Ed25519 by the **release key**, whose public
half the device pins at provisioning (``[update] release_key``). It is not the platform's
profile-signing key (agent/cloud/platformsig.py) on purpose: that key is online, used by
the assignment service for every SIM it hands out, and whoever holds it can give a device
a SIM; a release key can give a device new code, which can read every key the device has.
The release key is kept offline by the people who cut releases, and a compromise of the
assignment service cannot become a fleet-wide code push (docs/update.md, "Two keys").

Signed bytes: ``RELEASE_CONTEXT`` + the canonical JSON of the manifest without ``sig``
(the same canonical form as every other signed document, agent/cloud/platformsig.py);
the context keeps a policy or a profile signature from ever verifying as a manifest.

The checks of an offer (``check_offer``), each its own typed error (agent/errors.py):
bad signature, another board, a version below the device's floor (a downgrade below the
minimum), a rollout older than one already seen (a replayed manifest), a state schema the
release cannot read, a size beyond what the device accepts.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.cloud.platformsig import canonical
from agent.errors import (
    BadManifest,
    BadReleaseSignature,
    Downgrade,
    IncompatibleState,
    OversizedArtifact,
    ProtocolError,
    ReplayedManifest,
    WrongBoard,
)

RELEASE_CONTEXT = b"pw/v1 release manifest signature\n"
"""Domain separation, as the platform's contexts: only a release signature verifies here."""
SIG_FIELD = "sig"
SIG_BYTES = 64  # an Ed25519 signature (RFC 8032)

MAX_ARTIFACT_BYTES = 8 * 1024 * 1024
"""The agent's code tree compresses to about 0.5 MB; 8 MB leaves room for growth while a
manifest claiming more (a mistake, or an attempt to fill the router's flash) is refused
before one byte is fetched."""
MAX_ROLLOUT = 2**31 - 1
"""Rollout numbers are a counter the release tooling increments per offer; it fits a signed
32-bit column and is exact in every JSON reader, as policy versions (platformsig)."""
MAX_TEXT = 64
"""Versions, builds and board names are short; anything longer is malformed."""
VERSION_RE = re.compile(r"^\d{1,6}(\.\d{1,6}){0,3}$")
"""``MAJOR.MINOR.PATCH`` (up to four parts): compared as integers, never as text."""
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def version_key(version: str) -> tuple[int, ...]:
    """``"0.10.2"`` -> ``(0, 10, 2, 0)``: the order of versions (padded so 1.0 == 1.0.0)."""
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise BadManifest(f"version {str(version)[:MAX_TEXT]!r} is not MAJOR.MINOR.PATCH")
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (4 - len(parts))


@dataclass(frozen=True)
class Manifest:
    """A verified manifest's fields (docs/update.md, "The manifest")."""

    version: str
    build: str
    size: int
    sha256: str
    min_state_version: int
    """The oldest state schema (agent/version.py STATE_VERSION) this release can read."""
    state_version: int
    """The state schema this release writes."""
    boards: tuple[str, ...]
    rollout: int
    """Increases with every offer the release tooling signs: an older one is a replay."""
    floor: str
    """The lowest version devices may run from now on: the device keeps the highest it saw."""
    urgent: bool = False
    """Fetched even on the seed SIM (a security fix); otherwise only on an assigned SIM."""

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "build": self.build, "size": self.size, "sha256": self.sha256,
                "min_state_version": self.min_state_version, "state_version": self.state_version,
                "boards": list(self.boards), "rollout": self.rollout, "floor": self.floor, "urgent": self.urgent}


def _field(doc: dict[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise BadManifest(f"manifest field {name!r} missing or not {kind.__name__}", version=_ver(doc))
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise BadManifest(f"manifest field {name!r} longer than {MAX_TEXT}", version=_ver(doc))
    return value


def _ver(doc: dict[str, Any]) -> str | None:
    version = doc.get("version")
    return version[:MAX_TEXT] if isinstance(version, str) else None


def parse(doc: Any) -> Manifest:
    """The manifest's fields, typed and bounded; BadManifest otherwise. Not its signature."""
    if not isinstance(doc, dict):
        raise BadManifest("manifest is not an object")
    version, floor = _field(doc, "version", str), _field(doc, "floor", str)
    version_key(version), version_key(floor)
    sha = _field(doc, "sha256", str)
    if not SHA256_RE.match(sha):
        raise BadManifest("manifest sha256 is not 64 lowercase hex digits", version=version)
    size = _field(doc, "size", int)
    if size <= 0:
        raise BadManifest(f"manifest size {size} is not positive", version=version)
    if size > MAX_ARTIFACT_BYTES:
        raise OversizedArtifact(f"manifest size {size} above the device's {MAX_ARTIFACT_BYTES}", version=version)
    rollout = _field(doc, "rollout", int)
    if not 0 <= rollout <= MAX_ROLLOUT:
        raise BadManifest(f"rollout {rollout} outside 0..{MAX_ROLLOUT}", version=version)
    boards = _field(doc, "boards", list)
    if not boards or not all(isinstance(b, str) and 0 < len(b) <= MAX_TEXT for b in boards):
        raise BadManifest("manifest boards is not a list of board names", version=version)
    states = [_field(doc, name, int) for name in ("min_state_version", "state_version")]
    if not 0 <= states[0] <= states[1]:
        raise BadManifest(f"state versions {states} are not 0 <= min <= written", version=version)
    urgent = doc.get("urgent", False)
    if not isinstance(urgent, bool):
        raise BadManifest("manifest urgent is not a boolean", version=version)
    return Manifest(version=version, build=_field(doc, "build", str), size=size, sha256=sha,
                    min_state_version=states[0], state_version=states[1], boards=tuple(boards),
                    rollout=rollout, floor=floor, urgent=urgent)


def _signed_bytes(doc: dict[str, Any]) -> bytes:
    try:
        return RELEASE_CONTEXT + canonical(doc)
    except ProtocolError as exc:
        raise BadManifest(str(exc), version=_ver(doc)) from None


def sign(manifest: Manifest | dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Release side (packaging/release.py): the manifest with its ``sig``."""
    body = manifest.to_dict() if isinstance(manifest, Manifest) else {k: v for k, v in manifest.items()
                                                                     if k != SIG_FIELD}
    return {**body, SIG_FIELD: base64.b64encode(key.sign(_signed_bytes(body))).decode()}


def verify(doc: Any, public: Ed25519PublicKey) -> Manifest:
    """Device side: the manifest if the pinned release key signed it; BadReleaseSignature
    (unsigned, badly signed, another key) or BadManifest. The signature is checked first:
    nothing an unsigned manifest says is believed, not even its size."""
    if not isinstance(doc, dict):
        raise BadManifest("manifest is not an object")
    sig = doc.get(SIG_FIELD)
    try:
        raw = base64.b64decode(sig, validate=True) if isinstance(sig, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != SIG_BYTES:
        raise BadReleaseSignature("manifest carries no Ed25519 signature", version=_ver(doc))
    try:
        public.verify(raw, _signed_bytes(doc))
    except InvalidSignature:
        raise BadReleaseSignature("manifest not signed by the pinned release key", version=_ver(doc)) from None
    return parse(doc)


@dataclass(frozen=True)
class DeviceFacts:
    """What an offer is judged against: this device's board, the version it runs, the
    schema of its state, the highest floor and the last rollout it accepted."""

    board: str
    running: str
    state_version: int
    floor: str = "0"
    rollout: int = -1
    rollout_sha256: str = ""


def check_offer(manifest: Manifest, device: DeviceFacts) -> None:
    """Raise the typed error that refuses ``manifest`` on ``device``, or return.

    A rollout equal to the last one accepted is the same offer again (a redelivery, a
    resume after reboot) only if it names the same artifact; any other is a replay."""
    if device.board not in manifest.boards:
        raise WrongBoard(f"release {manifest.version} is for {', '.join(manifest.boards)[:120]}, not {device.board}",
                         version=manifest.version)
    floor = max(version_key(device.floor), version_key(manifest.floor))
    if version_key(manifest.version) < floor:
        raise Downgrade(f"release {manifest.version} is below the minimum version "
                        f"{max(device.floor, manifest.floor, key=version_key)}", version=manifest.version)
    if manifest.rollout < device.rollout or (manifest.rollout == device.rollout
                                             and manifest.sha256 != device.rollout_sha256):
        raise ReplayedManifest(f"rollout {manifest.rollout} is older than the last one seen ({device.rollout})",
                               version=manifest.version)
    if manifest.min_state_version > device.state_version:
        raise IncompatibleState(f"release {manifest.version} reads state from version {manifest.min_state_version};"
                                f" this device's state is version {device.state_version}", version=manifest.version)


def same_as_running(manifest: Manifest, device: DeviceFacts) -> bool:
    """The offer is for the version already running: nothing to fetch."""
    return version_key(manifest.version) == version_key(device.running)
