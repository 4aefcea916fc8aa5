"""``pocket-agent record``: the live data path into a trace CSV (moved from
tests/unit/test_classifier_io.py with the command, agent/faces/cli/record.py)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from agent.clock import FakeClock
from agent.core.sampler import LiveSampler
from agent.faces.cli.record import record
from agent.health.trace import TraceWriter, iter_samples


def test_record_cli_refuses_an_unknown_interface_clearly() -> None:
    done = subprocess.run([sys.executable, "-m", "agent", "record", "--wan", "nosuchif0",
                           "--no-conntrack", "--duration", "1"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2 and "nosuchif0" in done.stderr


def test_record_writes_rows_on_schedule(tmp_path: Path) -> None:
    stats = tmp_path / "wan0" / "statistics"
    stats.mkdir(parents=True)
    (stats / "rx_bytes").write_text("5")
    (stats / "tx_bytes").write_text("6")

    class Clock(FakeClock):
        def sleep(self, seconds: float) -> None:
            self.advance(seconds)

    buf = io.StringIO()
    rows = record(LiveSampler("wan0", None, None, None, root=tmp_path), TraceWriter(buf), 4.0, 1.0,
                  clock=Clock())
    samples = list(iter_samples(io.StringIO(buf.getvalue())))
    assert rows == 5 and [s.t for s in samples] == [0, 1, 2, 3, 4]
