"""The console as its own process (``pocket-agent console --port TTY --control SOCK``),
for boards that set ``[console] in_daemon = false``: same behaviour, over the socket."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.console.rig import ConsoleRig, Terminal


def test_console_process_against_the_control_socket(tmp_path: Path) -> None:
    rig = ConsoleRig(tmp_path)  # control server only: its in-loop console is not started
    term = Terminal(rig.cables[0].technician_path)
    proc = subprocess.Popen([sys.executable, "-m", "agent", "console", "--port", str(rig.cables[0].device_path),
                             "--control", str(rig.socket)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        term.expect(r"rtr-test01 serving> $", timeout=20)
        assert "plateau at the plan rate" in term.command("status").decode()
        assert rig.facts.calls == ["status"]
    finally:
        proc.terminate()
        proc.wait(10)
        term.close()
        rig.close()
