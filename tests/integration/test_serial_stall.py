"""A modem that stops reading its AT port (issue 20, finding 10), on a real pty.

The modem's side of a pty pair is never read, so the kernel's buffer fills and every
further write to the agent's side fails with EAGAIN. Before the fix
``SerialTransport.write`` retried that in a bare loop: the agent's event loop spun at 100 %
CPU for as long as the modem stayed hung (for ever: procd has no watchdog). Now the
transport waits for the fd to become writable, and after ``WRITE_STALL_S`` without one
byte taken the command fails with ``PortStalled``.

The agent runs in a child process (the old code never returns from the write, so it
cannot run in the test's own process); the child measures its own CPU time over the
wait, and the parent gives up on a child that never answers, reading the CPU time it
burnt from /proc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STALL_S = 1.0
"""The child's write-stall bound (the module constant, lowered so the test takes a second)."""
ANSWER_WITHIN_S = 60.0
"""Generous: the child imports the agent, fills the pty and waits STALL_S (about 2 s on a quiet
machine). 10 s was too short at load average 11, where the child had burnt only 1.1 s of CPU
(not spinning, just waiting for a core); the behaviour checked is the CPU share, not the time."""
MAX_CPU_SHARE = 0.2
"""Waiting on a writable fd costs next to nothing; a spinning loop costs ~1.0."""

CHILD = textwrap.dedent(f"""
    import asyncio, json, os, sys, time, tty
    from agent.modem import at
    try:
        from agent.modem import serialport
        serialport.WRITE_STALL_S = {STALL_S}
    except ImportError:  # the code before the fix: the transport lived in at.py
        pass

    async def main():
        master, slave = os.openpty()  # the modem's side (master) is never read
        tty.setraw(master)
        channel = await at.open_channel(os.ttyname(slave))
        line = "AT+" + "X" * 1_000_000  # far more than the pty's buffer takes
        print("writing", flush=True)
        command = asyncio.ensure_future(channel.command(line, timeout=60))
        while not channel._transport.get_write_buffer_size():  # the tty is full, the rest queued
            await asyncio.sleep(0.01)
        cpu, wall = time.process_time(), time.monotonic()  # from here on the agent only waits
        try:
            await command
            error = None
        except Exception as exc:
            error = type(exc).__name__
        print(json.dumps({{"error": error, "cpu_s": time.process_time() - cpu,
                          "wall_s": time.monotonic() - wall}}), flush=True)

    asyncio.run(main())
""")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_modem_that_stops_reading_does_not_spin_the_loop() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=REPO, env=env)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "writing"
        try:
            out, err = child.communicate(timeout=ANSWER_WITHIN_S)
        except subprocess.TimeoutExpired:
            burnt = cpu_seconds(child.pid)
            raise AssertionError(f"no answer within {ANSWER_WITHIN_S} s; the child burnt {burnt:.1f} s of CPU "
                                 "(the write spins on EAGAIN)") from None
    finally:
        child.kill()
        child.wait()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["error"] == "PortStalled", err
    assert result["wall_s"] < STALL_S + 5
    assert result["cpu_s"] < MAX_CPU_SHARE * result["wall_s"], result
