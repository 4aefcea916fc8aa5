"""Technician logins, decided by the daemon: challenges, signatures, the slow-down, the audit.

Why in the daemon and not in the console: the control socket (``control.py``) gates what
changes the router by who is at the other end of each connection. A login that only the
console remembered was a claim any local process could skip by asking for privileged ops
itself (issue 20, finding 4). Here the daemon issues the challenge to one connection,
checks the signature against the pinned public keys (``technicians.py``) and marks *that
connection* as the technician's; the login ends with ``logout`` (the console sends it for
Ctrl-D, idle logout and a pulled cable) or when the connection closes. The daemon writes
every login, failed login and logout to the audit log itself: no client hands it entries.

The challenge ``pwc1 <device> <unix time> <nonce>`` names this device, so a signature
cannot be relayed to another router (a technician key is pinned fleet-wide: the binding is
what keeps a signature on one router, and ``pocket-agent console sign`` shows the device
before it signs). It is single-use, expires after ``CHALLENGE_TTL`` and belongs to the
connection that asked for it.

Failed attempts slow down exponentially for the whole device (``BACKOFF_BASE`` doubling up
to ``BACKOFF_CAP``), whatever terminal or connection they come from. The count survives a
restart in ``logins.json`` (one small atomic file, written on a failure and on the first
success after failures): pulling the power buys no fresh start. After a restart the full
wait for the stored count runs again from start-up, since the monotonic clock does not
survive a reboot and the wall clock may not be trusted yet. An unreadable file counts as
the most failures we keep track of (fail closed: one wait of ``BACKOFF_CAP``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import store
from agent.core.control import Caller
from agent.core.technicians import NAME_RE, Technician, load_technicians
from agent.errors import ConfigError, ControlError

LOGGER = logging.getLogger(__name__)

SCHEME = "pwc1"
"""Version tag of the challenge format; a new format gets a new tag."""
CHALLENGE_TTL = 120.0
"""Seconds a challenge stays valid: enough to copy it to the laptop, sign, paste back."""
NONCE_BYTES = 8
"""64 random bits: with one live challenge per connection, guessing is hopeless, and 16 hex
digits stay short enough to read aloud over a phone to a colleague with the key."""
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0
"""After n failures the next attempt waits BASE * 2**(n-1) s, at most 5 minutes: 10
wrong signatures cost over 8 minutes, a brute force of a 64-byte signature is hopeless
anyway, and a technician who mistyped twice waits 2 s."""
FAILURES_KEPT = 64
"""The count stored is clamped here: the wait reached its cap at 10, and a bounded number
keeps the state file a few bytes whatever an attacker does."""
STATE_FILE = "logins.json"
SIGNATURE_BYTES = 64

CHALLENGE_RE = re.compile(rf"{SCHEME} (?P<device>\S+) (?P<issued>\d{{1,12}}) (?P<nonce>[0-9a-f]{{{2 * NONCE_BYTES}}})")
"""A challenge exactly as the device prints it; ``device`` is checked against NAME_RE too."""


class AuthFailed(Exception):
    """A login attempt failed; ``reason`` is safe to show and to report."""

    def __init__(self, reason: str, *, wait_s: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.wait_s = wait_s


@dataclass(frozen=True)
class Challenge:
    """A parsed challenge: the device it is for and when it was issued (unix seconds)."""

    device: str
    issued: int
    nonce: str


def parse_challenge(text: str) -> Challenge:
    """The parts of a challenge, or ConfigError: a text without a device id is not one."""
    found = CHALLENGE_RE.fullmatch(text.strip())
    if found is None or not NAME_RE.fullmatch(found["device"]):
        raise ConfigError(f"not a console challenge: expected '{SCHEME} <device id> <time> <{2 * NONCE_BYTES} hex "
                          "digits>' exactly as the console printed it")
    return Challenge(found["device"], int(found["issued"]), found["nonce"])


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failed logins."""
    return 0.0 if failures <= 0 else min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(failures - 1, 32))


