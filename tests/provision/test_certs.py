"""Certificate checks on their own (agent.cloud.certs): chains through an intermediate,
and each refusal reason, without a modem or a broker."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.cloud import certs
from agent.errors import CertificateMismatch

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DEVICE, IMEI = "rtr-1", "356938035643809"


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey, *,
          ca: bool, start: dt.datetime = NOW - dt.timedelta(days=1), days: int = 30) -> x509.Certificate:
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def pem(*cs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in cs)


@pytest.fixture(scope="module")
def pki() -> dict:
    root_key, int_key, dev_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("root", root_key, "root", root_key, ca=True, days=3650)
    inter = _cert("inter", int_key, "root", root_key, ca=True, days=365)
    return {"root": root, "root_key": root_key, "inter": inter, "int_key": int_key, "dev_key": dev_key}


def check(pki: dict, chain: bytes, now: dt.datetime = NOW) -> x509.Certificate:
    return certs.check_certificate(chain, key=pki["dev_key"], ca_pem=pem(pki["root"]), device_id=DEVICE,
                                   imei=IMEI, now=now)


def test_a_leaf_under_an_intermediate_chains_to_the_root(pki: dict) -> None:
    leaf = _cert(DEVICE, pki["dev_key"], "inter", pki["int_key"], ca=False)
    assert check(pki, pem(leaf, pki["inter"])) == leaf


def test_without_its_intermediate_a_leaf_does_not_chain(pki: dict) -> None:
    leaf = _cert(DEVICE, pki["dev_key"], "inter", pki["int_key"], ca=False)
    with pytest.raises(CertificateMismatch) as err:
        check(pki, pem(leaf))
    assert err.value.reason == "chain"


def test_an_intermediate_that_is_not_a_ca_is_refused(pki: dict) -> None:
    not_ca_key = ec.generate_private_key(ec.SECP256R1())
    not_ca = _cert("inter", not_ca_key, "root", pki["root_key"], ca=False)
    leaf = _cert(DEVICE, pki["dev_key"], "inter", not_ca_key, ca=False)
    with pytest.raises(CertificateMismatch) as err:
        check(pki, pem(leaf, not_ca))
    assert err.value.reason == "chain"


def test_not_yet_valid_beyond_the_clock_skew_is_refused(pki: dict) -> None:
    leaf = _cert(DEVICE, pki["dev_key"], "root", pki["root_key"], ca=False, start=NOW + dt.timedelta(hours=1))
    with pytest.raises(CertificateMismatch) as err:
        check(pki, pem(leaf))
    assert err.value.reason == "not_yet_valid"
    skewed = _cert(DEVICE, pki["dev_key"], "root", pki["root_key"], ca=False,
                   start=NOW + dt.timedelta(seconds=certs.CLOCK_SKEW_S - 60))
    assert check(pki, pem(skewed)) == skewed  # a device clock a few minutes behind is tolerated


def test_garbage_is_malformed_not_a_crash(pki: dict) -> None:
    for data in (b"", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"\x00\xff"):
        with pytest.raises(CertificateMismatch) as err:
            check(pki, data)
        assert err.value.reason == "malformed"


def test_csr_round_trip_and_fingerprints(pki: dict) -> None:
    csr = certs.load_csr(certs.make_csr(pki["dev_key"], DEVICE, IMEI))
    assert certs.subject_value(csr.subject, NameOID.COMMON_NAME) == DEVICE
    assert certs.subject_value(csr.subject, NameOID.SERIAL_NUMBER) == IMEI
    assert certs.fingerprint(csr.public_key()) == certs.fingerprint(pki["dev_key"].public_key())
    signed = certs.sign_csr(certs.make_csr(pki["dev_key"], DEVICE, IMEI), ca_cert=pki["root"],
                            ca_key=pki["root_key"], days=30, now=NOW)
    assert check(pki, signed).subject == csr.subject
