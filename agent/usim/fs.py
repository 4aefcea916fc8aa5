"""The UICC's files as ETSI TS 102 221 clause 8 and 11.1.1.3 describe them.

A dedicated file (MF, DF or ADF) holds children by file identifier; an elementary file is
transparent (a string of bytes) or linear fixed (numbered records of one length). Each
file answers SELECT with its FCP template (file control parameters), whose TLVs come
from the file's own facts, so the template and the file can never disagree.

Access rules: every file names one record of an EF_ARR (the referenced format, tag 8B).
This card has no PIN set (PIN1 and PIN2 are disabled, so a PIN condition is always met)
and never grants ADM, so a rule comes down to one question, asked by UPDATE: may the
terminal write here? ``Ef.writable`` says it, and the rule number in the FCP follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.usim.encode import tlv

LIFE_CYCLE_OPERATIONAL = 0x05
"""LCSI 'operational state - activated' (102 221 11.1.1.4)."""
DATA_CODING = 0x21
"""The data coding byte 102 221 11.1.1.4 fixes for UICC files."""
FD_DF = 0x78
"""File descriptor: shareable DF or ADF (102 221 table 11.5)."""
FD_TRANSPARENT = 0x41
"""File descriptor: shareable working EF, transparent."""
FD_LINEAR_FIXED = 0x42
"""File descriptor: shareable working EF, linear fixed."""
UICC_CHARACTERISTICS = 0x71
"""MF proprietary data (102 221 11.1.1.4): clock stop allowed, no preferred level;
the byte most UICCs give (a host-side card has no clock, so any is true)."""
PIN1 = 0x01
"""Key reference of the USIM's PIN1 (application PIN, 102 221 9.5)."""
PIN2 = 0x81
"""Key reference of PIN2 (second application PIN)."""
ADM1 = 0x0A
"""Key reference of the issuer's ADM1: the card never grants it."""

RULE_READ_ALWAYS = 1
"""EF_ARR record 1: read always, write ADM (EF_ICCID, EF_DIR, EF_ARR, EF_SPN)."""
RULE_READ_PIN = 2
"""Record 2: read under PIN1, write ADM (EF_IMSI, EF_AD, EF_UST, EF_ACC ...)."""
RULE_READ_WRITE_PIN = 3
"""Record 3: read and update under PIN1 (where the terminal writes: EF_LOCI, EF_KEYS ...)."""
RULE_READ_ALWAYS_WRITE_PIN = 4
"""Record 4: read always, update under PIN1 (EF_PL)."""
RULE_DF = 5
"""Record 5: a DF's administrative operations under ADM."""

_ALWAYS = tlv(0x90, b"")
_PIN1 = tlv(0xA4, tlv(0x83, bytes([PIN1])) + tlv(0x95, b"\x08"))
_ADM = tlv(0xA4, tlv(0x83, bytes([ADM1])) + tlv(0x95, b"\x08"))
_READ, _UPDATE, _ADMIN = tlv(0x80, b"\x01"), tlv(0x80, b"\x02"), tlv(0x80, b"\x18")
"""Access mode bytes for an EF (ISO/IEC 7816-4, the access mode byte of an EF): b1 read, b2 update, b4+b5
deactivate/activate."""
ACCESS_RULES: dict[int, bytes] = {
    RULE_READ_ALWAYS: _READ + _ALWAYS + tlv(0x80, b"\x1a") + _ADM,
    RULE_READ_PIN: _READ + _PIN1 + tlv(0x80, b"\x1a") + _ADM,
    RULE_READ_WRITE_PIN: tlv(0x80, b"\x03") + _PIN1 + _ADMIN + _ADM,
    RULE_READ_ALWAYS_WRITE_PIN: _READ + _ALWAYS + _UPDATE + _PIN1 + _ADMIN + _ADM,
    RULE_DF: tlv(0x80, b"\x7f") + _ADM,
}
"""EF_ARR's records in the expanded format (102 221 9.2): an access mode data object
(tag 80) followed by its security condition (90 always, A4 a key reference with usage
qualifier 08 'user verification')."""
WRITABLE_RULES = frozenset({RULE_READ_WRITE_PIN, RULE_READ_ALWAYS_WRITE_PIN})


