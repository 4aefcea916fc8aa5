"""The host-side USIM as a baseband meets it: the power-up read sequence byte for byte
where TS 102 221 and TS 31.102 fix the bytes, the selection and record rules, and the
status word of every refusal."""

from __future__ import annotations

import pytest

from agent.usim.card import Uicc
from agent.usim.milenage import Milenage
from agent.usim.sqn import SqnState
from tests.unit.usim_terminal import KI, OPC, PROFILE, USIM_AID, Terminal, apdu, loaded_card

OK = b"\x90\x00"


def tlvs(data: bytes) -> dict[int, bytes]:
    """One level of BER-TLV with one-byte tags and short lengths (all an FCP uses)."""
    out, i = {}, 0
    while i < len(data):
        tag, length = data[i], data[i + 1]
        out[tag] = data[i + 2:i + 2 + length]
        i += 2 + length
    return out


def fcp(data: bytes) -> dict[int, bytes]:
    assert data[0] == 0x62 and data[1] == len(data) - 2
    return tlvs(data[2:])


@pytest.fixture
def term() -> Terminal:
    return Terminal(loaded_card())


def usim(term: Terminal) -> None:
    assert term.send(apdu("00 A4 04 04 10") + USIM_AID)[1] == OK


# --- the power-up sequence ----------------------------------------------------------------

def test_power_up_read_sequence(term: Terminal) -> None:
    # SELECT MF, FCP returned: T=0 announces it with 61xx and GET RESPONSE fetches it
    first = term.raw(apdu("00 A4 00 04 02 3F00"))
    assert first[0] == 0x61 and len(first) == 2
    data = term.raw(apdu("00 C0 00 00") + first[1:])
    assert data[-2:] == OK and len(data) - 2 == first[1]
    mf = fcp(data[:-2])
    assert mf[0x82] == b"\x78\x21" and mf[0x83] == b"\x3f\x00" and mf[0x8A] == b"\x05"
    assert tlvs(mf[0xC6])[0x90] == b"\x00"  # PS_DO: no PIN enabled
    # EF_ICCID: 10 bytes of swapped BCD, F-padded (TS 102 221 13.2)
    data, status = term.select(0x2FE2)
    assert status == OK and fcp(data)[0x82] == b"\x41\x21" and fcp(data)[0x80] == b"\x00\x0a"
    assert term.raw(apdu("00 B0 00 00 0A")) == bytes.fromhex("98180100000001001 0F9".replace(" ", "")) + OK
    # EF_PL: "en"
    assert term.select(0x2F05)[1] == OK
    assert term.read_binary(4) == (b"en\xff\xff", OK)
    # EF_DIR: linear fixed, one record of 38 bytes: the USIM's application template
    data, status = term.select(0x2F00)
    assert status == OK and fcp(data)[0x82] == bytes.fromhex("4221002601")
    record = term.raw(apdu("00 B2 01 04 26"))
    assert record == bytes.fromhex("61184F10") + USIM_AID + bytes.fromhex("50045553494D") + b"\xff" * 12 + OK
    # ADF USIM by its AID, as EF_DIR named it
    data, status = term.send(apdu("00 A4 04 04 10") + USIM_AID)
    assert status == OK and fcp(data)[0x84] == USIM_AID and fcp(data)[0x82] == b"\x78\x21"
    assert term.raw(apdu("80 10 00 00 05 FF FF FF FF 1F")) == OK  # TERMINAL PROFILE
    expected = {
        0x6F05: b"en\xff\xff",                                           # EF_LI
        0x6F07: bytes.fromhex("084904010000010010"),                     # EF_IMSI 440100000100001
        0x6FAD: bytes.fromhex("00000002"),                               # EF_AD: normal, MNC 2 digits
        0x6F38: bytes.fromhex("0000040003000000000010"),                 # EF_UST: 19, 33, 34, 85
        0x6F56: b"\x00",                                                 # EF_EST: nothing enabled
        0x6F78: bytes.fromhex("0002"),                                   # EF_ACC: class 1 (last digit)
        0x6F7B: b"\xff" * 12,                                            # EF_FPLMN: empty
        0x6F31: b"\x0a",                                                 # EF_HPPLMN: 10 x 6 min
        0x6F7E: bytes.fromhex("FFFFFFFF44F001FFFE0001"),                 # EF_LOCI: not updated
        0x6F73: bytes.fromhex("FFFFFFFFFFFFFF44F001FFFEFF01"),           # EF_PSLOCI
        0x6FE3: b"\xff" * 12 + bytes.fromhex("44F001FFFE01"),            # EF_EPSLOCI
        0x6F08: b"\x07" + b"\xff" * 32,                                  # EF_KEYS: KSI 7, no key
        0x6F09: b"\x07" + b"\xff" * 32,                                  # EF_KEYSPS
        0x6F5B: bytes.fromhex("F00000F00000"),                           # EF_START-HFN
        0x6F5C: bytes.fromhex("FFFFFF"),                                 # EF_THRESHOLD
        0x6F46: b"\x01Pocket Lab" + b"\xff" * 6,                         # EF_SPN
    }
    for fid, content in expected.items():
        data, status = term.select(fid)
        assert status == OK, hex(fid)
        size = int.from_bytes(fcp(data)[0x80], "big")
        assert size == len(content), hex(fid)
        assert term.read_binary(size) == (content, OK), hex(fid)
    # linear fixed files of the ADF: EF_EPSNSC (no context) and EF_ECC (empty records)
    data, status = term.select(0x6FE4)
    assert status == OK
    length = fcp(data)[0x82][3]
    record = term.raw(apdu("00 B2 01 04") + bytes([length]))
    assert record[:5] == bytes.fromhex("A034800107") and record[-2:] == OK
    # files the card does not have: 6A82, as on a card without them
    assert term.raw(apdu("00 A4 00 04 02 6F3E")) == b"\x6a\x82"
    assert term.raw(apdu("00 A4 00 04 02 7F10")) == b"\x6a\x82"
    assert term.raw(apdu("80 F2 00 0C 00")) == OK  # STATUS, as the terminal polls it


