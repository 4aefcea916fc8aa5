"""Device TLS keys, certificate signing requests and the checks a certificate must pass.

Used by factory provisioning (``pocket-agent provision``) and by certificate renewal
over MQTT (agent.cloud.renewal): both make a CSR on the device and both must refuse a
certificate that would leave the router unable to connect. A certificate is installed
only if it (1) certifies *this* key, (2) chains to the pinned CA, (3) names this device
(CN = device id; a serialNumber, if present, = the IMEI) and (4) is valid now. Each
refusal is a ``CertificateMismatch`` whose ``reason`` says which, so the production line
and the renewal log can tell a swapped label from an expired batch.

Private key bytes never appear in an error or a log line: only fingerprints do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.cloud.crypto_compat import check_issued_by, load_pem_chain, valid_from, valid_until
from agent.errors import CertificateMismatch

LOGGER = logging.getLogger(__name__)

TLS_CURVE = ec.SECP256R1()
"""P-256: what the lab CA and the broker use, and what embedded TLS stacks accelerate."""

CLOCK_SKEW_S = 300
"""A certificate counts as not-yet-valid only 5 minutes before notBefore: a CA that
stamps notBefore = now and a device clock seconds behind must not fail the line."""

MAX_CHAIN = 4
"""Intermediates followed at most: a fleet PKI has one or two; a longer chain is a bug."""


def new_tls_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(TLS_CURVE)


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_tls_key(data: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("not an EC private key")
    return key


def public_der(public_key: object) -> bytes:
    """SubjectPublicKeyInfo DER of any public key (what a fingerprint is taken over)."""
    return public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(public_key: object) -> str:
    """SHA-256 of the SubjectPublicKeyInfo, hex: the value the factory DB records."""
    return hashlib.sha256(public_der(public_key)).hexdigest()


def cert_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def make_csr(key: ec.EllipticCurvePrivateKey, device_id: str, imei: str) -> bytes:
    """PEM CSR: CN = device id (the broker's username), serialNumber = the modem's IMEI."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, imei)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise CertificateMismatch(f"not a PEM CSR: {exc}", reason="malformed") from None
    if not csr.is_signature_valid:
        raise CertificateMismatch("CSR signature does not verify", reason="malformed")
    return csr


def subject_value(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def load_chain(data: bytes) -> list[x509.Certificate]:
    """A PEM bundle: the leaf first, then any intermediates."""
    try:
        chain = load_pem_chain(data)
    except ValueError as exc:
        raise CertificateMismatch(f"not a PEM certificate: {exc}", reason="malformed") from None
    if not chain:
        raise CertificateMismatch("no certificate in the file", reason="malformed")
    return chain


@dataclass(frozen=True)
class CertInfo:
    """What the factory DB and ``pocket-agent identity`` show about a certificate."""

    serial: str
    not_before: str
    not_after: str
    fingerprint: str
    issuer: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> CertInfo:
        return cls(serial=format(cert.serial_number, "x"),
                   not_before=valid_from(cert).isoformat(),
                   not_after=valid_until(cert).isoformat(),
                   fingerprint=cert_fingerprint(cert), issuer=cert.issuer.rfc4514_string())


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        check_issued_by(cert, issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _check_chain(chain: list[x509.Certificate], ca: x509.Certificate, now: dt.datetime) -> None:
    current = chain[0]
    pool = list(chain[1:])
    for _ in range(MAX_CHAIN + 1):
        if _issued_by(current, ca):
            return
        parent = next((c for c in pool if _issued_by(current, c)), None)
        if parent is None:
            break
        if not _is_ca(parent) or not _valid_at(parent, now):
            raise CertificateMismatch(f"intermediate {parent.subject.rfc4514_string()} is not a valid CA",
                                      reason="chain")
        pool.remove(parent)
        current = parent
    raise CertificateMismatch(
        f"certificate issued by {chain[0].issuer.rfc4514_string()!r} does not chain to the configured CA "
        f"{ca.subject.rfc4514_string()!r}", reason="chain")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> bool:
    skew = dt.timedelta(seconds=CLOCK_SKEW_S)
    return valid_from(cert) - skew <= now <= valid_until(cert)


def check_certificate(cert_pem: bytes, *, key: ec.EllipticCurvePrivateKey, ca_pem: bytes, device_id: str,
                      imei: str | None, now: dt.datetime) -> x509.Certificate:
    """The four checks of the module docstring, in the order a line engineer reads them.

    Returns the leaf; raises CertificateMismatch(reason = key | device | chain | expired |
    not_yet_valid | malformed).
    """
    chain = load_chain(cert_pem)
    leaf = chain[0]
    if public_der(leaf.public_key()) != public_der(key.public_key()):
        raise CertificateMismatch(
            f"certificate is for key {fingerprint(leaf.public_key())[:16]}..., this device's key is "
            f"{fingerprint(key.public_key())[:16]}...", reason="key")
    cn = subject_value(leaf.subject, NameOID.COMMON_NAME)
    if cn != device_id:
        raise CertificateMismatch(f"certificate names {cn!r}, this device is {device_id!r}", reason="device")
    serial = subject_value(leaf.subject, NameOID.SERIAL_NUMBER)
    if serial is not None and imei is not None and serial != imei:
        raise CertificateMismatch(f"certificate carries IMEI {serial!r}, the modem says {imei!r}", reason="device")
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise CertificateMismatch(f"configured CA is not a PEM certificate: {exc}", reason="malformed") from None
    _check_chain(chain, ca, now)
    if now > valid_until(leaf):
        raise CertificateMismatch(f"certificate expired at {valid_until(leaf).isoformat()}", reason="expired")
    if now < valid_from(leaf) - dt.timedelta(seconds=CLOCK_SKEW_S):
        raise CertificateMismatch(f"certificate not valid before {valid_from(leaf).isoformat()}",
                                  reason="not_yet_valid")
    return leaf


def sign_csr(csr_pem: bytes, *, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, days: int,
             now: dt.datetime) -> bytes:
    """CA side (the lab's reference cloud, a factory test CA): issue a client certificate
    for a CSR, copying its subject. Lives here so the device and the lab agree on the shape."""
    csr = load_csr(csr_pem)
    cert = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_cert.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)
