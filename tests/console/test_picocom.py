"""A real terminal program on the console: picocom in a tmux pane, keys typed by tmux.

This is the technician's path end to end: picocom opens the cable's technician end at
115200 8N1, tmux types the keys (Enter is CR, as picocom sends it), and the screen tmux
shows is what the technician reads. A private tmux server (``-S`` socket in tmp) keeps
the test off anyone else's tmux.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need_tool
from tests.console.rig import ConsoleRig

SCREEN_TIMEOUT = 10.0


class Pane:
    def __init__(self, tmux: str, sock: Path):
        self.tmux, self.sock = tmux, sock

    def run(self, *args: str) -> str:
        return subprocess.run([self.tmux, "-S", str(self.sock), *args], check=True, capture_output=True,
                              text=True, timeout=10).stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "tech", *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-J", "-S", "-200", "-t", "tech")

    def wait_for(self, text: str, count: int = 1) -> str:
        """Poll the pane (another process's screen: no event to await) until ``text`` shows."""
        deadline = time.monotonic() + SCREEN_TIMEOUT
        while True:
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not on screen:\n{screen}")
            time.sleep(0.1)


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[tuple[Pane, ConsoleRig]]:
    tmux, picocom = need_tool("tmux"), need_tool("picocom")
    rig = ConsoleRig(tmp_path)
    p = Pane(tmux, tmp_path / "tmux.sock")
    p.run("new-session", "-d", "-s", "tech", "-x", "160", "-y", "50",
          f"{picocom} -b 115200 -d 8 -p n -y n {rig.cables[0].technician_path}")
    try:
        p.wait_for("Terminal ready")
        rig.start()
        p.wait_for("rtr-test01 serving>")
        yield p, rig
    finally:
        subprocess.run([tmux, "-S", str(p.sock), "kill-server"], check=False, capture_output=True)
        rig.close()


def test_a_technician_session_in_picocom(pane: tuple[Pane, ConsoleRig]) -> None:
    p, rig = pane
    p.keys("status", "Enter")
    screen = p.wait_for("plateau at the plan rate")
    assert "fair: RSRP -95 dBm" in screen and "8981100000000000017" in screen
    p.keys("signal watch", "Enter")
    p.wait_for("registration registered (home)", count=2)
    p.keys("C-c")
    p.wait_for("^C")
    assert rig.console.terminals[0].sessions == 1  # the same session goes on
    p.keys("sim --json", "Enter")
    p.wait_for('"sim_state":"READY"')
    p.keys("modzz", "BSpace", "BSpace", "em", "Enter")  # picocom sends DEL for backspace
    p.wait_for("VM-1")
    p.keys("at +CSQ", "Enter")
    p.wait_for("needs a technician login")
    p.keys("C-a", "C-x")  # picocom's exit
    p.wait_for("Thanks for using picocom")