def test_the_network_writes_back_location_and_keys(term: Terminal) -> None:
    usim(term)
    epsloci = bytes.fromhex("0BF644F0018001AB12345678") + bytes.fromhex("44F0011A2B") + b"\x00"
    assert term.select(0x6FE3)[1] == OK
    assert term.raw(apdu("00 D6 00 00 12") + epsloci) == OK
    assert term.read_binary(18) == (epsloci, OK)
    assert term.raw(apdu("00 D6 00 0B 01 99")) == OK  # an offset write
    assert term.read_binary(1, offset=11) == (b"\x99", OK)
    assert term.select(0x6F08)[1] == OK
    keys = b"\x01" + bytes(range(32))
    assert term.raw(apdu("00 D6 00 00 21") + keys) == OK
    assert term.read_binary(33) == (keys, OK)
    # the network's writes last until the card is reloaded, not across a load
    term.card.load(PROFILE)
    usim(term)
    term.select(0x6FE3)
    assert term.read_binary(18)[0][-1] == 0x01


# --- selection ------------------------------------------------------------------------

def test_select_by_path_from_mf_and_from_current_df(term: Terminal) -> None:
    assert term.raw(apdu("00 A4 08 0C 04 7FFF 6F07")) == b"\x6a\x82"  # no application yet
    usim(term)
    assert term.raw(apdu("00 A4 08 0C 04 7FFF 6F07")) == OK
    assert term.read_binary(9)[0][:2] == b"\x08\x49"
    assert term.raw(apdu("00 A4 08 0C 02 2FE2")) == OK
    assert term.raw(apdu("00 A4 09 0C 02 6FAD")) == b"\x6a\x82"  # current DF is the MF now
    assert term.raw(apdu("00 A4 00 0C 02 7FFF")) == OK
    assert term.raw(apdu("00 A4 09 0C 02 6FAD")) == OK
    assert term.raw(apdu("00 A4 08 0C 03 7FFF6F")) == b"\x67\x00"


