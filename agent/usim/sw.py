"""Status words a UICC answers with (ETSI TS 102 221 clause 10.2, ISO/IEC 7816-4 5.1.3).

Every answer of the host-side USIM ends in one of these two bytes; the names say what a
baseband reads from them. The two T=0 procedure words that carry a length (61xx: that
many bytes wait for GET RESPONSE; 6Cxx: wrong Le, xx is the right one) are built by
``more_data`` and ``wrong_le``.
"""

from __future__ import annotations

OK = b"\x90\x00"
"""Normal ending of the command."""

MORE_DATA = 0x61
"""61xx (T=0): the command succeeded and xx bytes wait for GET RESPONSE (102 221 10.2.1)."""
WRONG_LE = 0x6C
"""6Cxx (T=0): Le is wrong; xx is the number of bytes available (102 221 10.2.1)."""

AUTH_MAC_FAILURE = b"\x98\x62"
"""Authentication error, incorrect MAC: AUTN's MAC-A did not verify (102 221 10.2.1,
TS 31.102 7.1.2.1); the card gives no data, the ME then rejects with 'MAC failure'."""
AUTH_CONTEXT_NOT_SUPPORTED = b"\x98\x64"
"""Authentication error: the card has no such security context (SW 9864, 102 221 10.2.1)."""

WRONG_LENGTH = b"\x67\x00"
"""P3 (Lc or Le) does not fit the command, or the APDU is shorter/longer than T=0 allows."""
LOGICAL_CHANNEL_NOT_SUPPORTED = b"\x68\x81"
"""CLA names a logical channel other than the basic one (channel 0)."""
SECURE_MESSAGING_NOT_SUPPORTED = b"\x68\x82"
"""CLA asks for secure messaging, which this card does not offer."""
WRONG_FILE_TYPE = b"\x69\x81"
"""Command incompatible with file structure (READ RECORD on a transparent EF...)."""
SECURITY_STATUS = b"\x69\x82"
"""Security status not satisfied: the access rule asks for a key this card never grants
(ADM for the files only the issuer may write)."""
REFERENCE_DATA_NOT_USABLE = b"\x69\x84"
"""The PIN named exists but holds no value (PIN1/PIN2 are disabled and never set)."""
CONDITIONS_OF_USE = b"\x69\x85"
"""Conditions of use not satisfied: GET RESPONSE with nothing waiting, AUTHENTICATE with
no application selected."""
NO_EF_SELECTED = b"\x69\x86"
"""Command not allowed, no current EF."""
WRONG_DATA = b"\x6a\x80"
"""Incorrect parameters in the data field (AUTHENTICATE's length-prefixed fields)."""
FILE_NOT_FOUND = b"\x6a\x82"
RECORD_NOT_FOUND = b"\x6a\x83"
INCORRECT_P1P2 = b"\x6a\x86"
"""P1 or P2 holds a coding the command does not define (102 221 10.2.1)."""
REFERENCED_DATA_NOT_FOUND = b"\x6a\x88"
WRONG_P1P2 = b"\x6b\x00"
"""Wrong parameter(s) P1-P2: the offset lies outside the file (102 221 10.2.1)."""
INS_NOT_SUPPORTED = b"\x6d\x00"
CLA_NOT_SUPPORTED = b"\x6e\x00"
TECHNICAL_PROBLEM = b"\x6f\x00"
"""Technical problem, no precise diagnosis: what the card answers while it holds no SIM
(no profile loaded, so no file system to answer from)."""


def more_data(n: int) -> bytes:
    """61xx for n bytes waiting (1..256; 256 is written 00, as Le=00 means 256)."""
    return bytes([MORE_DATA, n & 0xFF])


def wrong_le(n: int) -> bytes:
    """6Cxx: the command would answer n bytes (1..256; 256 written 00)."""
    return bytes([WRONG_LE, n & 0xFF])
