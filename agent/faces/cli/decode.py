"""``pocket-agent decode``: modem output on stdin to one JSON object per line on stdout.

The decoding is ``agent/modem/decode.py`` (the daemon's classifier, command table and
parsers); this module reads raw bytes tolerantly (CR, LF or CR LF line ends, CR-only
modems, invalid UTF-8, binary garbage cut at a bound) and prints.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from agent.modem.decode import decode_stream
from agent.modem.dialects import DIALECTS, get_dialect

LOGGER = logging.getLogger(__name__)

MAX_LINE_CHARS = 8 * 1024
"""A line longer than any real AT response (a full +COPS=? scan is ~2 KB) is cut here, so a
log with binary garbage cannot make one JSON object of megabytes."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--charset",
        default="GSM",
        help='the modem\'s +CSCS setting, for operator names ("GSM" default, "UCS2", "IRA")',
    )
    parser.add_argument(
        "--dialect",
        default="generic",
        choices=sorted(DIALECTS),
        help="the modem's dialect, for vendor readings such as +CFUN power states (default generic)",
    )


def main(args: argparse.Namespace) -> int:
    dialect = get_dialect(args.dialect)
    for obj in decode_stream(_lines(sys.stdin.buffer), charset=args.charset, dialect=dialect):
        _emit(obj, sys.stdout)
    return 0


def _emit(obj: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()


def _lines(stream: Iterable[bytes]) -> Iterator[str]:
    """Text lines from raw bytes, splitting on CR as well as LF (CR-only modems exist).
    Blanks inside a line are kept: the classifier needs them (``+CME ERROR:``)."""
    for chunk in stream:
        text = chunk.decode("utf-8", errors="replace")
        for line in re.split(r"[\r\n]+", text):
            if line.strip():
                yield line[:MAX_LINE_CHARS]
