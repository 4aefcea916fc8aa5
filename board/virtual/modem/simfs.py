"""The SIM as files: +CRSM/+CSIM over the active vSIM profile's elementary files, and its PINs.

A modem manager does not take the SIM's identity from vendor commands alone: it reads
the files. ModemManager reads EF_ICCID with ``AT+CRSM=176,12258,0,0,10`` (and shows no
ICCID when that fails), the service provider name from EF_SPN, the MNC length from EF_AD,
the MVNO group ids from GID1/GID2, and the PIN retry counters with ``AT+CSIM`` VERIFY
APDUs that carry no PIN. This module builds those files from the profile in the active
vSIM slot (so a slot switch changes every file at once, as swapping a card would) and
answers with the status words a UICC gives (ETSI TS 102 221 clause 10.2).

File contents follow 3GPP TS 31.102 (USIM) and TS 102 221 (EF_ICCID); PIN behaviour
follows 27.007 +CPIN/+CLCK. The PIN counters belong to the SIM (keyed by ICCID), so they
survive a reboot and a slot switch and back, as a real card's do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.sim import SimProfile
from board.virtual.modem.ident import CLCK_FACILITIES
from board.virtual.modem.model import Handler, Result, split_args

if TYPE_CHECKING:
    from board.virtual.modem.commands import CommandSet

LOGGER = logging.getLogger(__name__)

# --- file ids (decimal in +CRSM, as 27.007 writes them) -------------------------------
EF_ICCID = 0x2FE2
EF_IMSI = 0x6F07
EF_SPN = 0x6F46
EF_AD = 0x6FAD
EF_GID1 = 0x6F3E
EF_GID2 = 0x6F3F
EF_LOCI = 0x6F7E
EF_ECC = 0x6FB7

# --- +CRSM commands (27.007 8.18) ----------------------------------------------------
READ_BINARY = 176
READ_RECORD = 178
GET_RESPONSE = 192
STATUS = 242

# --- status words (TS 102 221 10.2) ---------------------------------------------------
SW_OK = (0x90, 0x00)
SW_FILE_NOT_FOUND = (0x6A, 0x82)
SW_WRONG_OFFSET = (0x6B, 0x00)
SW_INS_NOT_SUPPORTED = (0x6D, 0x00)
SW_CLA_NOT_SUPPORTED = (0x6E, 0x00)
SW_WRONG_P1P2 = (0x6A, 0x86)
SW_WRONG_LENGTH = 0x6C
"""6C XX: wrong Le, XX is the length that is available."""
SW_RETRIES = 0x63
"""63 CX: verification failed or only asked, X tries left."""
SW_BLOCKED = (0x69, 0x83)

PIN_TRIES = 3
PUK_TRIES = 10
"""Tries a UICC allows (TS 102 221 9.5.1 leaves them to the card; 3 and 10 are universal)."""
DEFAULT_PIN = "1234"
"""The PIN of every virtual SIM (a test card's usual PIN); the lock is off at delivery."""

SPN_LENGTH = 17
"""EF_SPN: display condition byte + 16 bytes of name (TS 31.102 4.2.12)."""
GID1 = bytes.fromhex("0A") + b"\xff" * 7
GID2 = b"\xff" * 8
"""Group identifiers (TS 31.102 4.2.10/11): GID1 0x0A marks the lab's cloud-SIM MVNO,
GID2 unused; 8 bytes as many cards ship them."""
EMERGENCY_CODES = ("110", "118", "119")
"""EF_ECC: Japan's police, coast guard, fire/ambulance numbers (5 slots of 3 bytes, the
transparent form ModemManager reads with +CRSM)."""
ECC_SLOTS = 5
LAC = 0x1A2B
"""Location area code in EF_LOCI: the TAC the virtual cell reports in +CEREG."""


def bcd_swapped(digits: str, length: int) -> bytes:
    """Digits -> semi-octets, low nibble first, F-padded to ``length`` bytes (EF_ICCID)."""
    padded = digits.upper().ljust(length * 2, "F")
    return bytes(int(padded[i + 1] + padded[i], 16) for i in range(0, length * 2, 2))


def plmn_bcd(plmn: str) -> bytes:
    """MCC+MNC -> the 3-byte PLMN encoding of TS 24.008 10.5.1.13 (MNC digit 3 = F if two)."""
    mcc, mnc = plmn[:3], plmn[3:]
    mnc3 = mnc[2] if len(mnc) == 3 else "F"
    return bytes(int(a + b, 16) for a, b in ((mcc[1], mcc[0]), (mnc3, mcc[2]), (mnc[1], mnc[0])))


def gsm7_unpacked(text: str) -> bytes:
    """SPN text in the GSM default alphabet, one character per byte (bit 8 zero); the
    ASCII letters, digits and space this project's names use map to themselves."""
    return bytes(ord(c) if c.isascii() and (c.isalnum() or c in " .-") else 0x20 for c in text)


def build_files(sim: SimProfile, spn: str, attached: bool) -> dict[int, bytes]:
    """The elementary files of ``sim`` (file id -> contents)."""
    imsi = sim.imsi
    imsi_digits = ("9" if len(imsi) % 2 else "1") + imsi  # parity nibble + digits
    name = gsm7_unpacked(spn)[: SPN_LENGTH - 1]
    return {
        EF_ICCID: bcd_swapped(sim.iccid, 10),
        EF_IMSI: bytes([(len(imsi_digits) + 1) // 2]) + bcd_swapped(imsi_digits, 8),
        EF_SPN: bytes([0x01]) + name.ljust(SPN_LENGTH - 1, b"\xff"),
        EF_AD: bytes([0x00, 0x00, 0x00, len(sim.plmn) - 3]),
        EF_GID1: GID1,
        EF_GID2: GID2,
        EF_ECC: b"".join(bcd_swapped(code, 3) for code in EMERGENCY_CODES).ljust(3 * ECC_SLOTS, b"\xff"),
        # TMSI (none), LAI = PLMN + LAC, RFU, update status 0 updated / 1 not updated
        EF_LOCI: b"\xff" * 4 + plmn_bcd(sim.plmn) + LAC.to_bytes(2, "big") + b"\xff" + bytes([0 if attached else 1]),
    }


def fcp(fid: int, size: int) -> bytes:
    """A minimal FCP template (TS 102 221 11.1.1.3) for GET RESPONSE on a transparent EF."""
    body = bytes([0x82, 0x02, 0x41, 0x21, 0x83, 0x02]) + fid.to_bytes(2, "big")
    body += bytes([0x80, 0x02]) + size.to_bytes(2, "big")
    return bytes([0x62, len(body)]) + body


@dataclass
class PinState:
    """A card's PIN1/PIN2 counters and the PIN1 lock (27.007 "SC" facility)."""

    pin1: int = PIN_TRIES
    pin2: int = PIN_TRIES
    puk1: int = PUK_TRIES
    puk2: int = PUK_TRIES
    locked: bool = False
    verified: bool = False
    pin: str = DEFAULT_PIN


class SimFiles:
    """+CRSM, +CSIM, +QCCID/+CCID/+ICCID, +CPIN, +CLCK and the PIN counters."""

    def __init__(self, cs: CommandSet):
        self.cs = cs
        self._pins: dict[str, PinState] = {}
        self._selected = EF_ICCID
        """The EF a +CSIM SELECT chose (for a following READ BINARY)."""

    def pins(self) -> PinState | None:
        sim = self.cs.sim
        return None if sim is None else self._pins.setdefault(sim.iccid, PinState())

    def power_on(self) -> None:
        """A cold start asks for the PIN again when the lock is on."""
        for state in self._pins.values():
            state.verified = False

    @property
    def ready(self) -> bool:
        """The SIM may be used: present, and unlocked if its PIN lock is on."""
        state = self.pins()
        return state is not None and (not state.locked or state.verified)

    def cpin_status(self) -> str:
        state = self.pins()
        if state is None:
            return "NOT INSERTED"
        if state.pin1 == 0:
            return "SIM PUK"
        return "READY" if self.ready else "SIM PIN"

    def handlers(self) -> dict[str, Handler]:
        return {
            "+CRSM": self._crsm, "+CSIM": self._csim, "+QCCID": self._qccid, "+CCID": self._ccid,
            "+ICCID": self._iccid, "+CPIN": self._cpin, "+CLCK": self._clck, "+QPINC": self._qpinc,
        }

    def files(self) -> dict[int, bytes]:
        sim = self.cs.sim
        if sim is None:
            return {}
        return build_files(sim, self.cs.m.config.operator_name, self.cs.attached)

    # -- ICCID -----------------------------------------------------------------------
    def _iccid_answer(self, prefix: str) -> Result:
        sim = self.cs.sim
        if sim is None:
            return self.cs._err(10)
        return self.cs._ok([f"{prefix}: {sim.iccid}"])

    def _ccid(self, kind: str, args: str) -> Result:
        return self._iccid_answer("+CCID")

    def _iccid(self, kind: str, args: str) -> Result:
        return self._iccid_answer("+ICCID")

    def _qccid(self, kind: str, args: str) -> Result:
        sim = self.cs.sim
        if sim is None:
            return self.cs._err(10)
        return self.cs._ok([f"+QCCID: {sim.iccid.ljust(20, 'F')}"])  # the EC25 pads with F

    # -- +CRSM -----------------------------------------------------------------------
    def _crsm(self, kind: str, args: str) -> Result:
        if kind != "set":
            return self.cs._err(50)
        if self.cs.sim is None:
            return self.cs._err(10)
        if not self.ready:
            return self.cs._err(11)  # SIM PIN required

        parts = split_args(args)
        command, fid = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        p1, p2, p3 = (int(parts[i]) if len(parts) > i and parts[i] else 0 for i in (2, 3, 4))
        sw, data = self.access(command, fid, (p1 << 8) | p2, p3)
        tail = f',"{data.hex().upper()}"' if data else ""
        return self.cs._ok([f"+CRSM: {sw[0]},{sw[1]}{tail}"])

    def access(self, command: int, fid: int, offset: int, length: int) -> tuple[tuple[int, int], bytes]:
        """One restricted-SIM-access command -> (status word, response data)."""
        files = self.files()
        if command == STATUS:
            return SW_OK, b""
        content = files.get(fid)
        if content is None:
            return SW_FILE_NOT_FOUND, b""
        if command == GET_RESPONSE:
            return SW_OK, fcp(fid, len(content))
        if command != READ_BINARY:
            return SW_INS_NOT_SUPPORTED, b""
        if offset >= len(content):
            return SW_WRONG_OFFSET, b""
        available = len(content) - offset
        if length > available:
            return (SW_WRONG_LENGTH, available), b""
        return SW_OK, content[offset : offset + (length or available)]

    # -- +CSIM (generic APDUs) -------------------------------------------------------
    def _csim(self, kind: str, args: str) -> Result:
        if kind != "set":
            return self.cs._err(50)
        if self.cs.sim is None:
            return self.cs._err(10)

        parts = split_args(args)
        length, apdu_hex = int(parts[0]), parts[1]
        if length != len(apdu_hex) or length % 2 or length < 8:
            return self.cs._err(50)
        answer = self.apdu(bytes.fromhex(apdu_hex)).hex().upper()
        return self.cs._ok([f'+CSIM: {len(answer)},"{answer}"'])

    def apdu(self, apdu: bytes) -> bytes:
        """A command APDU (TS 102 221 10.1) -> response data + SW1 SW2."""
        cla, ins, p1, p2 = apdu[:4]
        if cla not in (0x00, 0x80, 0xA0):
            return bytes(SW_CLA_NOT_SUPPORTED)
        state = self.pins()
        assert state is not None
        if ins in (0x20, 0x2C):  # VERIFY PIN / UNBLOCK PIN, here only the "how many left" form
            if len(apdu) > 5 and apdu[4]:
                return bytes(SW_INS_NOT_SUPPORTED)  # PINs are entered with +CPIN
            counter = {(0x20, 0x01): state.pin1, (0x20, 0x81): state.pin2,
                       (0x2C, 0x01): state.puk1, (0x2C, 0x81): state.puk2}.get((ins, p2))
            if counter is None:
                return bytes(SW_WRONG_P1P2)
            return bytes(SW_BLOCKED) if counter == 0 else bytes((SW_RETRIES, 0xC0 | counter))
        if ins == 0xA4:  # SELECT by file id: the last two bytes of the path
            self._selected = int.from_bytes(apdu[-2:], "big")
            if self._selected not in self.files() and self._selected not in (0x3F00, 0x7FFF):
                return bytes(SW_FILE_NOT_FOUND)
            return bytes(SW_OK)
        if ins == 0xB0:  # READ BINARY of the selected EF
            le = apdu[4] if len(apdu) > 4 else 0
            sw, data = self.access(READ_BINARY, self._selected, (p1 << 8) | p2, le)
            return data + bytes(sw)
        return bytes(SW_INS_NOT_SUPPORTED)

    # -- PIN -------------------------------------------------------------------------
    def _cpin(self, kind: str, args: str) -> Result:
        state = self.pins()
        if state is None:
            return self.cs._err(10)
        if kind == "query":
            return self.cs._ok([f"+CPIN: {self.cpin_status()}"])
        if kind != "set":
            return self.cs._err(50)

        parts = split_args(args)
        if self.ready:
            return self.cs._err(3)  # nothing to enter
        if state.pin1 == 0:  # PUK and new PIN
            if len(parts) < 2:
                return self.cs._err(12)
            return self._try_puk(state, parts[0], parts[1])
        if not self._check_pin(state, parts[0]):
            return self.cs._err(16 if state.pin1 else 12)
        state.verified = True
        self.cs.m.urc("+CPIN: READY")
        self.cs.reevaluate()
        return self.cs._ok()

    def _try_puk(self, state: PinState, puk: str, new_pin: str) -> Result:
        if state.puk1 == 0:
            return self.cs._err(13)  # the card is dead: SIM failure
        if puk != self.puk():
            state.puk1 -= 1
            return self.cs._err(16)
        state.pin, state.pin1, state.puk1, state.verified = new_pin, PIN_TRIES, PUK_TRIES, True
        self.cs.reevaluate()
        return self.cs._ok()

    def puk(self) -> str:
        """The PUK: the last eight digits of the ICCID (the lab's convention, documented)."""
        sim = self.cs.sim
        return sim.iccid[-8:] if sim else ""

    @staticmethod
    def _check_pin(state: PinState, pin: str) -> bool:
        if state.pin1 == 0:
            return False
        if pin != state.pin:
            state.pin1 -= 1
            return False
        state.pin1 = PIN_TRIES
        return True

    def _clck(self, kind: str, args: str) -> Result:
        if kind != "set":
            return self.cs._err(50)

        parts = split_args(args)
        facility, mode = parts[0].upper(), int(parts[1])
        if facility not in CLCK_FACILITIES or mode not in (0, 1, 2):
            return self.cs._err(50)
        state = self.pins()
        if state is None:
            return self.cs._err(10)
        if facility != "SC":
            if mode == 2:
                return self.cs._ok(["+CLCK: 0"])  # no barring, no personalisation, no FDN
            return self.cs._err(3)
        if mode == 2:
            return self.cs._ok([f"+CLCK: {int(state.locked)}"])
        if len(parts) < 3 or not self._check_pin(state, parts[2]):
            return self.cs._err(16 if state.pin1 else 12)
        state.locked, state.verified = mode == 1, True
        return self.cs._ok()

    def _qpinc(self, kind: str, args: str) -> Result:
        """Quectel's +QPINC: PIN/PUK tries left ("SC" PIN1, "P2" PIN2)."""
        state = self.pins()
        if state is None:
            return self.cs._err(10)
        if kind == "test":
            return self.cs._ok(['+QPINC: ("SC","P2")'])
        sc = f'+QPINC: "SC",{state.pin1},{state.puk1}'
        p2 = f'+QPINC: "P2",{state.pin2},{state.puk2}'
        if kind == "set":
            which = args.strip().strip('"').upper()
            return self.cs._ok([sc] if which == "SC" else [p2] if which == "P2" else []) if which in ("SC", "P2") else self.cs._err(50)
        return self.cs._ok([sc, p2])
