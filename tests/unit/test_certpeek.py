"""agent/cloud/certpeek.py reads the CN and notAfter that cryptography reads, from
certificates cryptography made: UTCTime and GeneralizedTime, any DirectoryString text,
subjects with and without a CN, a chain, and refuses what is not a certificate."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cloud.certpeek import leaf_facts
from agent.cloud.crypto_compat import valid_until

KEY = ec.generate_private_key(ec.SECP256R1())
UTC = dt.UTC


def make_cert(subject: list[x509.NameAttribute], not_after: dt.datetime,
              not_before: dt.datetime = dt.datetime(2020, 2, 20, tzinfo=UTC)) -> bytes:
    name = x509.Name(subject)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(KEY.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .sign(KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def by_cryptography(pem: bytes) -> tuple[str | None, dt.datetime]:
    cert = x509.load_pem_x509_certificate(pem)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    after = valid_until(cert)  # the one shim for cryptography 38's naive datetimes
    return (str(names[0].value) if names else None), after


@pytest.mark.parametrize("not_after", [
    dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC),  # the last UTCTime year
    dt.datetime(2050, 1, 1, tzinfo=UTC),  # GeneralizedTime from here (RFC 5280 4.1.2.5)
    dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),  # "no well-defined expiration"
])
def test_not_after_in_both_time_forms(not_after: dt.datetime) -> None:
    pem = make_cert([x509.NameAttribute(NameOID.COMMON_NAME, "rtr-000001")], not_after)
    facts = leaf_facts(pem)
    assert (facts.common_name, facts.not_after) == by_cryptography(pem) == ("rtr-000001", not_after)


def test_utctime_years_before_2000() -> None:
    pem = make_cert([x509.NameAttribute(NameOID.COMMON_NAME, "old")], dt.datetime(1999, 6, 1, tzinfo=UTC),
                    not_before=dt.datetime(1998, 1, 1, tzinfo=UTC))
    assert leaf_facts(pem).not_after == dt.datetime(1999, 6, 1, tzinfo=UTC)


def test_cn_among_other_attributes_and_absent() -> None:
    full = make_cert([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pocket"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "pw-490154203237518"),
                      x509.NameAttribute(NameOID.SERIAL_NUMBER, "490154203237518")], dt.datetime(2031, 1, 1, tzinfo=UTC))
    assert leaf_facts(full).common_name == "pw-490154203237518"
    no_cn = make_cert([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pocket")], dt.datetime(2031, 1, 1, tzinfo=UTC))
    assert leaf_facts(no_cn).common_name is None


def test_leaf_of_a_chain_is_read() -> None:
    leaf = make_cert([x509.NameAttribute(NameOID.COMMON_NAME, "leaf")], dt.datetime(2030, 1, 1, tzinfo=UTC))
    ca = make_cert([x509.NameAttribute(NameOID.COMMON_NAME, "ca")], dt.datetime(2040, 1, 1, tzinfo=UTC))
    assert leaf_facts(leaf + ca).common_name == "leaf"


@settings(max_examples=60, deadline=None)
@given(cn=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=16),  # 64 bytes of UTF-8 at most (ub-common-name)
       not_after=st.datetimes(min_value=dt.datetime(2021, 1, 1), max_value=dt.datetime(2200, 1, 1)))
def test_agrees_with_cryptography(cn: str, not_after: dt.datetime) -> None:
    not_after = not_after.replace(microsecond=0, tzinfo=UTC)
    pem = make_cert([x509.NameAttribute(NameOID.COMMON_NAME, cn)], not_after)
    facts = leaf_facts(pem)
    assert (facts.common_name, facts.not_after) == by_cryptography(pem)


@pytest.mark.parametrize("text", [
    b"",
    b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
])
def test_what_is_not_a_certificate_is_a_value_error(text: bytes) -> None:
    with pytest.raises(ValueError):
        leaf_facts(text)


def test_a_truncated_certificate_is_a_value_error() -> None:
    pem = make_cert([x509.NameAttribute(NameOID.COMMON_NAME, "cut")], dt.datetime(2030, 1, 1, tzinfo=UTC))
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    for cut in (10, 60, len(der) // 2):
        body = base64.encodebytes(der[:cut])
        with pytest.raises(ValueError):
            leaf_facts(b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n")
