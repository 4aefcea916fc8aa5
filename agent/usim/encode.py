"""Contents of the SIM's files from a profile's facts: the codings the specs fix.

Each function is one coding of 3GPP TS 31.102 (USIM files), TS 24.008 (PLMN) or ETSI TS
102 221 (EF_ICCID, EF_DIR, the FCP's TLVs), and nothing else: which file holds what is
``usimfs.py``'s business.
"""

from __future__ import annotations

PAD = 0xFF
"""Unused bytes of a file are 'FF' (TS 31.102 and TS 102 221, throughout)."""


def tlv(tag: int, value: bytes) -> bytes:
    """A BER-TLV with a one-byte tag; lengths over 127 take the '81 xx' form (102 221 11.1.1.3)."""
    if len(value) < 0x80:
        return bytes([tag, len(value)]) + value
    if len(value) <= 0xFF:
        return bytes([tag, 0x81, len(value)]) + value
    raise ValueError(f"TLV value of {len(value)} bytes does not fit a card's short lengths")


def swapped_bcd(digits: str, length: int) -> bytes:
    """Digits as semi-octets, the first digit in the low nibble, 'F'-padded to ``length``
    bytes: EF_ICCID (102 221 13.2) and the digits of EF_IMSI."""
    text = digits.ljust(length * 2, "F")
    return bytes(int(text[i + 1] + text[i], 16) for i in range(0, length * 2, 2))


def imsi(digits: str) -> bytes:
    """EF_IMSI (TS 31.102 4.2.2): a length byte, then the IMSI as in TS 24.008 10.5.1.4:
    the first nibble is the identity type 001 with the odd/even flag (9 odd, 1 even)."""
    nibbles = ("9" if len(digits) % 2 else "1") + digits
    body = swapped_bcd(nibbles, (len(nibbles) + 1) // 2)
    return bytes([len(body)]) + body.ljust(8, bytes([PAD]))


def plmn(mcc_mnc: str) -> bytes:
    """Three bytes MCC2 MCC1 | MNC3 MCC3 | MNC2 MNC1 (TS 24.008 10.5.1.3, as in the location area identification), MNC3 'F' for a
    two-digit MNC: the form of every PLMN in EF_LOCI, EF_PSLOCI, EF_EPSLOCI, EF_FPLMN."""
    mcc, mnc = mcc_mnc[:3], mcc_mnc[3:]
    d = [int(c, 16) for c in mcc + (mnc if len(mnc) == 3 else mnc + "F")]
    return bytes([(d[1] << 4) | d[0], (d[5] << 4) | d[2], (d[4] << 4) | d[3]])


def access_class(digits: str) -> bytes:
    """EF_ACC (TS 31.102 4.2.15): one of classes 0-9, taken from the IMSI's last digit: the
    classes are allocated at random (TS 22.011), and the digit spreads a pool evenly; class n is bit n of the two bytes read big-endian."""
    return (1 << int(digits[-1])).to_bytes(2, "big")


def service_table(services: frozenset[int]) -> bytes:
    """EF_UST (TS 31.102 4.2.8): service n is bit (n-1) % 8 of byte (n-1) // 8."""
    out = bytearray((max(services) + 7) // 8)
    for n in services:
        out[(n - 1) // 8] |= 1 << ((n - 1) % 8)
    return bytes(out)


def spn(name: str, length: int) -> bytes:
    """EF_SPN (TS 31.102 4.2.12): display condition byte 01 (show the registered PLMN's
    name too, when roaming), then the name in the GSM default alphabet, one character a
    byte, 'FF'-padded. Letters, digits and space mean the same in that alphabet as in
    ASCII; anything else is written as a space."""
    safe = "".join(c if (c.isascii() and c.isalnum()) or c == " " else " " for c in name)
    return b"\x01" + safe.encode("ascii")[: length - 1].ljust(length - 1, bytes([PAD]))


def language(codes: tuple[str, ...], length: int) -> bytes:
    """EF_LI and EF_PL (TS 31.102 4.2.1, and TS 102 221 clause 13 for EF_PL): ISO 639 codes of two letters,
    most preferred first, 'FF'-padded."""
    return "".join(codes).encode("ascii").ljust(length, bytes([PAD]))
