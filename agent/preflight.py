"""Start-up checks, before anything else: bad input stops the daemon once, saying why.

What a provisioned router can get wrong is a file: a key that is missing, readable by
others or not the service's, a certificate for another key, a configuration naming a file
that is not there, a state directory or key store the service cannot write, a board the
agent cannot serve on. Found later, each of these is an exception deep in start-up (the
TLS handshake, the first journal flush, the first SIM load) that a service manager
restarts forever. Found here, each is one ``Refusal``: a documented exit code
(agent/core/exitcodes.py: 78 for what only a person can fix in the configuration or the
key store, 73 for storage the service cannot write, neither restarted by the unit's
``RestartPreventExitStatus=``) and one line that ``pocket-agent run`` logs last and hands
systemd as ``STATUS=`` (``systemctl status``).

The checks read and never write, except a probe file created and removed in the state
directory (the only honest test of "can write": permissions, a read-only mount, a full
flash). A refusal names paths, modes, owners and public-key fingerprints, never a byte of
a private key.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from agent import store
from agent.boardprofile import BoardProfile, load_profile
from agent.config import AgentConfig
from agent.core.exitcodes import ExitCode
from agent.errors import AgentError, CertificateMismatch, ConfigError
from agent.modem.dialects import DIALECTS

LOGGER = logging.getLogger(__name__)

PRIVATE_MASK = 0o077
"""No bit for group or others: a private key is its owner's alone (0600 or 0400)."""

PROBE_NAME = ".preflight-probe"
"""Created (0600) and removed in the state directory to prove it can be written."""

REMOTE_SIM_ISSUE = 24
"""Where a board without vSIM slots gets a way to serve (a remote-SIM dialect)."""


class Refusal(AgentError):
    """The daemon must not start; ``exit_code`` is what the service manager sees, ``reason``
    a short word for tests and field logs, the message the one line an operator reads."""

    def __init__(self, message: str, *, exit_code: ExitCode, reason: str):
        super().__init__(message)
        self.exit_code = exit_code
        self.reason = reason


class UnsupportedBoard(Refusal):
    """The board profile is valid but the agent cannot serve on it: no vSIM slots and no
    remote SIM, or a remote-SIM board with no sealed seed SIM configured (issue #24)."""


def _config(message: str, reason: str) -> Refusal:
    return Refusal(message, exit_code=ExitCode.CONFIG_INVALID, reason=reason)


def _strerror(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno or 0)


@dataclass(frozen=True)
class Named:
    """A path as the configuration names it, for messages: ``[cloud] key = /path``."""

    key: str
    path: Path

    def __str__(self) -> str:
        return f"{self.key} = {self.path}"


def board(cfg: AgentConfig) -> BoardProfile:
    """The board profile loads, and its modem can hold the SIMs the cloud assigns: vSIM
    slots, or a remote-SIM reader with a sealed seed SIM to start from."""
    if not Path(cfg.board_profile).exists():
        raise _config(f"config names a missing file: board_profile = {cfg.board_profile}", "missing_file")
    try:
        profile = load_profile(cfg.board_profile)
    except ConfigError as exc:
        raise _config(str(exc), "board_profile") from None
    dialect = DIALECTS[profile.dialect]
    if dialect.has_remote_sim:
        if cfg.cloud.seed_sim is None:
            raise UnsupportedBoard(
                f"cannot serve on board {profile.name!r}: its modem dialect {profile.dialect!r} has no card of its "
                f"own, and the config names no sealed seed SIM to start from ([cloud] seed_sim; docs/remote-sim.md)",
                exit_code=ExitCode.CONFIG_INVALID, reason="seed_sim_missing")
        readable_file(Named("[cloud] seed_sim", cfg.cloud.seed_sim))
        return profile
    if not dialect.has_vsim or not profile.vsim_slots:
        raise UnsupportedBoard(
            f"cannot serve on board {profile.name!r}: its modem dialect {profile.dialect!r} has no vSIM slots, "
            f"so no SIM the cloud assigns can be loaded (a remote-SIM dialect is issue #{REMOTE_SIM_ISSUE})",
            exit_code=ExitCode.CONFIG_INVALID, reason="board_cannot_serve")
    return profile


def readable_file(named: Named) -> bytes:
    """A file the configuration names: there, a regular file, and readable by this process."""
    try:
        st = named.path.stat()
    except FileNotFoundError:
        raise _config(f"config names a missing file: {named}", "missing_file") from None
    except OSError as exc:
        raise _config(f"cannot reach {named}: {_strerror(exc)}", "unreadable") from None
    if not stat.S_ISREG(st.st_mode):
        raise _config(f"{named} is not a regular file", "not_a_file")
    try:
        return named.path.read_bytes()
    except OSError as exc:
        raise _config(f"cannot read {named}: {_strerror(exc)} (owner uid {st.st_uid}, mode "
                      f"{stat.S_IMODE(st.st_mode):04o}; this process runs as uid {os.geteuid()})",
                      "unreadable") from None