def test_select_by_fid_reaches_parent_and_mf_from_an_ef(term: Terminal) -> None:
    usim(term)
    assert term.raw(apdu("00 A4 00 0C 02 6F07")) == OK
    assert term.raw(apdu("00 A4 00 0C 02 6FAD")) == OK  # a sibling EF: its DF is current
    assert term.raw(apdu("00 A4 00 0C 02 2FE2")) == b"\x6a\x82"  # an MF file from the ADF
    assert term.raw(apdu("00 A4 00 0C 02 3F00")) == OK
    assert term.raw(apdu("00 A4 00 0C 02 2FE2")) == OK


def test_partial_aid_status_and_termination(term: Terminal) -> None:
    assert term.raw(apdu("00 A4 04 0C 07 A0000000871002")) == OK
    data, status = term.send(apdu("80 F2 00 01 00"))
    assert (data, status) == (b"\x84\x10" + USIM_AID, OK)
    data, status = term.send(apdu("80 F2 00 00 00"))
    assert status == OK and fcp(data)[0x84] == USIM_AID
    assert term.raw(apdu("00 A4 04 0C 04 A0000000")) == b"\x6a\x82"  # shorter than a RID
    assert term.raw(apdu("00 A4 04 4C 10") + USIM_AID) == OK
    assert term.raw(apdu("00 A4 00 0C 02 7FFF")) == b"\x6a\x82"
    assert term.raw(apdu("80 F2 00 01 10")) == b"\x6a\x88"


def test_read_and_update_by_short_file_identifier(term: Terminal) -> None:
    assert term.raw(apdu("00 B2 01 F4 26"))[:2] == b"\x61\x18"  # EF_DIR by SFI 1E from the MF
    usim(term)
    assert term.raw(apdu("00 B0 87 00 09")) == bytes.fromhex("084904010000010010") + OK  # EF_IMSI
    assert term.raw(apdu("00 B0 00 00 09"))[:-2] == bytes.fromhex("084904010000010010")  # now current
    assert term.raw(apdu("00 D6 8B 0A 01 00")) == OK  # EF_LOCI's update status, SFI 0B
    assert term.raw(apdu("00 B0 8B 0A 01")) == b"\x00" + OK
    assert term.raw(apdu("00 B0 9F 00 01")) == b"\x6a\x86"  # SFI 31 is RFU
    assert term.raw(apdu("00 B0 99 00 01")) == b"\x6a\x82"  # SFI 25: no such file
    assert term.raw(apdu("00 B0 E7 00 01")) == b"\x6a\x86"  # b7-b6 must be 0 with an SFI


# --- records ------------------------------------------------------------------------------

def test_record_pointer_next_previous_absolute(term: Terminal) -> None:
    usim(term)
    data, _ = term.select(0x6FB7)  # EF_ECC: 5 records of 4 bytes
    assert fcp(data)[0x82] == bytes.fromhex("4221000405")
    assert term.raw(apdu("00 B2 00 04 04")) == b"\x6a\x83"  # no current record yet
    assert term.raw(apdu("00 B2 00 02 04"))[-2:] == OK  # next: record 1
    term.raw(apdu("00 B2 00 02 04"))  # record 2
    assert term.raw(apdu("00 B2 00 02 05")) == b"\x6c\x04"  # wrong Le: the pointer stays
    assert term.raw(apdu("00 B2 05 04 04"))[-2:] == OK  # absolute: the pointer stays at 2
    assert term.raw(apdu("00 B2 00 03 04"))[-2:] == OK  # previous: record 1
    assert term.raw(apdu("00 B2 00 03 04")) == b"\x6a\x83"  # nothing before record 1
    assert term.raw(apdu("00 B2 06 04 04")) == b"\x6a\x83"
    assert term.raw(apdu("00 B2 01 02 04")) == b"\x6a\x86"  # next needs P1 = 00
    assert term.raw(apdu("00 B2 01 05 04")) == b"\x6a\x86"  # mode 5 is not defined


