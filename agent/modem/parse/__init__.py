"""Pure parsers from AT answer text to typed values (3GPP TS 27.007 / 27.005 families).

Why pure: the framer (``at.py``) and the driver do I/O; these modules only turn text into
frozen dataclasses, so they are tested against the captured ModemManager corpus, fuzzed
with hypothesis, and reused by ``pocket-agent decode`` on a field log.

One module per family (``registration``, ``signal``, ``operator``, ``identity``, ``pdp``,
``cfun``, ``ceer``, ``clock``, ``cgev``), over the shared field lexers of
``agent/modem/lex.py``. Which command a parser reads, its timeout and its JSON names are
declared in the command table (``agent/modem/commands.py``); final result codes, error
codes and URCs are the classifier's (``agent/modem/codes.py``). Names are re-exported
here so ``from agent.modem import parse; parse.parse_cesq(...)`` keeps working.

Conventions every parser follows:

* Input is the response *body*: the lines after echo removal, without the final ``OK``
  (exactly the ``raw`` field of the corpus). CR/LF framing and surrounding blanks are tolerated.
* Real modems are sloppy (spaces inside fields, quoted or bare hex, stray parentheses,
  extra vendor fields). We accept what the corpus shows real devices print, and reject the
  rest with :class:`agent.errors.ParseError` carrying the input in ``raw``. No parser raises
  anything else, whatever the input (the property tests hold us to that).
* Unknown values are ``None``, never 0: "cell id 0" and "no cell id" mean different things
  to the health detector.

See docs/at-parsers.md.
"""

from __future__ import annotations

from agent.modem.codes import (
    FINAL_CODES,
    FINAL_ERROR,
    FINAL_ERROR_PREFIXES,
    FINAL_OK,
    MAX_STAT,
    REGISTRATION_FAMILIES,
    AtErrorCode,
    FinalResult,
    ResponseFrame,
    final_line,
    final_result,
    is_urc,
    parse_error,
    strip_echo,
)
from agent.modem.lex import ACT_NAMES, MAX_INPUT_CHARS
from agent.modem.parse.ceer import Ceer, parse_ceer
from agent.modem.parse.cfun import cfun_allowed_modes, parse_cfun
from agent.modem.parse.cgev import CgevEvent, parse_cgev
from agent.modem.parse.clock import parse_cclk
from agent.modem.parse.identity import (
    PIN_STATES,
    DeviceIds,
    parse_cimi,
    parse_cpin,
    parse_gsn,
    parse_iccid,
    parse_imei,
    parse_text,
)
from agent.modem.parse.operator import (
    Network,
    Operator,
    decode_text,
    parse_cops,
    parse_cops_query,
    parse_cops_test,
)
from agent.modem.parse.pdp import (
    ContextAddress,
    ContextParams,
    ContextState,
    PdpContext,
    PdpFormat,
    normalise_address,
    parse_cgact_query,
    parse_cgcontrdp,
    parse_cgdcont,
    parse_cgdcont_query,
    parse_cgdcont_test,
    parse_cgpaddr,
)
from agent.modem.parse.registration import Registration, parse_registration
from agent.modem.parse.signal import Signal, parse_cesq, parse_csq

__all__ = [
    "ACT_NAMES", "FINAL_CODES", "FINAL_ERROR", "FINAL_ERROR_PREFIXES", "FINAL_OK", "MAX_INPUT_CHARS",
    "MAX_STAT", "PIN_STATES", "REGISTRATION_FAMILIES", "AtErrorCode", "Ceer", "CgevEvent",
    "ContextAddress", "ContextParams", "ContextState", "DeviceIds", "FinalResult", "Network",
    "Operator", "PdpContext", "PdpFormat", "Registration", "ResponseFrame", "Signal",
    "cfun_allowed_modes", "decode_text", "final_line", "final_result", "is_urc", "normalise_address",
    "parse_cclk", "parse_ceer", "parse_cesq", "parse_cfun", "parse_cgact_query", "parse_cgcontrdp",
    "parse_cgdcont", "parse_cgdcont_query", "parse_cgdcont_test", "parse_cgev", "parse_cgpaddr",
    "parse_cimi", "parse_cops", "parse_cops_query", "parse_cops_test", "parse_cpin", "parse_csq",
    "parse_error", "parse_gsn", "parse_iccid", "parse_imei", "parse_registration", "parse_text",
    "strip_echo",
]