def private_key(named: Named, uid: int) -> bytes:
    """A private key: present, the service's own (``uid``), no bit for group or others."""
    try:
        st = named.path.stat()
    except FileNotFoundError:
        raise _config(f"private key missing: {named} (provisioned? docs/provisioning.md)", "key_missing") from None
    except OSError as exc:
        raise _config(f"cannot reach private key {named}: {_strerror(exc)}", "key_unreadable") from None
    mode = stat.S_IMODE(st.st_mode)
    if mode & PRIVATE_MASK:
        raise _config(f"private key {named} has mode {mode:04o}: group or others may read it; it must be 0600 "
                      "and the service user's (re-provision: docs/layout.md)", "key_mode")
    if st.st_uid != uid:
        raise _config(f"private key {named} belongs to uid {st.st_uid}, not to the service's uid {uid} "
                      "(re-run provisioning to hand the key store over: docs/layout.md)", "key_owner")
    return readable_file(named)


def tls_pair(key: Named, key_pem: bytes, cert: Named, cert_pem: bytes) -> None:
    """The certificate certifies this private key (a mismatch fails every TLS handshake)."""
    # cryptography is imported only once the files are known to be there
    from agent.cloud import certs

    try:
        private = certs.load_tls_key(key_pem)
    except (ValueError, TypeError):  # never the library's text: it could quote what it read
        raise _config(f"private key {key} is not a PEM EC private key", "key_invalid") from None
    try:
        leaf = certs.load_chain(cert_pem)[0]
    except CertificateMismatch as exc:
        raise _config(f"certificate {cert}: {exc}", "cert_invalid") from None
    have, want = certs.fingerprint(leaf.public_key()), certs.fingerprint(private.public_key())
    if have != want:
        raise _config(f"certificate {cert} is for another key (sha256:{have[:16]}...), not {key} "
                      f"(sha256:{want[:16]}...): install the certificate issued for this key's CSR",
                      "cert_key")


def sealing_key(named: Named, pem: bytes) -> None:
    """The key sealed SIM profiles are opened with is an X25519 private key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, X25519PrivateKey):
        raise _config(f"private key {named} is not a PEM X25519 private key", "key_invalid")


def writable_dir(path: Path, what: str) -> None:
    """``path`` exists (made 0700 if not) and this process can create a file in it: 73 otherwise."""
    try:
        store.ensure_private_dir(path)
        probe = path / PROBE_NAME
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, store.PRIVATE_MODE)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        raise Refusal(f"{what} {path} is not writable: {_strerror(exc)} (uid {os.geteuid()})",
                      exit_code=ExitCode.STATE_UNWRITABLE, reason="state_dir") from None


def key_store(cert: Path) -> None:
    """Renewal writes the next generation beside the current one: the key store must be
    writable by the service, or certificates expire in the field (73 now instead)."""
    from agent.cloud.renewal import key_dir_of

    key_dir = key_dir_of(cert)
    if key_dir is None:  # hand-made identity (the lab): renewal is off, nothing to write
        return
    lock = key_dir / ".lock"
    if not os.access(key_dir, os.W_OK | os.X_OK) or (lock.exists() and not os.access(lock, os.R_OK | os.W_OK)):
        err = errno.EROFS if _read_only(key_dir) else errno.EACCES
        raise Refusal(f"key store {key_dir} is not writable by uid {os.geteuid()}: {os.strerror(err)}; certificate "
                      "renewal could not write the next identity (re-run provisioning, and see ReadWritePaths= "
                      "in docs/layout.md)", exit_code=ExitCode.STATE_UNWRITABLE, reason="key_store")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check(cfg: AgentConfig, uid: int | None = None) -> BoardProfile:
    """Every check, in the order a person would fix them; returns the loaded board profile.
    ``uid``: whose the private keys must be (default: this process's, as under systemd)."""
    uid = os.geteuid() if uid is None else uid
    profile = board(cfg)
    c = cfg.cloud
    for named in (Named("[cloud] ca", c.ca), Named("[cloud] platform_key", c.platform_key)):
        readable_file(named)
    key, sealing = Named("[cloud] key", c.key), Named("[cloud] sealing_key", c.sealing_key)
    key_pem = private_key(key, uid)
    sealing_pem = private_key(sealing, uid)
    cert = Named("[cloud] cert", c.cert)
    tls_pair(key, key_pem, cert, readable_file(cert))
    sealing_key(sealing, sealing_pem)
    writable_dir(Path(cfg.state_dir), "state directory")
    key_store(c.cert)
    LOGGER.debug("preflight passed: board %s, keys and state in order", profile.name)
    return profile