class Authenticator:
    """Issues challenges and checks signatures; one per daemon (every terminal, every
    connection), its failure count kept in ``state_file`` when one is given."""

    def __init__(self, state_file: Path | None = None, *, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, random: Callable[[int], bytes] = os.urandom):
        self._monotonic, self._wall, self._random = monotonic, wall, random
        self.state_file = state_file
        self._issued: dict[str, float] = {}
        self.failures = self._load()
        self._next_try = self._monotonic() + backoff(self.failures) if self.failures else 0.0

    def challenge(self, device_id: str) -> str:
        now = self._monotonic()
        self._issued = {c: t for c, t in self._issued.items() if now - t < CHALLENGE_TTL}
        text = f"{SCHEME} {device_id} {int(self._wall())} {self._random(NONCE_BYTES).hex()}"
        self._issued[text] = now
        return text

    def wait_s(self) -> float:
        """Seconds before the next attempt will be looked at (0 when it may go ahead)."""
        return max(0.0, self._next_try - self._monotonic())

    def verify(self, challenge: str, signature: str, technicians: list[Technician]) -> str:
        """The technician's name, or AuthFailed. The challenge is used up either way."""
        wait = self.wait_s()
        if wait > 0:
            raise AuthFailed(f"too many failed logins: wait {wait:.0f} s", wait_s=wait)
        issued = self._issued.pop(challenge, None)
        if issued is None or self._monotonic() - issued >= CHALLENGE_TTL:
            raise self._fail("challenge expired or unknown: type login again")
        sig = _decode_signature(signature)
        for tech in technicians:
            try:
                Ed25519PublicKey.from_public_bytes(tech.key).verify(sig, challenge.encode())
            except InvalidSignature:
                continue
            if self.failures:
                self.failures = 0
                self._save()
            self._next_try = 0.0
            return tech.name
        raise self._fail("signature does not match any pinned technician key")

    def _fail(self, reason: str) -> AuthFailed:
        self.failures = min(FAILURES_KEPT, self.failures + 1)
        delay = backoff(self.failures)
        self._next_try = self._monotonic() + delay
        self._save()
        return AuthFailed(reason, wait_s=delay)

    def _load(self) -> int:
        if self.state_file is None:
            return 0
        try:
            count = json.loads(self.state_file.read_bytes())["failures"]
            if isinstance(count, bool) or not isinstance(count, int):
                raise TypeError("failures is not a number")
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, TypeError, KeyError) as exc:
            LOGGER.warning("login state %s unreadable (%s): counting the most failures we keep",
                           self.state_file, type(exc).__name__)
            return FAILURES_KEPT
        return max(0, min(FAILURES_KEPT, count))

    def _save(self) -> None:
        if self.state_file is None:
            return
        try:
            store.ensure_private_dir(self.state_file.parent)
            store.atomic_write_json(self.state_file, {"failures": self.failures})
        except OSError as exc:  # the wait still applies in memory; a full disk must not open the door
            LOGGER.warning("login state not saved: %s", exc)


def _decode_signature(text: str) -> bytes:
    try:
        sig = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        sig = b""
    return sig if len(sig) == SIGNATURE_BYTES else b"\0" * SIGNATURE_BYTES  # fails verification


Audit = Callable[[dict[str, Any]], Awaitable[Any]]
"""Writes one audit entry on the device and upstream (SupervisorView.audit)."""


class LoginDesk:
    """The control socket's login ops for one daemon: ``challenge``, ``login``, ``logout``."""

    def __init__(self, device_id: str, technicians_file: Path, audit: Audit, *,
                 authenticator: Authenticator | None = None):
        self.device_id = device_id
        self.technicians_file = technicians_file
        self.audit = audit
        self.auth = authenticator or Authenticator()

    async def challenge(self, caller: Caller) -> dict[str, Any]:
        wait = self.auth.wait_s()
        if wait > 0:
            raise ControlError(f"too many failed logins: try again in {wait:.0f} s", reason="refused")
        caller.challenge = self.auth.challenge(self.device_id)
        return {"challenge": caller.challenge}

    async def login(self, caller: Caller, signature: str) -> dict[str, Any]:
        challenge, caller.challenge = caller.challenge, None
        try:
            _, technicians = load_technicians(self.technicians_file)
        except ConfigError as exc:  # a bad pinned-keys file: nobody logs in, and we say why
            raise ControlError(f"the pinned technician keys are unreadable: {exc}", reason="refused") from None
        try:
            name = self.auth.verify(challenge or "", signature, technicians)
        except AuthFailed as exc:
            await self.audit({"action": "login_failed", "reason": exc.reason, "failures": self.auth.failures,
                              "terminal": caller.where})
            raise ControlError(f"{exc.reason}; next attempt in {exc.wait_s:.0f} s", reason="refused") from None
        caller.technician = name
        await self.audit({"action": "login", "technician": name, "terminal": caller.where})
        return {"technician": name}

    async def logout(self, caller: Caller, reason: str) -> dict[str, Any]:
        name, caller.technician = caller.technician, None
        if name is not None:
            await self.audit({"action": "logout", "technician": name, "reason": reason[:80],
                              "terminal": caller.where})
        return {"logged_in": False}
