"""The line ``systemctl status`` shows (agent/core/status.py ``service_line``): it names the
SIM served, a swap, an outage of the data path with its cause and the healer's step, and
says nothing where READY=, STOPPING= or the exit speak (starting, stopped, failed)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.core.status import StatusFile, service_line

SIM = {"iccid": "8988211000000000017", "imsi": "001010000000017"}


@pytest.mark.parametrize(("data", "outages", "line"), [
    ({"state": "serving", "sim": SIM}, [], "serving on SIM 8988211000000000017"),
    ({"state": "swapping", "sim": SIM}, [], "swapping away from SIM 8988211000000000017"),
    ({"state": "serving", "sim": SIM, "heal": {"last_step": "reactivate"}},
     [("no_data", "pdn_deactivated: nw_pdn_deact (ME PDN DEACT 1)")],
     ("outage on SIM 8988211000000000017: no_data (pdn_deactivated: nw_pdn_deact (ME PDN DEACT 1)); healing,"
     " last step reactivate")),
    ({"state": "serving", "sim": SIM},
     [("modem_unresponsive", "modem_unresponsive: AtTimeout"), ("no_data", "x")],
     "outage on SIM 8988211000000000017: modem_unresponsive (modem_unresponsive: AtTimeout); healing"),
    ({"state": "serving", "sim": SIM}, [("broker_unreachable", "broker_unreachable")],
     "serving on SIM 8988211000000000017; cloud unreachable"),
    ({"state": "serving", "sim": None}, [], "serving on no SIM"),
    ({"state": "starting"}, [], None),
    ({"state": "stopped", "sim": SIM}, [], None),
    ({"state": "failed", "sim": SIM, "error": "modem lost"}, [], None),
])
def test_service_line(data: dict[str, Any], outages: list[tuple[str, str]], line: str | None) -> None:
    assert service_line(data, outages) == line


def test_every_update_is_told_even_when_the_file_cannot_be_written(tmp_path) -> None:
    seen: list[str | None] = []
    (tmp_path / "a-file").write_text("")
    status = StatusFile(tmp_path / "a-file" / "status.json")  # its directory is a file: the write fails
    status.on_change = lambda data: seen.append(service_line(data, []))
    with pytest.raises(OSError):
        status.update(state="swapping", sim=SIM)
    status.path = tmp_path / "status.json"
    status.update(state="serving")
    assert seen == ["swapping away from SIM 8988211000000000017", "serving on SIM 8988211000000000017"]
