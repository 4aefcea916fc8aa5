"""The virtual modem's remote-SIM personality: a baseband with no card of its own.

With ``ModemConfig.remote_sim`` the modem asks the host for its SIM in Fibocom's remote
SIM framing (docs/remote-sim.md): ``+SIMRESET`` for the ATR, then one ``+SIMDATA:
"<hex>"`` per T=0 transmission, each answered by the host with ``AT+SIMDATA="<hex>"``.
``AT+GTSET="RSIM",1|0`` inserts or removes the remote card (kept across reboots, as a
Fibocom NV setting is).

What it reads, and when, is what a 3GPP terminal does after a card reset (ETSI TS 102 221
clause 14 and TS 31.102 5.1.1): the MF, EF_ICCID, EF_DIR for the USIM's AID, the ADF by
AID, TERMINAL PROFILE, the PIN's status, then EF_IMSI, EF_AD, EF_UST, EF_EST, EF_HPPLMN,
EF_ACC, EF_FPLMN, EF_LOCI, EF_PSLOCI, EF_EPSLOCI, EF_KEYSPS and EF_SPN. The terminal
speaks T=0 as a real one: a case-3/4 header first, its data only after the ACK byte; GET
RESPONSE after 61xx; the same command again with P3 = xx after 6Cxx (it reads files with
Le 00 on purpose, so the card tells it the length, as many basebands do).

Registration: the carrier's AuC (``auc.py``, the lab carrier's own keys) gives a vector,
the terminal sends AUTHENTICATE with RAND and AUTN, and: RES -> the AuC checks it
(mismatch: EMM #3); AUTS -> the AuC resynchronises and one more vector is tried (a second
AUTS: EMM #21, synch failure); 9862 -> MAC failure, the network's AUTHENTICATION REJECT
(EMM #20 reported). After an accepted attach the terminal writes EF_EPSLOCI, as the
network's GUTI and TAI reach the card on a live network.

A card that does not answer within ``ModemConfig.rsim_deadline_s`` of wall time (the
T=0 work waiting time, unscaled: the agent's answer time is real, not modelled) is mute:
the terminal resets it, up to ``MUTE_RESETS`` times, then reports it absent.

Nothing here holds a key: the ``SimProfile`` the modem reports from the card has zero
bytes for Ki and OPc, which nothing reads (the attach goes through AUTHENTICATE).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.sim import SimProfile
from board.virtual.modem.auc import Auc
from board.virtual.modem.model import Result, split_args
from board.virtual.modem.simfs import plmn_bcd

if TYPE_CHECKING:
    from board.virtual.modem.commands import CommandSet

LOGGER = logging.getLogger(__name__)

NO_KEY = bytes(16)
"""What the module reports for Ki and OPc: it has none (the card behind the host does)."""
MUTE_RESETS = 3
"""Card resets tried on a mute or garbled card before the module reports it absent
(basebands retry activation a few times: ISO/IEC 7816-3 leaves the count to them)."""
URC_BEFORE_OK = 0.5
"""Chance that the next ``+SIMDATA:`` goes out before the OK of the host's ``AT+SIMDATA``
(real modules do both: a SIM-bank gateway's reader skips the late OK)."""
USIM_AID_PREFIX = bytes.fromhex("A0000000871002")
"""RID of 3GPP + the USIM application code (TS 101 220 annex E)."""
TERMINAL_PROFILE = bytes.fromhex("FFFFFFFF7F9F00DFFF00001FE28A0D0000000000000000")
"""A terminal that supports no more than reading, authentication and the basics (the
contents matter only to a card with a toolkit; this one keeps them)."""
EPS_UPDATED = 0x00
"""EF_EPSLOCI status: updated (TS 31.102 4.2.91)."""
MME_GROUP, MME_CODE, TAC = 0x8001, 0x01, 0x1A2B
"""The lab cell's MME and tracking area (TAC as +CEREG reports it)."""
MAX_AUTS_RESYNCS = 1
"""Resynchronisations tried in one attach: TS 24.301 5.4.2.6 retries once, then fails."""
EMM_ILLEGAL_UE, EMM_MAC_FAILURE, EMM_SYNCH_FAILURE = 3, 20, 21
"""TS 24.301 annex A causes reported in +CEREG when the attach fails."""

ApduAnswer = tuple[bytes, bytes]
"""(response data, SW1 SW2) of one complete command."""
Script = Generator[bytes, ApduAnswer, None]

# T=0 instructions the terminal uses (TS 102 221 10.1.2) and whether each sends data.
SELECT, READ_BINARY, READ_RECORD, UPDATE_BINARY, GET_RESPONSE = 0xA4, 0xB0, 0xB2, 0xD6, 0xC0
AUTHENTICATE, VERIFY, TERMINAL_PROFILE_INS, STATUS = 0x88, 0x20, 0x10, 0xF2
SENDS_DATA = frozenset({SELECT, UPDATE_BINARY, AUTHENTICATE, VERIFY, TERMINAL_PROFILE_INS})
NAMES = {SELECT: "SELECT", READ_BINARY: "READ BINARY", READ_RECORD: "READ RECORD", UPDATE_BINARY: "UPDATE BINARY",
         GET_RESPONSE: "GET RESPONSE", AUTHENTICATE: "AUTHENTICATE", VERIFY: "VERIFY", STATUS: "STATUS",
         TERMINAL_PROFILE_INS: "TERMINAL PROFILE"}
READ_AT_POWER_UP = ((0x6F07, "IMSI"), (0x6FAD, "AD"), (0x6F38, "UST"), (0x6F56, "EST"), (0x6F31, "HPPLMN"),
                    (0x6F78, "ACC"), (0x6F7B, "FPLMN"), (0x6F7E, "LOCI"), (0x6F73, "PSLOCI"),
                    (0x6FE3, "EPSLOCI"), (0x6F09, "KEYSPS"), (0x6F46, "SPN"))
"""The USIM's files in the order the terminal reads them (TS 31.102 5.1.1)."""
EF_EPSLOCI = 0x6FE3


class CardError(Exception):
    """The card's answer does not fit T=0 or the command: the session is reset."""


@dataclass
class _Exchange:
    """One command's T=0 transmissions: the header, maybe its data, the answers."""

    apdu: bytes
    phase: str = "header"

    def first(self) -> bytes:
        return self.apdu[:5] if self.apdu[1] in SENDS_DATA and len(self.apdu) > 5 else self.apdu

    def answer(self, got: bytes) -> bytes | ApduAnswer:
        """The next transmission (bytes) or the command's result (data, SW)."""
        ins = self.apdu[1]
        if self.phase == "header" and self.apdu[1] in SENDS_DATA and len(self.apdu) > 5:
            if got == bytes([ins]):
                self.phase = "data"
                return self.apdu[5:]
            if len(got) == 2:
                return b"", got
            raise CardError("a case-3 header answered with neither ACK nor SW1 SW2")
        if len(got) == 2:
            return b"", got
        if self.phase == "header" and len(got) > 3 and got[0] == ins:
            return got[1:-2], got[-2:]
        raise CardError(f"{len(got)} bytes do not answer {NAMES.get(ins, hex(ins))}")


def swapped_digits(raw: bytes) -> str:
    """Semi-octets low nibble first, up to the first F (ICCID, IMSI after its first byte)."""
    out = []
    for byte in raw:
        for nibble in (byte & 0x0F, byte >> 4):
            if nibble == 0x0F:
                return "".join(out)
            out.append(str(nibble))
    return "".join(out)


class RemoteSimBaseband:
    """The module's half of the remote SIM (runs on the modem thread)."""

    def __init__(self, cs: CommandSet) -> None:
        self.cs = cs
        self.enabled = False
        """AT+GTSET="RSIM": kept across reboots (NV)."""
        self.sim: SimProfile | None = None
        """What the module read from the card; None until the power-up reads are done."""
        self.read_log: list[tuple[str, str]] = []
        """(command, what) of every command sent to the card this power-up, for tests."""
        self.sessions = 0
        self.mute_resets = 0
        self._session = 0
        self._attempts = 0
        self._waiting_atr = False
        self._awaiting: int | None = None
        """Token of the transmission whose answer the module waits for."""
        self._tokens = 0
        self._script: Script | None = None
        self._exchange: _Exchange | None = None
        self._queue: deque[Callable[[], Script]] = deque()
        self._selected_fid = ""

    # -- power and presence --------------------------------------------------------------
    def power_on(self) -> None:
        """Module power-up: the card is read again if the remote SIM is enabled."""
        self._attempts = 0
        self.end_session()
        if self.enabled:
            self.start_session()

    def start_session(self) -> None:
        """Reset the card: ``+SIMRESET``, then wait for the ATR."""
        self.end_session()
        self._session += 1
        self.sessions += 1
        self.read_log = []
        self._waiting_atr = True
        self._transmit_urc("+SIMRESET")

    def end_session(self) -> None:
        self.sim = None
        self._script = None
        self._exchange = None
        self._queue.clear()
        self._waiting_atr = False
        self._awaiting = None

    def handlers(self) -> dict[str, Callable[[str, str], Result]]:
        return {"+SIMDATA": self._simdata, "+GTSET": self._gtset}

    def _gtset(self, kind: str, args: str) -> Result:
        if kind == "query":
            return self.cs._ok([f'+GTSET: "RSIM",{int(self.enabled)}'])
        parts = split_args(args) if kind == "set" else []
        if len(parts) != 2 or parts[0].upper() != "RSIM" or parts[1] not in ("0", "1"):
            return self.cs._err(50)
        on = parts[1] == "1"
        if on and not self.enabled:
            self.enabled = True
            self._attempts = 0
            self.cs.m.schedule_after_answer(0.0, self.start_session)
        elif not on and self.enabled:
            self.enabled = False
            self.end_session()
            self.cs.m.schedule_after_answer(0.0, self._card_gone)
        return self.cs._ok()

    def _card_gone(self) -> None:
        self.cs.m.urc("+CPIN: NOT INSERTED")
        self.cs.reevaluate()

    # -- the host's answers ----------------------------------------------------------------
    def _simdata(self, kind: str, args: str) -> Result:
        """``AT+SIMDATA="<hex>"``: the card's answer to the transmission in flight."""
        parts = split_args(args) if kind == "set" else []
        if len(parts) != 1 or len(parts[0]) % 2 or not parts[0]:
            return self.cs._err(50)
        try:
            answer = bytes.fromhex(parts[0])
        except ValueError:
            return self.cs._err(50)
        if self._awaiting is None:
            return self.cs._err(3)  # operation not allowed: nothing was asked
        self._awaiting = None
        if self.cs.m.rng.random() < URC_BEFORE_OK:
            self._on_answer(answer)  # the next +SIMDATA: goes out before this OK
        else:
            self.cs.m.schedule_after_answer(0.0, lambda: self._on_answer(answer))
        return self.cs._ok()

    def _on_answer(self, answer: bytes) -> None:
        try:
            if self._waiting_atr:
                self._on_atr(answer)
            else:
                self._on_tpdu_answer(answer)
        except CardError as exc:
            LOGGER.info("virtual modem: remote card session reset: %s", exc)
            self._fail()

    def _on_atr(self, atr: bytes) -> None:
        if not atr or atr[0] not in (0x3B, 0x3F):
            raise CardError("not an ATR")
        self._waiting_atr = False
        self._run(self._power_up)

    def _on_tpdu_answer(self, answer: bytes) -> None:
        if self._exchange is None:
            raise CardError("an answer with no command in flight")
        step = self._exchange.answer(answer)
        if isinstance(step, bytes):
            self._send(step)
            return
        self._exchange = None
        self._step(step)

    # -- scripts: generators of APDUs -------------------------------------------------------
    def _run(self, make: Callable[[], Script]) -> None:
        if self._script is not None or self._waiting_atr:
            self._queue.append(make)
            return
        self._script = make()
        self._step(None)

    def _step(self, result: ApduAnswer | None) -> None:
        assert self._script is not None
        try:
            apdu = self._script.send(result) if result is not None else next(self._script)
        except StopIteration:
            self._script = None
            if self._queue:
                self._run(self._queue.popleft())
            return
        self.read_log.append((NAMES.get(apdu[1], f"{apdu[1]:02X}"), self._selected_fid))
        self._exchange = _Exchange(apdu)
        self._send(self._exchange.first())

    def _send(self, payload: bytes) -> None:
        self._transmit_urc(f'+SIMDATA: "{payload.hex().upper()}"')

    def _transmit_urc(self, line: str) -> None:
        self._tokens += 1
        token = self._awaiting = self._tokens
        self.cs.m.urc(line)
        scale = self.cs.m.config.time_scale or 1.0
        self.cs.m.schedule(self.cs.m.config.rsim_deadline_s / scale, lambda: self._deadline(token))

    def _deadline(self, token: int) -> None:
        if self._awaiting == token:
            self.mute_resets += 1
            LOGGER.info("virtual modem: the remote card did not answer within %.1f s",
                        self.cs.m.config.rsim_deadline_s)
            self._fail()

    def _fail(self) -> None:
        self._attempts += 1
        if self._attempts < MUTE_RESETS and self.enabled:
            self.start_session()
            self.cs.reevaluate()  # the card is being read again: no SIM until it is
            return
        self.end_session()
        self._card_gone()

    # -- T=0 procedure helpers ------------------------------------------------------------
    def _apdu(self, apdu: bytes) -> Generator[bytes, ApduAnswer, ApduAnswer]:
        """One command with T=0's follow-ups: GET RESPONSE after 61xx, Le = xx after 6Cxx."""
        data, sw = yield apdu
        if sw[0] == 0x6C:
            data, sw = yield apdu[:4] + sw[1:2]
        if sw[0] == 0x61:
            data, sw = yield bytes([0x00, GET_RESPONSE, 0x00, 0x00, sw[1]])
        return data, sw

    def _select(self, fid: int, fcp: bool = True) -> Generator[bytes, ApduAnswer, ApduAnswer]:
        self._selected_fid = f"{fid:04X}"
        p2 = 0x04 if fcp else 0x0C
        return (yield from self._apdu(bytes([0x00, SELECT, 0x00, p2, 0x02]) + fid.to_bytes(2, "big")))

    def _read(self, fid: int) -> Generator[bytes, ApduAnswer, bytes | None]:
        _, sw = yield from self._select(fid, fcp=False)
        if sw != b"\x90\x00":
            return None
        data, sw = yield from self._apdu(bytes([0x00, READ_BINARY, 0x00, 0x00, 0x00]))
        return data if sw == b"\x90\x00" else None

    def _power_up(self) -> Script:
        _, sw = yield from self._select(0x3F00)
        if sw != b"\x90\x00":
            raise CardError("no MF")
        iccid = yield from self._read(0x2FE2)
        _, sw = yield from self._select(0x2F00, fcp=False)
        record, sw = yield from self._apdu(bytes([0x00, READ_RECORD, 0x01, 0x04, 0x00]))
        aid = _usim_aid(record) if sw == b"\x90\x00" else None
        if aid is None or iccid is None:
            raise CardError("no USIM application on the card")
        self._selected_fid = "ADF"
        _, sw = yield from self._apdu(bytes([0x00, SELECT, 0x04, 0x04, len(aid)]) + aid)
        if sw != b"\x90\x00":
            raise CardError("the USIM application cannot be selected")
        yield from self._apdu(bytes([0x80, TERMINAL_PROFILE_INS, 0x00, 0x00, len(TERMINAL_PROFILE)]) + TERMINAL_PROFILE)
        _, pin = yield from self._apdu(bytes([0x00, VERIFY, 0x00, 0x01, 0x00]))
        if pin != b"\x90\x00":  # 63Cx: PIN1 enabled; a cloud SIM has it off (docs/remote-sim.md)
            raise CardError("the card asks for PIN1, which this terminal has no way to enter")
        files: dict[str, bytes | None] = {}
        for fid, name in READ_AT_POWER_UP:
            files[name] = yield from self._read(fid)
        self.sim = _identity(swapped_digits(iccid), files)
        if self.sim is None:
            raise CardError("EF_IMSI or EF_AD unreadable")
        self.cs.m.urc("+CPIN: READY")
        self.cs.reevaluate()

    # -- registration ---------------------------------------------------------------------------
    def attach(self, gen: int) -> None:
        """EPS attach with AKA through the remote card; the result goes to the command set."""
        sim, auc = self.sim, getattr(self.cs.m.carrier, "auc", None)
        if sim is None:
            return
        if not isinstance(auc, Auc):  # a carrier with no AuC (NullCarrier) admits anyone
            self.cs.attach_result(gen, self.cs.m.carrier.attach(sim.imsi, sim.plmn, None))
            return
        self._run(lambda: self._authenticate(gen, sim, auc))

    def _authenticate(self, gen: int, sim: SimProfile, auc: Auc) -> Script:
        if gen != self.cs.attach_gen:
            return  # a later attach (or a detach) took this one's place while it queued
        for _ in range(MAX_AUTS_RESYNCS + 1):
            vector = auc.vector(sim.imsi)
            if vector is None:
                self.cs.attach_result(gen, self.cs.m.carrier.attach(sim.imsi, sim.plmn, None))
                return
            self._selected_fid = "ADF"
            command = bytes([0x00, AUTHENTICATE, 0x00, 0x81, 34, 16]) + vector.rand + bytes([16]) + vector.autn
            data, sw = yield from self._apdu(command)
            if sw == b"\x98\x62":
                self.cs.attach_result(gen, EMM_MAC_FAILURE)
                return
            if sw == b"\x90\x00" and data[:2] == b"\xdc\x0e" and auc.resync(sim.imsi, vector.rand, data[2:16]):
                continue
            if sw != b"\x90\x00" or data[:1] != b"\xdb" or len(data) < 2 + data[1]:
                self.cs.attach_result(gen, EMM_SYNCH_FAILURE if data[:1] == b"\xdc" else EMM_ILLEGAL_UE)
                return
            if not auc.confirm(sim.imsi, vector.rand, data[2:2 + data[1]]):
                self.cs.attach_result(gen, EMM_ILLEGAL_UE)
                return
            cause = self.cs.m.carrier.attach(sim.imsi, sim.plmn, None)
            if cause is None:  # ATTACH ACCEPT's GUTI and TAI go to the card before "registered"
                yield from self._write_epsloci(sim)
            self.cs.attach_result(gen, cause)
            return
        self.cs.attach_result(gen, EMM_SYNCH_FAILURE)

    def _write_epsloci(self, sim: SimProfile) -> Generator[bytes, ApduAnswer, None]:
        plmn = plmn_bcd(sim.plmn)
        guti = bytes([0x0B, 0xF6]) + plmn + MME_GROUP.to_bytes(2, "big") + bytes([MME_CODE]) + self.cs.m.rng.randbytes(4)
        content = guti + plmn + TAC.to_bytes(2, "big") + bytes([EPS_UPDATED])
        _, sw = yield from self._select(EF_EPSLOCI, fcp=False)
        if sw == b"\x90\x00":
            yield from self._apdu(bytes([0x00, UPDATE_BINARY, 0x00, 0x00, len(content)]) + content)


def _usim_aid(record: bytes) -> bytes | None:
    """The AID in an EF_DIR record (61 L 4F len AID ...), if it is the USIM's."""
    if len(record) < 4 or record[0] != 0x61 or record[2] != 0x4F:
        return None
    aid = record[4:4 + record[3]]
    return aid if aid.startswith(USIM_AID_PREFIX) else None


def _identity(iccid: str, files: dict[str, bytes | None]) -> SimProfile | None:
    """The SIM as the module reports it (+CIMI, +CCID, +COPS), from EF_IMSI and EF_AD."""
    raw, ad = files.get("IMSI"), files.get("AD")
    if raw is None or ad is None or len(raw) < 2 or len(ad) < 4:
        return None
    imsi = str(raw[1] >> 4) + swapped_digits(raw[2:1 + raw[0]])
    mnc_length = ad[3] & 0x0F
    if mnc_length not in (2, 3) or len(imsi) < 6:
        return None
    return SimProfile(iccid=iccid, imsi=imsi, ki=NO_KEY, opc=NO_KEY, plmn=imsi[:3 + mnc_length], apn="")
