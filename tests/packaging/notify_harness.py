"""The real notifier and progress watchdog under a service manager's environment.

Run as ``python -m tests.packaging.notify_harness`` with ``NOTIFY_SOCKET`` and
``WATCHDOG_USEC`` set, as systemd sets them. It does what the daemon does: start the
pinger beside the main loop (agent/faces/cli/run.py), say READY once serving, mark progress
on every pass of its loop (the supervisor's sample loop). SIGUSR1 makes the loop get
stuck on an await that never returns: the pinger is still scheduled, but must stop
pinging. SIGTERM says STOPPING=1 and exits.

Each ping decision is printed (``tick ping stuck=0``, ``tick silent stuck=1``), so the
test waits for decisions, not for wall-clock windows: "silent for two intervals" is two
``silent`` lines with nothing on the notify socket in between.
"""

from __future__ import annotations

import asyncio
import signal

from agent.sdnotify import Notifier, ProgressWatchdog, watchdog_interval

PASS_S = 0.02
"""One pass of the stand-in main loop (the daemon's is one second)."""


async def main() -> None:
    watchdog = ProgressWatchdog(Notifier.from_env(), watchdog_interval())
    stuck, stop = asyncio.Event(), asyncio.Event()
    decide = watchdog.tick

    def tick() -> bool:
        sent = decide()
        print(f"tick {'ping' if sent else 'silent'} stuck={int(stuck.is_set())}", flush=True)
        return sent

    watchdog.tick = tick  # type: ignore[method-assign]
    pinger = asyncio.get_running_loop().create_task(watchdog.run())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, stuck.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    async def main_loop() -> None:
        while True:
            if stuck.is_set():
                await asyncio.Event().wait()  # an await that never returns
            watchdog.mark()
            await asyncio.sleep(PASS_S)

    worker = loop.create_task(main_loop())
    watchdog.serving("serving on SIM test")
    await stop.wait()
    watchdog.stopping()
    worker.cancel()
    pinger.cancel()


if __name__ == "__main__":
    asyncio.run(main())