def test_update_record_where_the_terminal_may_write(term: Terminal) -> None:
    usim(term)
    data, _ = term.select(0x6FE4)  # EF_EPSNSC
    length = fcp(data)[0x82][3]
    context = bytes([0xA0, length - 2]) + bytes(range(length - 2))
    assert term.raw(apdu("00 DC 01 04") + bytes([length]) + context) == OK
    assert term.raw(apdu("00 B2 01 04") + bytes([length])) == context + OK
    assert term.raw(apdu("00 DC 01 04 03 A00100")) == b"\x67\x00"
    term.select(0x6FB7)
    assert term.raw(apdu("00 DC 01 04 04 11F2FF00")) == b"\x69\x82"  # EF_ECC is the issuer's


# --- T=0 ------------------------------------------------------------------------------------

def test_get_response_in_parts_and_after_wrong_le(term: Terminal) -> None:
    first = term.raw(apdu("00 A4 00 04 02 3F00"))
    total = first[1]
    assert term.raw(apdu("00 C0 00 00") + bytes([total + 1])) == bytes([0x6C, total])
    part = term.raw(apdu("00 C0 00 00 10"))
    assert part[:2] == b"\x62" + bytes([total - 2]) and part[-2:] == bytes([0x61, total - 16])
    rest = term.raw(apdu("00 C0 00 00") + bytes([total - 16]))
    assert rest[-2:] == OK and len(rest) - 2 == total - 16
    assert term.raw(apdu("00 C0 00 00 01")) == b"\x69\x85"  # nothing waits any more


def test_another_command_drops_the_waiting_response(term: Terminal) -> None:
    first = term.raw(apdu("00 A4 00 04 02 3F00"))
    assert term.raw(apdu("80 F2 00 0C 00")) == OK
    assert term.raw(apdu("00 C0 00 00") + first[1:]) == b"\x69\x85"


def test_read_binary_le_beyond_the_file(term: Terminal) -> None:
    term.select(0x2FE2)
    assert term.raw(apdu("00 B0 00 00 00")) == b"\x6c\x0a"  # Le 00 = 256, the file has 10
    assert term.raw(apdu("00 B0 00 08 05")) == b"\x6c\x02"
    assert term.raw(apdu("00 B0 00 0A 01")) == b"\x6b\x00"  # offset past the end
    assert term.raw(apdu("00 B0 00 08 02")) == b"\x10\xf9" + OK


# --- every refusal ---------------------------------------------------------------------------

REFUSALS = [
    ("truncated header", "00 A4 00", "6700"),
    ("header without P3", "00 A4 00 04", "6700"),
    ("Lc longer than the data", "00 A4 00 04 02 3F", "6700"),
    ("data on a case 2 command", "00 B0 00 00 01 00", "6700"),
    ("SELECT by FID with 3 bytes", "00 A4 00 04 03 3F0000", "6700"),
    ("GSM class A0", "A0 A4 00 00 02 3F00", "6E00"),
    ("class 20", "20 A4 00 04 02 3F00", "6E00"),
    ("interindustry INS with class 80", "80 A4 00 04 02 3F00", "6E00"),
    ("STATUS with class 00", "00 F2 00 0C 00", "6E00"),
    ("logical channel 1", "01 A4 00 04 02 3F00", "6881"),
    ("logical channel 5", "41 A4 00 04 02 3F00", "6881"),
    ("secure messaging", "04 A4 00 04 02 3F00", "6882"),
    ("MANAGE CHANNEL", "00 70 00 00 01", "6881"),
    ("ENVELOPE: no toolkit", "80 C2 00 00 02 D100", "6D00"),
    ("GET DATA", "00 CA 00 00 00", "6D00"),
    ("SEARCH RECORD", "00 A2 01 04 01 FF", "6D00"),
    ("SELECT P1 01 (ISO child DF)", "00 A4 01 04 02 7F10", "6A86"),
    ("SELECT P2 00", "00 A4 00 00 02 3F00", "6A86"),
    ("termination by FID", "00 A4 00 4C 02 3F00", "6A86"),
    ("no such file", "00 A4 00 04 02 2F99", "6A82"),
    ("READ BINARY with no EF", "00 B0 00 00 01", "6986"),
    ("READ RECORD with no EF", "00 B2 01 04 01", "6986"),
    ("UPDATE BINARY with no EF", "00 D6 00 00 01 00", "6986"),
    ("GET RESPONSE with nothing", "00 C0 00 00 10", "6985"),
    ("GET RESPONSE P1/P2", "00 C0 01 00 10", "6B00"),
    ("STATUS P1 03", "80 F2 03 00 00", "6A86"),
    ("STATUS no data with Le", "80 F2 00 0C 10", "6700"),
    ("VERIFY PIN1: disabled", "00 20 00 01 00", "9000"),
    ("VERIFY PIN1 with a value", "00 20 00 01 08 31323334FFFFFFFF", "6984"),
    ("VERIFY ADM", "00 20 00 0A 08 3132333435363738", "6A88"),
    ("VERIFY wrong block length", "00 20 00 01 04 31323334", "6700"),
    ("CHANGE PIN", "00 24 00 01 10 31323334FFFFFFFF35363738FFFFFFFF", "6984"),
    ("AUTHENTICATE before the USIM is selected", "00 88 00 81 22 10" + "00" * 16 + "10" + "00" * 16, "6985"),
]


