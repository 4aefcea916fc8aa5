"""A minimal agent for the SIGKILL test: the real CloudLink draining a real usage Outbox.

Run as ``python -m tests.cloud.agent_harness CONFIG.json STATE_DIR COUNT``. It makes sure
the outbox holds records 1..COUNT (putting only the missing ones, so a restart does not
add more), connects, and reports on stdout:
``sent N`` once every record up to N has been published, ``drained`` once the cloud has
acknowledged everything. A line ``more K`` on stdin puts K more records.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from agent.cloud.link import CloudConfig, CloudLink
from agent.cloud.outbox import Outbox

REPORT_S = 0.02
"""How often progress is checked (this process is the thing under test, not a benchmark)."""


def record(i: int, iccid: str) -> dict:
    return {"iccid": iccid, "imsi": "440100000100001", "day": "2026-01-31", "month": "2026-01", "tz": "+09:00",
            "mcc": ["440"], "rx_bytes": 5000 + i, "tx_bytes": 50 + i, "start": "2026-01-31T00:00:00+09:00",
            "end": "2026-01-31T00:01:00+09:00"}


async def main(config_path: str, state_dir: str, count: int, iccid: str) -> None:
    raw = json.loads(Path(config_path).read_text())
    for key in ("ca_file", "cert_file", "key_file", "sealing_key_file", "platform_key_file"):
        raw[key] = Path(raw[key])
    box = Outbox(Path(state_dir) / "usage.outbox", "usage")
    target = count
    while box.next_seq <= target:
        box.put(record(box.next_seq, iccid))
    link = CloudLink(CloudConfig(**raw), state_dir=Path(state_dir), sources=[box])
    await link.start()
    loop = asyncio.get_running_loop()
    stdin_line = loop.run_in_executor(None, sys.stdin.readline)
    reported = ""
    while True:
        if stdin_line.done():
            words = stdin_line.result().split()
            if words and words[0] == "more":
                target += int(words[1])
                while box.next_seq <= target:
                    box.put(record(box.next_seq, iccid))
                link.kick()
            stdin_line = loop.run_in_executor(None, sys.stdin.readline)
        sent = link.streams.sent("usage")
        status = "drained" if len(box) == 0 else f"sent {sent}" if sent == target else ""
        if status and status != reported:
            print(status if status == "drained" else f"sent {sent}", flush=True)
            reported = status
        await asyncio.sleep(REPORT_S)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
