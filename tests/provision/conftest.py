"""Fixtures for provisioning: a virtual modem on a real pty, a console pty, the lab PKI and
a real mosquitto (from tests/cloud/conftest.py), and a runner for ``pocket-agent provision``
as the production line runs it: a separate process, JSON on stdout, an exit code."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.cloud import keystore as ks
from agent.cloud.certs import fingerprint, load_tls_key, sign_csr
from board.virtual.cloud.pki import LabPki
from board.virtual.modem.device import VirtualModem
from tests.cloud.conftest import HOST, Broker, broker, pki  # noqa: F401 - fixtures
from tests.integration.test_virtual_modem import vmodem  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 60.0
"""Upper bound on one provisioning run; a run normally takes about half a second."""


@pytest.fixture
def console() -> Iterator[str]:
    """A tty standing in for the technician console's serial port."""
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


@dataclass
class Result:
    code: int
    record: dict[str, Any]
    stderr: str
    elapsed: float


@dataclass
class Line:
    """One unit on the production line: its key dir, config and the arguments the line passes."""

    root: Path
    pki: LabPki
    port: str
    console: str
    broker: str = "127.0.0.1:1"

    @property
    def key_dir(self) -> Path:
        return self.root / "keys"

    @property
    def config(self) -> Path:
        return self.root / "etc" / "agent.toml"

    def args(self, *extra: str, online: bool = False) -> list[str]:
        base = ["provision", "--port", self.port, "--broker", self.broker, "--ca", str(self.pki.ca_cert),
                "--platform-key", str(self.pki.platform_pub), "--key-dir", str(self.key_dir),
                "--config", str(self.config), "--state-dir", str(self.root / "state"),
                "--console-port", self.console, "--register-wait", "10"]
        return [*base, *([] if online else ["--offline"]), *extra]

    def run(self, *extra: str, online: bool = False, wrapper: list[str] | None = None) -> Result:
        cmd = [sys.executable, "-m", *(wrapper or ["agent"]), *self.args(*extra, online=online)]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=REPO,
                              check=False)
        elapsed = time.monotonic() - t0
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        record = json.loads(lines[-1]) if lines else {}
        return Result(proc.returncode, record, proc.stderr, elapsed)

    def current(self) -> ks.Generation | None:
        return ks.KeyStore(self.key_dir).current()

    def csr(self) -> bytes:
        gen = self.current()
        assert gen is not None
        return gen.read(ks.CSR)


@pytest.fixture
def line(tmp_path: Path, pki: LabPki, vmodem: VirtualModem, console: str) -> Line:  # noqa: F811 - the fixture
    return Line(tmp_path / "unit", pki, vmodem.path, console)


def lab_ca(lab: LabPki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca = x509.load_pem_x509_certificate(lab.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(lab.ca_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return ca, key


def sign(lab: LabPki, csr_pem: bytes, days: int = 30) -> bytes:
    ca, key = lab_ca(lab)
    return sign_csr(csr_pem, ca_cert=ca, ca_key=key, days=days, now=dt.datetime.now(dt.UTC))


def issue(lab: LabPki, *, public_key: Any, cn: str, imei: str | None = None, foreign: bool = False,
          not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> bytes:
    """A certificate with chosen flaws (another key, CN, CA or validity) for the refusal tests."""
    ca_path, key_path = (lab.foreign_ca_cert, lab.foreign_ca_key) if foreign else (lab.ca_cert, lab.ca_key)
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    ca_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    now = dt.datetime.now(dt.UTC)
    attrs = [x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]
    if imei:
        attrs.append(x509.NameAttribute(x509.NameOID.SERIAL_NUMBER, imei))
    cert = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca.subject)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(minutes=5))
            .not_valid_after(not_after or now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM)


def assert_consistent(key_dir: Path) -> ks.Generation | None:
    """The crash-safety invariant: no identity, or a complete one whose every file is what
    its record says, whose key is the one fingerprinted, and whose certificate (if any)
    certifies that key."""
    gen = ks.KeyStore(key_dir).current()
    if gen is None:
        assert not (key_dir / ks.CURRENT).is_symlink(), "a current pointer without a readable record"
        return None
    for name, digest in gen.record["files"].items():
        assert ks.sha256(gen.read(name)) == digest, f"{name} differs from its record"
    key = load_tls_key(gen.read(ks.TLS_KEY))
    assert fingerprint(key.public_key()) == gen.record["tls_key_sha256"]
    for name in ks.PRIVATE_FILES:
        assert gen.file(name).stat().st_mode & 0o777 == 0o600
    if gen.has(ks.CERT):
        cert = x509.load_pem_x509_certificate(gen.read(ks.CERT))
        assert fingerprint(cert.public_key()) == gen.record["tls_key_sha256"]
    return gen
