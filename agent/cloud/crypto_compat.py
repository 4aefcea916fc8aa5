"""cryptography 38.0.4 to today's behind one face: the certificate calls the agent makes.

Debian 12 packages python3-cryptography 38.0.4 (OpenWrt 24.10 41.0.7, PyPI 50); the
agent's certificate code was written against 42. They differ, for what the agent does
with a certificate, in three calls only, and this module is the one place that knows:

- a PEM bundle: ``x509.load_pem_x509_certificates`` arrived in 39;
- "was this certificate signed by that one": ``Certificate.verify_directly_issued_by``
  arrived in 40 (RSA-PSS signatures in it in 41);
- validity as aware UTC datetimes: ``not_valid_before_utc`` / ``not_valid_after_utc``
  arrived in 42, and from 42 the naive ``not_valid_before`` / ``not_valid_after`` warn
  that they are deprecated.

Each shim uses the library's own call when it is there (the ``HAS_*`` flags) and
otherwise a fallback built only from calls 38 has (``signature``,
``tbs_certificate_bytes``, ``public_key().verify``), with the same errors, so callers
cannot tell which ran. Everything else the agent uses
(EC P-256 keys and CSRs, Ed25519, X25519, HKDF, AES-GCM, PKCS#8 and raw serialisation,
``CertificateBuilder`` with aware datetimes) is the same from 38 on. ``make test-oldest``
runs the certificate, provisioning, renewal and sealing tests on 38.0.4
(packaging/oldest-deps.txt); tests/cloud/test_crypto_compat.py runs each shim both
ways where the library has the call (the flag turned off) and the fallback alone on 38.
"""

from __future__ import annotations

import datetime as dt
import re

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

HAS_PEM_BUNDLES = hasattr(x509, "load_pem_x509_certificates")
"""cryptography >= 39: the library parses a PEM bundle itself."""

HAS_ISSUED_BY = hasattr(x509.Certificate, "verify_directly_issued_by")
"""cryptography >= 40: the library checks a certificate's signature against an issuer."""

HAS_UTC_VALIDITY = hasattr(x509.Certificate, "not_valid_after_utc")
"""cryptography >= 42: validity as aware UTC datetimes (the naive ones then warn)."""

_PEM_BLOCK = re.compile(rb"-----BEGIN (X509 |)CERTIFICATE-----.+?-----END \1CERTIFICATE-----", re.DOTALL)
"""A whole certificate block. As 39's loader: the old ``X509 CERTIFICATE`` label too (RFC
7468 section 5.1), and other blocks (a private key), text between blocks and a trailing
incomplete block are passed over."""


def _oids(prefix: str) -> frozenset[x509.ObjectIdentifier]:
    """Every signature algorithm the installed version names with this prefix (38 already
    has the SHA-3 ones), so the table needs no edit when a version adds one."""
    names = (n for n in dir(SignatureAlgorithmOID) if n.startswith(prefix))
    return frozenset(getattr(SignatureAlgorithmOID, n) for n in names)


_SIGNATURE_KINDS: dict[type, frozenset[x509.ObjectIdentifier]] = {
    ec.EllipticCurvePublicKey: _oids("ECDSA_WITH_"),
    rsa.RSAPublicKey: _oids("RSA_WITH_"),
    ed25519.Ed25519PublicKey: frozenset({SignatureAlgorithmOID.ED25519}),
    ed448.Ed448PublicKey: frozenset({SignatureAlgorithmOID.ED448}),
}
"""Issuer key kind -> the signature algorithms it makes (the fallback's kind check)."""


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, in file order: ``x509.load_pem_x509_certificates``
    (cryptography 39). ValueError when there is none or a block does not parse, as 39's.
    Before 39: each block through ``load_pem_x509_certificate``, which every version has."""
    if HAS_PEM_BUNDLES:
        return x509.load_pem_x509_certificates(data)
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise ValueError("Unable to load PEM file: no certificate block")
    return [x509.load_pem_x509_certificate(block) for block in blocks]


def check_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    """Raise unless ``issuer`` signed ``cert``: ``Certificate.verify_directly_issued_by``
    (cryptography 40). ValueError when the names differ or the signature is not of the
    issuer key's kind, InvalidSignature when it does not verify, TypeError for a key or
    signature kind it cannot check. Names and signature only: not validity, not the CA flag.

    Before 40: the issuer's public key verifies the signature over the TBS bytes with the
    padding or curve parameters its kind needs (ECDSA, RSA PKCS#1 v1.5, EdDSA: what a
    device PKI uses). RSA-PSS needs the parameters 41 exposes, so there it is a TypeError.
    """
    if HAS_ISSUED_BY:
        cert.verify_directly_issued_by(issuer)
        return
    if cert.issuer != issuer.subject:
        raise ValueError("Issuer certificate subject does not match certificate issuer.")
    if cert.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
        raise TypeError("RSA-PSS certificate signatures can be checked from cryptography 41")
    key = issuer.public_key()
    kind = next((k for k in _SIGNATURE_KINDS if isinstance(key, k)), None)
    if kind is None:
        raise TypeError(f"unsupported issuer key {type(key).__name__}")
    if cert.signature_algorithm_oid not in _SIGNATURE_KINDS[kind]:
        raise ValueError("Signature algorithm does not match issuer key type")
    signature, tbs, digest = cert.signature, cert.tbs_certificate_bytes, cert.signature_hash_algorithm
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        key.verify(signature, tbs)
    elif digest is None:
        raise TypeError(f"signature {cert.signature_algorithm_oid.dotted_string} names no hash")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, tbs, ec.ECDSA(digest))
    elif isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, tbs, padding.PKCS1v15(), digest)
    else:
        raise TypeError(f"unsupported issuer key {type(key).__name__}")


def valid_from(cert: x509.Certificate) -> dt.datetime:
    """notBefore as an aware UTC datetime: ``Certificate.not_valid_before_utc`` (42).
    Before 42: the naive value, which is UTC (RFC 5280 section 4.1.2.5: the times are Zulu)."""
    if HAS_UTC_VALIDITY:
        return cert.not_valid_before_utc
    return cert.not_valid_before.replace(tzinfo=dt.UTC)


def valid_until(cert: x509.Certificate) -> dt.datetime:
    """notAfter as an aware UTC datetime: ``Certificate.not_valid_after_utc`` (42).
    Before 42: the naive value, which is UTC (RFC 5280 section 4.1.2.5)."""
    if HAS_UTC_VALIDITY:
        return cert.not_valid_after_utc
    return cert.not_valid_after.replace(tzinfo=dt.UTC)
