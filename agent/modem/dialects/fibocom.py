"""``fibocom-rsim``: 27.007 plus Fibocom's remote SIM protocol (agent/modem/rsim.py).

The module has no card of its own for the cloud line: it asks the host for the card over
AT (``+SIMRESET``, ``+SIMDATA:``) and the agent answers as the USIM (``rsimhost.py``). So
the dialect has no vSIM slots and never sends a key to the module: a swap is "remove the
remote card, load the next profile into the host-side card, insert it again".
"""

from __future__ import annotations

from agent.modem.commands import BASE, RSIM_COMMANDS
from agent.modem.dialects.base import Dialect
from agent.modem.rsim import FIBOCOM, RsimFraming


class FibocomRsimDialect(Dialect):
    name = "fibocom-rsim"
    has_remote_sim = True
    commands = BASE.with_(*RSIM_COMMANDS)
    remote_sim: RsimFraming = FIBOCOM
