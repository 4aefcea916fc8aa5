"""A T=0 terminal in a few lines, for the host-side USIM's tests: it sends a command APDU
the way a baseband's UICC driver does, fetches data announced with 61xx by GET RESPONSE
and resends a command refused with 6Cxx with the Le the card named (TS 102 221 7.3.1.1.5).
Each exchange is recorded, so a test can check the raw bytes as well as the outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.sim import SimProfile
from agent.usim.card import Uicc

KI = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
"""TS 35.208 test set 1's K and OPc: a profile whose keys the vectors know."""
PROFILE = SimProfile(iccid="8981100000001000019", imsi="440100000100001", ki=KI, opc=OPC,
                     plmn="44010", apn="internet.a.lab")
USIM_AID = bytes.fromhex("A0000000871002FFFFFFFF8900000100")


def apdu(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@dataclass
class Terminal:
    card: Uicc
    log: list[tuple[bytes, bytes]] = field(default_factory=list)

    def raw(self, command: bytes) -> bytes:
        response = self.card.transmit(command)
        self.log.append((command, response))
        return response

    def send(self, command: bytes) -> tuple[bytes, bytes]:
        """(data, SW) after the T=0 procedure: GET RESPONSE on 61xx, resend on 6Cxx."""
        response = self.raw(command)
        if response[-2] == 0x6C:
            response = self.raw(command[:4] + response[-1:])
        data = b""
        while response[-2] == 0x61:
            data += response[:-2]
            response = self.raw(apdu("00 C0 00 00") + response[-1:])
        return data + response[:-2], response[-2:]

    def select(self, fid: int) -> tuple[bytes, bytes]:
        return self.send(apdu("00 A4 00 04 02") + fid.to_bytes(2, "big"))

    def read_binary(self, length: int, offset: int = 0) -> tuple[bytes, bytes]:
        return self.send(apdu("00 B0") + offset.to_bytes(2, "big") + bytes([length & 0xFF]))


def loaded_card(profile: SimProfile = PROFILE, spn: str = "Pocket Lab") -> Uicc:
    card = Uicc()
    card.load(profile, spn=spn)
    return card
