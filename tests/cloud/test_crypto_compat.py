"""The cryptography shims (agent/cloud/crypto_compat.py), each run both ways.

Each test is parametrised over the ways this cryptography can take: ``library`` (its own
call, when the installed version has it) and ``fallback`` (the code for versions before
it, forced by turning the shim's ``HAS_*`` flag off). Under the main environment's
current cryptography both run, so the fallback is checked against the library's own
answers; ``make test-oldest`` runs this file again on cryptography 38.0.4, where only the
fallback exists and is what the agent really uses. Both sides are covered in both runs.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator

import cryptography
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from agent.cloud import crypto_compat

START = dt.datetime(2026, 6, 1, 12, 30, 45, tzinfo=dt.UTC)
END = START + dt.timedelta(days=30)
VERSION = tuple(int(part) for part in cryptography.__version__.split(".")[:2])


def _ways(flag: str) -> pytest.MarkDecorator:
    """Parametrise ``way`` over what this cryptography has for the shim behind ``flag``."""
    ways = ["library", "fallback"] if getattr(crypto_compat, flag) else ["fallback"]
    return pytest.mark.parametrize("way", [(flag, w) for w in ways], ids=ways, indirect=True)


@pytest.fixture
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The parametrised way; ``fallback`` turns the test's flag off. The fallback for the
    validity times reads the naive fields, which warn from 42 on: expected here."""
    flag, chosen = request.param
    if chosen == "fallback":
        monkeypatch.setattr(crypto_compat, flag, False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield chosen


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer: str, issuer_key: object, *, key: object = None) -> x509.Certificate:
    """A certificate for ``key`` (a fresh P-256 key if none), signed by ``issuer_key``."""
    public = (key or ec.generate_private_key(ec.SECP256R1())).public_key()  # type: ignore[attr-defined]
    digest = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(START).not_valid_after(END)
            .sign(issuer_key, digest))  # type: ignore[arg-type]


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


ISSUER_KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "rsa2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
"""The CA key kinds a device PKI uses: ours is P-256; Ed25519 and RSA are the others'."""


def test_the_flags_follow_the_installed_version() -> None:
    """The shims take the library's call exactly from the version that introduced it."""
    assert crypto_compat.HAS_PEM_BUNDLES == (VERSION >= (39, 0))
    assert crypto_compat.HAS_ISSUED_BY == (VERSION >= (40, 0))
    assert crypto_compat.HAS_UTC_VALIDITY == (VERSION >= (42, 0))


@_ways("HAS_PEM_BUNDLES")
def test_a_bundle_loads_every_certificate_in_order(way: str) -> None:
    """As ``openssl s_client -showcerts`` writes one: text between the blocks, here also a
    private key block, and the pre-RFC 7468 ``X509 CERTIFICATE`` label: all passed over."""
    key = ec.generate_private_key(ec.SECP256R1())
    leaf, inter = _cert("leaf", "inter", key), _cert("inter", "root", key)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    old_label = _pem(inter).replace(b" CERTIFICATE-----", b" X509 CERTIFICATE-----")
    data = b"subject=leaf\n" + _pem(leaf) + private + b"issuer=root\n" + old_label
    loaded = crypto_compat.load_pem_chain(data)
    assert [c.subject for c in loaded] == [leaf.subject, inter.subject]
    assert loaded == [leaf, inter]


@_ways("HAS_PEM_BUNDLES")
@pytest.mark.parametrize("bad", ["empty", "key only", "truncated", "corrupt body"])
def test_a_bundle_without_a_whole_certificate_is_a_value_error(way: str, bad: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    good = _pem(_cert("leaf", "ca", key))
    data = {
        "empty": b"",
        "key only": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
        "truncated": good[: len(good) // 2],
        "corrupt body": good.replace(b"\n", b"\n!!!!", 2),
    }[bad]
    with pytest.raises(ValueError):
        crypto_compat.load_pem_chain(data)


@_ways("HAS_ISSUED_BY")
@pytest.mark.parametrize("kind", sorted(ISSUER_KEYS))
def test_issued_by_accepts_the_signer_and_refuses_an_impostor(way: str, kind: str) -> None:
    ca_key = ISSUER_KEYS[kind]()
    ca = _cert("ca", "ca", ca_key, key=ca_key)
    leaf = _cert("leaf", "ca", ca_key)
    crypto_compat.check_issued_by(leaf, ca)  # no exception: the CA signed it
    impostor_key = ISSUER_KEYS[kind]()
    impostor = _cert("ca", "ca", impostor_key, key=impostor_key)  # same name, other key
    with pytest.raises(InvalidSignature):
        crypto_compat.check_issued_by(leaf, impostor)
    with pytest.raises(ValueError):
        crypto_compat.check_issued_by(leaf, _cert("other", "other", ca_key, key=ca_key))  # other name


@_ways("HAS_ISSUED_BY")
def test_issued_by_refuses_a_signature_of_another_key_kind(way: str) -> None:
    """An Ed25519 signature presented against a P-256 CA of the same name: refused as a
    mismatch (ValueError), not attempted."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("ca", "ca", ca_key, key=ca_key)
    leaf = _cert("leaf", "ca", ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(ValueError):
        crypto_compat.check_issued_by(leaf, ca)


@_ways("HAS_UTC_VALIDITY")
def test_validity_is_aware_utc(way: str) -> None:
    """A certificate written with times in +09:00 reads back as the same instants in UTC."""
    jst = dt.timezone(dt.timedelta(hours=9))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("leaf")).issuer_name(_name("ca"))
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(START.astimezone(jst)).not_valid_after(END.astimezone(jst))
            .sign(key, hashes.SHA256()))
    begin, end = crypto_compat.valid_from(cert), crypto_compat.valid_until(cert)
    assert (begin, end) == (START, END)
    assert begin.utcoffset() == dt.timedelta(0) and end.utcoffset() == dt.timedelta(0)
