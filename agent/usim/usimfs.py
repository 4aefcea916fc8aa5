"""The file system the host-side USIM serves, built from a profile's facts.

The MF holds what TS 102 221 puts there (EF_DIR listing the USIM, EF_ICCID, EF_PL,
EF_ARR); the USIM ADF holds the files TS 31.102 marks mandatory and those its service
table (EF_UST) announces: what a baseband reads at power-up before it attaches, and the
files it writes back as the network moves it (location information, keys, START). The
contents come from ``SimProfile`` (ICCID, IMSI, PLMN) and the SPN given beside it; the
files the terminal writes start in the state a new card ships in ("not updated", no key).

Files not here (DF_TELECOM, phone book, SMS, GSM access) answer SELECT with 6A82, as on a
card that lacks them; EF_UST announces none of the services that would need them.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.sim import SimProfile
from agent.usim import encode
from agent.usim.fs import (
    RULE_READ_ALWAYS,
    RULE_READ_ALWAYS_WRITE_PIN,
    RULE_READ_PIN,
    RULE_READ_WRITE_PIN,
    Df,
    Ef,
    arr_file,
)

MF = 0x3F00
ADF_CURRENT = 0x7FFF
"""'7FFF' names the current application's ADF (102 221 clause 8)."""

USIM_AID = bytes.fromhex("A0000000871002FFFFFFFF8900000100")
"""RID A000000087 (3GPP), application code 1002 (USIM, TS 101 220), country and
provider codes FFF/FFFFF ('not given'), then provider data: the usual 16-byte form."""
USIM_LABEL = b"USIM"

# --- MF (TS 102 221 13) ----------------------------------------------------------------
EF_DIR, EF_ICCID, EF_PL, EF_ARR_MF = 0x2F00, 0x2FE2, 0x2F05, 0x2F06
# --- USIM ADF (TS 31.102 4.2) ----------------------------------------------------------
EF_LI, EF_ARR, EF_IMSI, EF_KEYS, EF_KEYSPS = 0x6F05, 0x6F06, 0x6F07, 0x6F08, 0x6F09
EF_HPPLMN, EF_UST, EF_SPN, EF_EST, EF_START_HFN = 0x6F31, 0x6F38, 0x6F46, 0x6F56, 0x6F5B
EF_THRESHOLD, EF_PSLOCI, EF_ACC, EF_FPLMN, EF_LOCI = 0x6F5C, 0x6F73, 0x6F78, 0x6F7B, 0x6F7E
EF_AD, EF_ECC, EF_EPSLOCI, EF_EPSNSC = 0x6FAD, 0x6FB7, 0x6FE3, 0x6FE4

SERVICE_SPN = 19
SERVICE_PS_DOMAIN = 33
"""TS 31.102 4.2.8: service 33 (packet switched domain) shall be set."""
SERVICE_EST = 34
SERVICE_EPS_MM = 85
"""EPS mobility management information: EF_EPSLOCI and EF_EPSNSC live on the card, so a
baseband keeps its GUTI and NAS security context with the SIM, not with the module."""

DIR_RECORD = 38
"""EF_DIR record length: the application template (4+16+6 bytes) with room to spare;
38 is what many UICCs use."""
SPN_LENGTH = 17
"""EF_SPN: display condition + 16 bytes of name (TS 31.102 4.2.12)."""
FPLMN_SLOTS = 4
"""EF_FPLMN holds at least 4 PLMNs (TS 31.102)."""
ECC_RECORDS, ECC_RECORD = 5, 4
"""EF_ECC: records of 3 bytes of number + category, no alpha identifier; all empty, so
the module uses its own emergency list (a pooled SIM has no home country to state)."""
LANGUAGES = ("en",)
"""EF_LI and EF_PL: the profile names no language; English is the one every ME shows."""
LANGUAGE_BYTES = 4
HPPLMN_MINUTES = 60
"""EF_HPPLMN: search for a higher-priority PLMN every 60 min (10 steps of 6 min), the
default TS 22.011 gives when the card says nothing."""
NO_KEY = 0x07
"""KSI '07': no key is available (TS 31.102: EF_KEYS, EF_KEYSPS, EF_EPSNSC)."""
START_INITIAL = bytes.fromhex("F00000F00000")
"""EF_START-HFN of a new card: START_CS and START_PS at their initial maximum, so the ME
derives fresh keys at the first connection (TS 31.102, EF_START-HFN)."""
THRESHOLD = bytes.fromhex("FFFFFF")
"""EF_THRESHOLD: the highest START value before keys are renewed (TS 31.102)."""
LAC_DELETED = b"\xff\xfe"
"""LAC/TAC 'FFFE': 'deleted', what TS 24.008 stores when no valid area is known."""
UPDATE_NOT_DONE = 0x01
"""Location / routing / EPS update status 'not updated' (TS 31.102: EF_LOCI, EF_PSLOCI, EF_EPSLOCI)."""


def _ef(fid: int, rule: int, data: bytes, sfi: int | None = None) -> Ef:
    return Ef(fid, rule, data=bytearray(data), sfi=sfi)


def _records(fid: int, rule: int, records: list[bytes], sfi: int | None = None) -> Ef:
    return Ef(fid, rule, records=[bytearray(r) for r in records], sfi=sfi)


