"""``pocket-lab sms`` live: the carrier's text goes from the command line through the board
process into the router's modem (stored, +CMTI), while the agent owns the modem's port."""

from __future__ import annotations

import re
from typing import Any

from tests.lab.conftest import LAB_DIR, lab


def test_cap_notice_reaches_the_routers_modem(running_lab: dict[str, Any]) -> None:
    out = lab("sms").stdout.strip()
    assert out.startswith("delivered from +819000000200: You have used "), out
    assert "limited to" in out  # the plan of the SIM in use names its throttle rate
    log = (LAB_DIR / "logs" / "labd.log").read_text()
    assert re.search(r"carrier: SMS from \+819000000200 delivered \(index \d+\)", log)
    assert list((LAB_DIR / "sms").iterdir()) == []
    assert running_lab["agent"]["state"] == "serving"
