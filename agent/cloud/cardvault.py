"""A remote-SIM board's host-side cards at rest: encrypted, bound to the device, 0600.

On a vSIM board the SIMs live in the modem's slots and survive an agent restart there. On
a remote-SIM board (docs/remote-sim.md) the cards are the agent's own, in its memory: a
restart (a crash, SIGKILL in the middle of a swap, a power cut) would lose them, and the
swap machine's resume and rollback need the card that served and the one being switched
to. So each host slot's card is kept here, the way a SIM's keys are kept everywhere else
in the agent: never in plaintext on disk.

How it is sealed
----------------
One file per slot, ``slot-<n>.sealed``: a 12-byte nonce and AES-256-GCM over the JSON of
the profile (Ki and OPc included) and its SQN state. The key is derived with HKDF-SHA256
from the device's sealing key (the X25519 key sealed profiles are opened with,
``[cloud] sealing_key``, agent/cloud/sealing.py), with its own ``info``, so it is never
the key of any envelope. The associated data binds each file to the device id and the
slot: a file copied from another router, or from slot 1 to slot 2, does not open. Whoever
can read these files can read the sealing key beside them (same user, same 0600), so at
rest this adds nothing to an attacker who has the key store, and a flash dump without the
key store (the key store is its own directory, docs/layout.md) shows no Ki or OPc.

Files are written with agent.store.atomic_write: created 0600 from the first byte,
renamed into place, never torn. Which slot is in the reader (``active.json``: slot and
ICCID, both public) is plain JSON.

Errors name the file and a reason, never a byte of what it held (``SealError``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent import store
from agent.cloud import sealing
from agent.errors import SealError
from agent.sim import SimProfile
from agent.usim.sqn import SqnState, SqnStateError

LOGGER = logging.getLogger(__name__)

HKDF_INFO = b"pw/v1 host card at rest"
"""Domain separation: the at-rest key is derived from the sealing key for this use only."""
AAD_PREFIX = "pw/v1 host card"
NONCE_BYTES = 12  # AES-GCM's standard nonce (NIST SP 800-38D)
RECORD_VERSION = 1
ACTIVE_FILE = "active.json"
SLOT_FILE = "slot-{slot}.sealed"
REASON = "at_rest"
"""The ``SealError`` reason of a card file that does not open."""


def at_rest_key(sealing_key: X25519PrivateKey) -> bytes:
    """The AES-256 key of the files here: HKDF-SHA256 of the sealing key's raw bytes."""
    raw = sealing_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(raw)


class CardVault:
    """The host slots' cards of one device, encrypted in ``directory`` (0700)."""

    def __init__(self, directory: Path, sealing_key: X25519PrivateKey, device_id: str) -> None:
        self.dir = Path(directory)
        self._aead = AESGCM(at_rest_key(sealing_key))
        self.device_id = device_id

    def __repr__(self) -> str:
        return f"CardVault({str(self.dir)!r})"

    def _path(self, slot: int) -> Path:
        return self.dir / SLOT_FILE.format(slot=int(slot))

    def _aad(self, slot: int) -> bytes:
        return f"{AAD_PREFIX}|{self.device_id}|slot {int(slot)}".encode()

    # -- writing -------------------------------------------------------------------------
    def keep(self, slot: int, profile: SimProfile, sqn: SqnState | None) -> None:
        """Seal ``profile`` and its SQN state as ``slot``'s card (replacing what was there)."""
        store.ensure_private_dir(self.dir)
        body = {"version": RECORD_VERSION, "profile": sealing.profile_to_dict(profile),
                "sqn": sqn.to_dict() if sqn is not None else None}
        nonce = os.urandom(NONCE_BYTES)
        plaintext = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        try:
            store.atomic_write(self._path(slot), nonce + self._aead.encrypt(nonce, plaintext, self._aad(slot)))
        finally:
            del plaintext, body

    def keep_sqn(self, slot: int, sqn: SqnState) -> None:
        """A new SQN state for ``slot``'s card (after an accepted AUTHENTICATE)."""
        held = self.open(slot)
        if held is None:
            return
        self.keep(slot, held[0], sqn)

    def forget(self, slot: int) -> None:
        self._path(slot).unlink(missing_ok=True)

    def keep_active(self, slot: int | None, iccid: str | None) -> None:
        """Which card the module's reader holds (public facts only)."""
        store.ensure_private_dir(self.dir)
        store.atomic_write_json(self.dir / ACTIVE_FILE, {"slot": slot, "iccid": iccid})

    # -- reading -------------------------------------------------------------------------
    def open(self, slot: int) -> tuple[SimProfile, SqnState | None] | None:
        """``slot``'s card, or None if none is kept; a file that does not open raises
        ``SealError`` (reason ``at_rest``) naming the file only."""
        path = self._path(slot)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SealError(f"host card {path} unreadable: {exc.strerror}", reason=REASON) from None
        if len(blob) <= NONCE_BYTES:
            raise SealError(f"host card {path} is truncated ({len(blob)} bytes)", reason=REASON)
        try:
            plaintext = self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], self._aad(slot))
        except InvalidTag:
            raise SealError(f"host card {path} does not open with this device's key for slot {slot}",
                            reason=REASON) from None
        try:
            body: Any = json.loads(plaintext)
            if not isinstance(body, dict) or body.get("version") != RECORD_VERSION:
                raise SealError(f"host card {path} has an unknown record version", reason=REASON)
            profile = sealing.profile_from_dict(body["profile"])
            sqn = SqnState.from_dict(body["sqn"]) if body.get("sqn") is not None else None
        except (ValueError, KeyError, TypeError, SqnStateError) as exc:
            raise SealError(f"host card {path} has a bad record ({type(exc).__name__})", reason=REASON) from None
        finally:
            del plaintext
        return profile, sqn

    def active(self) -> tuple[int | None, str | None]:
        """(slot, ICCID) of the card last put in the reader; (None, None) if none."""
        data = store.read_json(self.dir / ACTIVE_FILE) or {}
        slot, iccid = data.get("slot"), data.get("iccid")
        if not isinstance(slot, int) or isinstance(slot, bool) or not isinstance(iccid, str):
            return None, None
        return slot, iccid

    def slots(self) -> list[int]:
        """The slots with a card kept, in order."""
        if not self.dir.is_dir():
            return []
        found = []
        for path in self.dir.glob("slot-*.sealed"):
            number = path.name[len("slot-"):-len(".sealed")]
            if number.isdigit():
                found.append(int(number))
        return sorted(found)


def open_seed(path: Path, *, device_id: str, sealing_key: X25519PrivateKey,
              platform_public: Any) -> SimProfile:
    """The seed SIM's profile from its sealed envelope (written at provisioning by the
    factory, as the platform seals an assignment: encrypted to this device, signed by the
    platform). Opened with the wall clock untrusted (``now`` None): a seed is not an
    assignment and does not expire; its ``seq`` 0 can never pass the replay guard as one."""
    try:
        envelope = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise SealError(f"seed SIM {path} unreadable: {exc.strerror}", reason="seed") from None
    except ValueError:
        raise SealError(f"seed SIM {path} is not JSON", reason="seed") from None
    opened = sealing.open_envelope(envelope, device_id=device_id, device_key=sealing_key,
                                   platform_public=platform_public, now=None)
    return opened.profile
