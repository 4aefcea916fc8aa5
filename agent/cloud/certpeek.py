"""Two facts of the device's own certificate, read with the standard library only.

The serving daemon needs two things from its certificate: the subject CN (the device id,
checked against the configuration at start, agent.cloud.identity) and notAfter (whether
renewal is due, asked once a day, agent.cloud.renewal). Reading them with
``cryptography.x509`` would keep x509, its extensions, OIDs and ``email.utils`` in the
daemon for good, about 1.5 MB of a router's memory (docs/footprint.md), for two fields.
So this module walks the DER of the first certificate of a PEM file just far enough:

    Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
                                  issuer Name, validity SEQUENCE { notBefore, notAfter },
                                  subject Name, ... }                 (RFC 5280 4.1)

It checks nothing: it reads a file this device wrote after provisioning or renewal had
checked it with cryptography (agent.cloud.certs), which is still what checks any
certificate that arrives. A file it cannot read is a ``ValueError``.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass

PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.*?)-----END CERTIFICATE-----", re.DOTALL)

SEQUENCE, SET, OID, INTEGER = 0x30, 0x31, 0x06, 0x02
UTC_TIME, GENERALIZED_TIME = 0x17, 0x18
VERSION_TAG = 0xA0
"""[0] EXPLICIT, context-specific and constructed: present for v2 and v3 certificates."""
OID_COMMON_NAME = bytes([0x55, 0x04, 0x03])
"""2.5.4.3 (id-at-commonName), as DER encodes it."""
TEXT_CODECS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be",
               0x1C: "utf-32-be"}
"""UTF8String, PrintableString, IA5String, TeletexString (read as Latin-1, as OpenSSL
does), BMPString, UniversalString: the DirectoryString choices of RFC 5280."""


@dataclass(frozen=True)
class CertFacts:
    common_name: str | None
    """The subject's first CN, or None when the subject has none."""
    not_after: dt.datetime
    """End of validity, an aware UTC datetime."""


def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the element at ``pos``; DER definite lengths only."""
    if pos + 2 > len(der):
        raise ValueError("certificate DER ends inside an element header")
    tag, first = der[pos], der[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if not 0 < count <= 4 or pos + count > len(der):
            raise ValueError("certificate DER has an unsupported length form")
        length = int.from_bytes(der[pos:pos + count], "big")
        pos += count
    if pos + length > len(der):
        raise ValueError("certificate DER is shorter than an element says")
    return tag, pos, pos + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        tag, vstart, vend = _tlv(der, start)
        out.append((tag, vstart, vend))
        start = vend
    return out


def _time(tag: int, value: bytes) -> dt.datetime:
    text = value.decode("ascii")
    if tag == UTC_TIME:  # YYMMDDHHMMSSZ; years 50-99 are 19xx (RFC 5280 4.1.2.5.1)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != GENERALIZED_TIME:
        raise ValueError(f"certificate validity has tag 0x{tag:02x}, not a time")
    if not re.fullmatch(r"\d{14}Z", text):
        raise ValueError(f"certificate time {value!r} is not in RFC 5280's form")
    return dt.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=dt.UTC)


def _common_name(der: bytes, start: int, end: int) -> str | None:
    for tag, rdn_start, rdn_end in _children(der, start, end):
        if tag != SET:
            raise ValueError("certificate subject is not a sequence of sets")
        for _, atv_start, atv_end in _children(der, rdn_start, rdn_end):
            (oid_tag, oid_start, oid_end), (value_tag, value_start, value_end) = _children(der, atv_start, atv_end)[:2]
            if oid_tag == OID and der[oid_start:oid_end] == OID_COMMON_NAME:
                return der[value_start:value_end].decode(TEXT_CODECS.get(value_tag, "latin-1"))
    return None


def leaf_facts(pem: bytes) -> CertFacts:
    """The CN and notAfter of the first certificate in ``pem`` (a certificate or a chain)."""
    match = PEM_CERT.search(pem)
    if match is None:
        raise ValueError("no PEM certificate found")
    der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    tag, start, end = _tlv(der, 0)
    if tag != SEQUENCE:
        raise ValueError("certificate DER is not a sequence")
    tag, start, end = _tlv(der, start)
    if tag != SEQUENCE:
        raise ValueError("tbsCertificate is not a sequence")
    fields = _children(der, start, end)
    if fields and fields[0][0] == VERSION_TAG:
        fields = fields[1:]
    if len(fields) < 5 or fields[0][0] != INTEGER or fields[3][0] != SEQUENCE or fields[4][0] != SEQUENCE:
        raise ValueError("tbsCertificate does not have RFC 5280's fields")
    validity = _children(der, fields[3][1], fields[3][2])
    if len(validity) != 2:
        raise ValueError("certificate validity is not two times")
    tag, vstart, vend = validity[1]
    return CertFacts(common_name=_common_name(der, fields[4][1], fields[4][2]), not_after=_time(tag, der[vstart:vend]))