@pytest.mark.parametrize(("why", "command", "status"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals(term: Terminal, why: str, command: str, status: str) -> None:
    assert term.raw(apdu(command)).hex().upper() == status


FILE_REFUSALS = [
    ("READ RECORD on a transparent EF", 0x6F07, "00 B2 01 04 09", "6981"),
    ("READ BINARY on a linear fixed EF", 0x6FB7, "00 B0 00 00 04", "6981"),
    ("UPDATE BINARY on EF_IMSI", 0x6F07, "00 D6 00 00 01 00", "6982"),
    ("UPDATE BINARY past the end", 0x6F7E, "00 D6 00 0A 02 0000", "6700"),
    ("UPDATE BINARY with no data", 0x6F7E, "00 D6 00 00 00", "6700"),
    ("READ RECORD past the last", 0x6FB7, "00 B2 06 04 04", "6A83"),
    ("READ RECORD wrong Le", 0x6FB7, "00 B2 01 04 00", "6C04"),
    ("AUTHENTICATE GSM context", 0x6F07, "00 88 00 80 11 10" + "00" * 16, "9864"),
    ("AUTHENTICATE no specific reference", 0x6F07, "00 88 00 01 22 10" + "00" * 16 + "10" + "00" * 16, "6A86"),
    ("AUTHENTICATE P1", 0x6F07, "00 88 01 81 22 10" + "00" * 16 + "10" + "00" * 16, "6A86"),
    ("AUTHENTICATE short", 0x6F07, "00 88 00 81 21 10" + "00" * 16 + "10" + "00" * 15, "6700"),
    ("AUTHENTICATE bad RAND length", 0x6F07, "00 88 00 81 22 0F" + "00" * 17 + "10" + "00" * 15, "6A80"),
    ("AUTHENTICATE bad AUTN length", 0x6F07, "00 88 00 81 22 10" + "00" * 16 + "11" + "00" * 16, "6A80"),
    ("AUTHENTICATE bad AUTN", 0x6F07, "00 88 00 81 22 10" + "00" * 16 + "10" + "00" * 16, "9862"),
]


@pytest.mark.parametrize(("why", "fid", "command", "status"), FILE_REFUSALS, ids=[r[0] for r in FILE_REFUSALS])
def test_refusals_inside_the_usim(term: Terminal, why: str, fid: int, command: str, status: str) -> None:
    usim(term)
    assert term.select(fid)[1] == OK
    assert term.raw(apdu(command)).hex().upper() == status


def test_too_long_for_t0() -> None:
    term = Terminal(loaded_card())
    assert term.raw(apdu("00 D6 00 00 FF") + bytes(256)) == b"\x67\x00"
    assert term.raw(b"\x00" * 1000) == b"\x67\x00"
    assert term.raw(b"") == b"\x67\x00"


def test_with_no_sim_every_command_is_6f00_until_loaded() -> None:
    card = Uicc()
    term = Terminal(card)
    for command in ("00 A4 00 04 02 3F00", "00 B0 00 00 01", "80 F2 00 0C 00", "00 C0 00 00 10",
                    "00 88 00 81 22 10" + "00" * 16 + "10" + "00" * 16):
        assert term.raw(apdu(command)) == b"\x6f\x00"
    assert card.sqn_state is None and not card.loaded
    card.load(PROFILE)
    assert term.raw(apdu("00 A4 00 0C 02 3F00")) == OK
    card.unload()
    assert term.raw(apdu("00 A4 00 0C 02 3F00")) == b"\x6f\x00"


def test_reset_returns_to_the_mf() -> None:
    term = Terminal(loaded_card())
    usim(term)
    term.select(0x6F07)
    pending = term.raw(apdu("00 A4 00 04 02 6FAD"))
    term.card.reset()
    assert term.raw(apdu("00 C0 00 00") + pending[1:]) == b"\x69\x85"
    assert term.raw(apdu("00 B0 00 00 01")) == b"\x69\x86"
    assert term.raw(apdu("00 A4 00 0C 02 7FFF")) == b"\x6a\x82"


def test_sqn_state_is_loaded_and_handed_back() -> None:
    """The platform's stored state goes in with the profile; what comes out after an
    accepted AUTHENTICATE is the state to store next."""
    stored = SqnState((40,) * 32)
    card = Uicc()
    card.load(PROFILE, sqn=stored)
    term = Terminal(card)
    usim(term)
    m = Milenage(KI, OPC)
    rand = bytes(range(16, 32))
    sqn = ((41 << 5) | 9).to_bytes(6, "big")
    out = m.f2345(rand)
    autn = bytes(a ^ b for a, b in zip(sqn, out.ak, strict=True)) + b"\x80\x00" + m.f1(rand, sqn, b"\x80\x00")
    assert term.send(apdu("00 88 00 81 22 10") + rand + b"\x10" + autn)[1] == OK
    assert card.sqn_state is not None and card.sqn_state.seq[9] == 41
    assert card.sqn_state == stored.accept(int.from_bytes(sqn, "big"))


# --- reset ----------------------------------------------------------------------------------

def parse_atr(atr: bytes) -> tuple[dict[str, int], bytes]:
    """ISO/IEC 7816-3 8.2 read generically: interface bytes by name, and the historical bytes."""
    assert atr[0] == 0x3B
    y, k = atr[1] >> 4, atr[1] & 0x0F
    i, n, found, protocols = 2, 1, {}, []
    while True:
        for bit, name in ((1, "TA"), (2, "TB"), (4, "TC")):
            if y & bit:
                found[f"{name}{n}"] = atr[i]
                i += 1
        if not y & 8:
            break
        td = atr[i]
        found[f"TD{n}"] = td
        protocols.append(td & 0x0F)
        i += 1
        y, n = td >> 4, n + 1
    historical = atr[i:i + k]
    assert len(atr) == i + k + 1  # TCK
    found["protocols"] = sum(1 << p for p in protocols)
    return found, historical


def test_atr_is_a_t0_uicc_with_a_valid_check_byte() -> None:
    card = Uicc()
    assert card.reset() == b""  # an empty slot says nothing
    card.load(PROFILE)
    atr = card.reset()
    found, historical = parse_atr(atr)
    xor = 0
    for byte in atr[1:]:
        xor ^= byte
    assert xor == 0  # TCK
    assert found["protocols"] == (1 << 0) | (1 << 15)  # T=0, and T=15's global bytes
    assert found["TA3"] & 0x07 == 0x07  # supply classes A, B and C
    assert historical[0] == 0x80 and historical[-3:] == bytes.fromhex("F62100")
