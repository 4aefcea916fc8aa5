"""Which file is current, and the commands that move or report it: SELECT and STATUS
(ETSI TS 102 221 8.4, 11.1.1, 11.1.2).

A ``Selection`` is the card's pointer state: the current DF (MF or ADF), the current EF
if any, the application selected by AID, and the record pointer of the current EF. It
starts at the MF after every reset, as the card's does.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.usim import sw
from agent.usim.apdu import Apdu
from agent.usim.encode import tlv
from agent.usim.fs import Df, Ef
from agent.usim.usimfs import ADF_CURRENT, MF, CardFiles

BY_FID, BY_AID, BY_PATH_FROM_MF, BY_PATH_FROM_DF = 0x00, 0x04, 0x08, 0x09
"""SELECT's P1 (102 221 table 11.2); ISO's 01-03 (child DF, EF, parent) are not UICC codings."""
RETURN_FCP, NO_DATA = 0x04, 0x0C
"""SELECT's P2 (102 221 table 11.3): b4-b3 say what comes back."""
TERMINATE = 0x40
"""P2 b7: terminate the application named by AID (only with selection by AID)."""
MIN_AID = 5
"""A partial AID must hold at least the RID (5 bytes, ISO 7816-5) to name anything."""

STATUS_FCP, STATUS_AID, STATUS_NONE = 0x00, 0x01, 0x0C
"""STATUS's P2 (102 221 11.1.2): the current DF's FCP, the application's AID, nothing."""
STATUS_P1 = frozenset({0x00, 0x01, 0x02})
"""STATUS's P1: no indication, application initialised, terminal will end the session."""


@dataclass(frozen=True)
class Reply:
    """What a command gives: data (possibly empty) and its status word."""

    data: bytes
    sw: bytes


def refuse(status: bytes) -> Reply:
    return Reply(b"", status)


class Selection:
    """The current DF, EF, application and record of one card."""

    def __init__(self, files: CardFiles) -> None:
        self.files = files
        self.df: Df = files.mf
        self.ef: Ef | None = None
        self.app: Df | None = None
        self.record: int | None = None
        """Record pointer of the current EF, 1-based; None until a READ/UPDATE RECORD sets it."""

    def choose(self, node: Ef | Df) -> None:
        if isinstance(node, Df):
            self.df, self.ef = node, None
        else:
            assert node.parent is not None
            self.df, self.ef = node.parent, node
        self.record = None

    def by_fid(self, fid: int) -> Ef | Df | None:
        """102 221 8.4: the MF, the current application ('7FFF'), the current DF, its
        children, its parent, and the parent's other DFs."""
        if fid == MF:
            return self.files.mf
        if fid == ADF_CURRENT:
            return self.app
        if fid == self.df.fid:
            return self.df
        if fid in self.df.children:
            return self.df.children[fid]
        parent = self.df.parent
        if parent is None:
            return None
        if fid == parent.fid:
            return parent
        sibling = parent.children.get(fid)
        return sibling if isinstance(sibling, Df) else None

    def by_path(self, start: Df, path: bytes) -> Ef | Df | None:
        node: Ef | Df = start
        for i in range(0, len(path), 2):
            fid = int.from_bytes(path[i:i + 2], "big")
            if not isinstance(node, Df):
                return None
            nxt: Ef | Df | None
            if fid == ADF_CURRENT and node is self.files.mf:
                nxt = self.app
            else:
                nxt = node.children.get(fid)
            if nxt is None:
                return None
            node = nxt
        return node

    def by_aid(self, aid: bytes) -> Df | None:
        if len(aid) < MIN_AID:
            return None
        return next((a for a in self.files.applications if a.aid.startswith(aid)), None)

    def fcp(self, node: Ef | Df) -> bytes:
        if isinstance(node, Df):
            return node.fcp()
        assert node.parent is not None
        return node.fcp(node.parent.arr_fid)


def select(sel: Selection, apdu: Apdu) -> Reply:
    """SELECT FILE: by FID, by path from the MF or the current DF, or by AID."""
    mode = apdu.p2 & ~TERMINATE
    if mode not in (RETURN_FCP, NO_DATA) or (apdu.p2 & TERMINATE and apdu.p1 != BY_AID):
        return refuse(sw.INCORRECT_P1P2)
    data = apdu.data
    node: Ef | Df | None
    if apdu.p1 == BY_FID:
        if len(data) != 2:
            return refuse(sw.WRONG_LENGTH)
        node = sel.by_fid(int.from_bytes(data, "big"))
    elif apdu.p1 in (BY_PATH_FROM_MF, BY_PATH_FROM_DF):
        if not data or len(data) % 2:
            return refuse(sw.WRONG_LENGTH)
        node = sel.by_path(sel.files.mf if apdu.p1 == BY_PATH_FROM_MF else sel.df, data)
    elif apdu.p1 == BY_AID:
        if not data:
            return refuse(sw.WRONG_LENGTH)
        node = sel.by_aid(data)
        if node is not None and apdu.p2 & TERMINATE:
            sel.app = None
            sel.choose(sel.files.mf)
            return Reply(b"", sw.OK)
        if node is not None:
            sel.app = node
    else:
        return refuse(sw.INCORRECT_P1P2)
    if node is None:
        return refuse(sw.FILE_NOT_FOUND)
    sel.choose(node)
    return Reply(sel.fcp(node) if mode == RETURN_FCP else b"", sw.OK)


def status(sel: Selection, apdu: Apdu) -> Reply:
    """STATUS: the current DF's FCP, the current application's AID, or nothing; a case-2
    command, so Le must match what there is (6Cxx otherwise)."""
    if apdu.p1 not in STATUS_P1:
        return refuse(sw.INCORRECT_P1P2)
    if apdu.p2 == STATUS_NONE:
        return refuse(sw.WRONG_LENGTH) if apdu.p3 else Reply(b"", sw.OK)
    if apdu.p2 == STATUS_FCP:
        data = sel.df.fcp()
    elif apdu.p2 == STATUS_AID:
        data = tlv(0x84, sel.app.aid) if sel.app is not None else b""
        if not data:
            return refuse(sw.REFERENCED_DATA_NOT_FOUND)
    else:
        return refuse(sw.INCORRECT_P1P2)
    return exact(data, apdu.le)


def exact(data: bytes, le: int) -> Reply:
    """A case-2 answer whose length is fixed: the data, or 6Cxx naming its length."""
    return Reply(data, sw.OK) if le == len(data) else refuse(sw.wrong_le(len(data)))