def dir_record() -> bytes:
    """EF_DIR's application template (102 221 13.1): '61' holding the AID ('4F') and
    the label ('50')."""
    template = encode.tlv(0x61, encode.tlv(0x4F, USIM_AID) + encode.tlv(0x50, USIM_LABEL))
    return template.ljust(DIR_RECORD, b"\xff")


def services(spn: str) -> frozenset[int]:
    """EF_UST's services: the ones whose files this card serves."""
    return frozenset({SERVICE_PS_DOMAIN, SERVICE_EST, SERVICE_EPS_MM} | ({SERVICE_SPN} if spn else set()))


def epsnsc_empty() -> bytes:
    """EF_EPSNSC with no context (TS 31.102): KSI_ASME '07', K_ASME, uplink and
    downlink NAS COUNT and algorithms inside the context tag 'A0'."""
    body = (encode.tlv(0x80, bytes([NO_KEY])) + encode.tlv(0x81, b"\xff" * 32)
            + encode.tlv(0x82, bytes(4)) + encode.tlv(0x83, bytes(4)) + encode.tlv(0x84, b"\x00"))
    return encode.tlv(0xA0, body)


@dataclass(frozen=True)
class CardFiles:
    """The MF and the applications' ADFs. An ADF is reached by its AID (or '7FFF' once
    selected), not by a FID of the MF, so it names the MF as parent without being listed
    among the MF's children."""

    mf: Df
    applications: tuple[Df, ...]


def build(profile: SimProfile, spn: str = "") -> CardFiles:
    """The card's files for ``profile``; ``spn`` empty leaves EF_SPN out (and service 19)."""
    mf = Df(MF, EF_ARR_MF)
    mf.add(_records(EF_DIR, RULE_READ_ALWAYS, [dir_record()], sfi=0x1E))
    mf.add(_ef(EF_ICCID, RULE_READ_ALWAYS, encode.swapped_bcd(profile.iccid, 10), sfi=0x02))
    mf.add(_ef(EF_PL, RULE_READ_ALWAYS_WRITE_PIN, encode.language(LANGUAGES, LANGUAGE_BYTES), sfi=0x05))
    mf.add(arr_file(EF_ARR_MF, sfi=0x06))
    adf = usim_adf(profile, spn)
    adf.parent = mf
    return CardFiles(mf, (adf,))


def usim_adf(profile: SimProfile, spn: str) -> Df:
    """ADF USIM with its files; SFIs as TS 31.102 annex H assigns them."""
    home = encode.plmn(profile.plmn)
    adf = Df(ADF_CURRENT, EF_ARR, aid=USIM_AID)
    files = [
        _ef(EF_IMSI, RULE_READ_PIN, encode.imsi(profile.imsi), sfi=0x07),
        _ef(EF_AD, RULE_READ_PIN, bytes([0x00, 0x00, 0x00, len(profile.plmn) - 3]), sfi=0x03),
        _ef(EF_UST, RULE_READ_PIN, encode.service_table(services(spn)), sfi=0x04),
        _ef(EF_EST, RULE_READ_PIN, b"\x00", sfi=0x05),
        _ef(EF_ACC, RULE_READ_PIN, encode.access_class(profile.imsi), sfi=0x06),
        _ef(EF_HPPLMN, RULE_READ_PIN, bytes([HPPLMN_MINUTES // 6]), sfi=0x12),
        _ef(EF_LI, RULE_READ_WRITE_PIN, encode.language(LANGUAGES, LANGUAGE_BYTES), sfi=0x02),
        _ef(EF_FPLMN, RULE_READ_WRITE_PIN, b"\xff" * (3 * FPLMN_SLOTS), sfi=0x0D),
        _ef(EF_LOCI, RULE_READ_WRITE_PIN, b"\xff" * 4 + home + LAC_DELETED + b"\x00" + bytes([UPDATE_NOT_DONE]), sfi=0x0B),
        _ef(EF_PSLOCI, RULE_READ_WRITE_PIN, b"\xff" * 7 + home + LAC_DELETED + b"\xff" + bytes([UPDATE_NOT_DONE]), sfi=0x0C),
        _ef(EF_EPSLOCI, RULE_READ_WRITE_PIN, b"\xff" * 12 + home + LAC_DELETED + bytes([UPDATE_NOT_DONE]), sfi=0x1E),
        _records(EF_EPSNSC, RULE_READ_WRITE_PIN, [epsnsc_empty()], sfi=0x18),
        _ef(EF_KEYS, RULE_READ_WRITE_PIN, bytes([NO_KEY]) + b"\xff" * 32, sfi=0x08),
        _ef(EF_KEYSPS, RULE_READ_WRITE_PIN, bytes([NO_KEY]) + b"\xff" * 32, sfi=0x09),
        _ef(EF_START_HFN, RULE_READ_WRITE_PIN, START_INITIAL, sfi=0x0F),
        _ef(EF_THRESHOLD, RULE_READ_PIN, THRESHOLD, sfi=0x10),
        _records(EF_ECC, RULE_READ_ALWAYS, [b"\xff" * ECC_RECORD] * ECC_RECORDS, sfi=0x01),
        arr_file(EF_ARR, sfi=0x17),
    ]
    if spn:
        files.append(_ef(EF_SPN, RULE_READ_ALWAYS, encode.spn(spn, SPN_LENGTH)))
    for ef in files:
        adf.add(ef)
    return adf