@dataclass(eq=False)
class Ef:
    """An elementary file. ``records`` is empty for a transparent EF (``data`` holds it)."""

    fid: int
    rule: int
    data: bytearray = field(default_factory=bytearray)
    records: list[bytearray] = field(default_factory=list)
    sfi: int | None = None
    parent: Df | None = None

    @property
    def linear(self) -> bool:
        return bool(self.records)

    @property
    def writable(self) -> bool:
        return self.rule in WRITABLE_RULES

    @property
    def record_length(self) -> int:
        return len(self.records[0]) if self.records else 0

    @property
    def size(self) -> int:
        return self.record_length * len(self.records) if self.records else len(self.data)

    def fcp(self, arr_fid: int) -> bytes:
        """FCP template of an EF (102 221 11.1.1.3): descriptor, FID, life cycle,
        security attributes (referenced), file size, SFI ('88 00': none)."""
        if self.linear:
            descriptor = bytes([FD_LINEAR_FIXED, DATA_CODING]) + self.record_length.to_bytes(2, "big") + \
                bytes([len(self.records)])
        else:
            descriptor = bytes([FD_TRANSPARENT, DATA_CODING])
        body = (tlv(0x82, descriptor) + tlv(0x83, self.fid.to_bytes(2, "big"))
                + tlv(0x8A, bytes([LIFE_CYCLE_OPERATIONAL]))
                + tlv(0x8B, arr_fid.to_bytes(2, "big") + bytes([self.rule]))
                + tlv(0x80, self.size.to_bytes(2, "big"))
                + tlv(0x88, b"" if self.sfi is None else bytes([self.sfi << 3])))
        return tlv(0x62, body)


@dataclass(eq=False)
class Df:
    """A dedicated file: the MF, or an application's ADF when ``aid`` is set."""

    fid: int
    arr_fid: int
    """The EF_ARR this DF's files (and the DF itself) refer to."""
    aid: bytes = b""
    children: dict[int, Ef | Df] = field(default_factory=dict)
    parent: Df | None = None

    def add(self, node: Ef | Df) -> None:
        node.parent = self
        self.children[node.fid] = node

    def by_sfi(self, sfi: int) -> Ef | None:
        return next((c for c in self.children.values() if isinstance(c, Ef) and c.sfi == sfi), None)

    def fcp(self) -> bytes:
        """FCP template of a DF or ADF (102 221 11.1.1.3): descriptor, FID, the AID for
        an ADF, proprietary data for the MF, life cycle, security attributes and the PIN
        status template (PS_DO '00': PIN1 and PIN2 both disabled)."""
        body = tlv(0x82, bytes([FD_DF, DATA_CODING])) + tlv(0x83, self.fid.to_bytes(2, "big"))
        if self.aid:
            body += tlv(0x84, self.aid)
        if self.parent is None:
            body += tlv(0xA5, tlv(0x80, bytes([UICC_CHARACTERISTICS])))
        body += tlv(0x8A, bytes([LIFE_CYCLE_OPERATIONAL]))
        body += tlv(0x8B, self.arr_fid.to_bytes(2, "big") + bytes([RULE_DF]))
        body += tlv(0xC6, tlv(0x90, b"\x00") + tlv(0x83, bytes([PIN1])) + tlv(0x83, bytes([PIN2])))
        return tlv(0x62, body)


def arr_file(fid: int, sfi: int) -> Ef:
    """An EF_ARR holding ``ACCESS_RULES``, each record 'FF'-padded to the longest."""
    length = max(len(r) for r in ACCESS_RULES.values())
    records = [bytearray(ACCESS_RULES[n].ljust(length, b"\xff")) for n in sorted(ACCESS_RULES)]
    return Ef(fid, RULE_READ_ALWAYS, records=records, sfi=sfi)
