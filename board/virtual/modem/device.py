"""The virtual modem: a baseband that speaks AT (27.007 + the vSIM extension) on a pty.

The agent opens the pty's slave path through pyserial exactly as it opens a real
modem's ``/dev/ttyUSB2``: it cannot tell the difference. The modem runs in its own
thread (``start()`` returns the slave path, ``stop()`` ends it) so tests and the lab
can embed it. It is deliberately imperfect in the ways real modems are: echo on at
power-up, URCs at random moments (also between the lines of a response), modelled
latency for the slow operations, ``+CME ERROR`` where a real modem gives one, and
injectable faults (hang, garbage, dropped characters, slow answers, spontaneous
reboot, busy errors, port loss). Commands and URCs of the vSIM extension are
specified in docs/vsim-at.md.

Everything the modem does happens on its thread; calls from outside
(``set_radio_conditions``, fault injection) are posted to it through a queue, so the
state needs no locks. The modem talks to the carrier network through
``CarrierHooks``; ``NullCarrier`` accepts everything.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import os
import queue
import random
import re
import select
import signal
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Self

from board.virtual.modem.commands import CommandSet
from board.virtual.modem.ident import EC25_IDENTITY
from board.virtual.modem.model import (
    COMMAND_LATENCY,
    FAST_SCALE,
    URC_MEAN_INTERVAL,
    CarrierHooks,
    ModemConfig,
    NullCarrier,
    RadioConditions,
)
from board.virtual.modem.term import OVERFLOW, LineEditor, Registers

LOGGER = logging.getLogger(__name__)

# --- the modem ----------------------------------------------------------------------


class VirtualModem:
    """A virtual baseband on a pty. ``start()`` -> slave path; ``stop()``."""

    def __init__(self, config: ModemConfig | None = None, carrier: CarrierHooks | None = None):
        self.config = config or ModemConfig()
        self.carrier: CarrierHooks = carrier or NullCarrier()
        self.network_time: Callable[[], float] = time.time
        """The network's time for +CCLK (NITZ): the lab sets lab time (board/virtual/network/labclock.py)."""
        self.rng = random.Random(self.config.rng_seed)
        self.conditions = RadioConditions(
            self.config.rsrp_dbm, self.config.rsrq_db, self.config.sinr_db
        )
        self._master = -1
        self._slave = -1
        self.wire_tap: Callable[[bytes], None] | None = None
        """Given every byte the port carries, both ways, in order (the lab's ``--capture-at``:
        what a second process on the UART would see)."""
        self.path = ""
        self._thread: threading.Thread | None = None
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = -1, -1
        self._running = False
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._after_answer: list[tuple[float, Callable[[], None]]] = []  # schedule_after_answer
        self._seq = itertools.count()
        self._editor = LineEditor(Registers(lambda n: self.cmds.sregs.get(n, 0)), lambda: self.cmds.echo)
        self._queue: list[str] = []
        self._busy_until = 0.0
        self._hang_until = 0.0
        self._drop_prob = 0.0
        self._slow_extra = 0.0
        self._answers_due = 0
        """Answers scheduled and not yet written: the next command waits for them, as a real
        modem answers in order. Without it the loop could take a queued command the instant
        ``_busy_until`` passed, before the timer wrote the previous answer, and answer the
        two out of order (a late answer then read as the next command's)."""
        self._busy_errors: list[int] = []
        self.commands_seen: list[str] = []
        """Command names (the part before '=' / '?') in arrival order; no arguments,
        so vSIM keys never end up here."""
        self.cmds = CommandSet(self)
        self.reboots = 0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> str:
        """Open the pty, boot, serve on a thread; return the slave path to open."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._running = True
        self.cmds.power_on(boot_urcs=False)
        if self.config.urc_probability > 0:
            self.schedule(self.rng.expovariate(1 / URC_MEAN_INTERVAL), self._spontaneous_urc)
        self._thread = threading.Thread(target=self._run, name="virtual-modem", daemon=True)
        self._thread.start()
        LOGGER.info("virtual modem on %s", self.path)
        return self.path

    def stop(self) -> None:
        """Stop the thread and close the pty (idempotent)."""
        if not self._running:
            return
        self._running = False
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = self._wake_r = self._wake_w = -1

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- outside world -> modem thread -----------------------------------------------
    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the modem thread."""
        self._inbox.put(fn)
        self._wake()

    def call_wait(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the modem thread and return its result."""
        done = threading.Event()
        box: list[Any] = []

        def run() -> None:
            box.append(fn())
            done.set()

        self.call(run)
        if not done.wait(timeout):
            raise TimeoutError("virtual modem thread did not answer")
        return box[0]

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def set_radio_conditions(
        self,
        rsrp_dbm: float,
        rsrq_db: float,
        sinr_db: float,
        registered: bool,
        reject_cause: int | None = None,
        down_plmns: frozenset[str] = frozenset(),
    ) -> None:
        """Change what the antenna sees; registration follows (with URCs)."""
        cond = RadioConditions(rsrp_dbm, rsrq_db, sinr_db, registered, reject_cause, frozenset(down_plmns))
        self.call(lambda: self.cmds.set_conditions(cond))

    def deliver_sms(self, sender: str, text: str) -> int | None:
        """The network delivers a text to the active SIM (stored, +CMTI); returns its index."""
        index: int | None = self.call_wait(lambda: self.cmds.sms.deliver(sender, text))
        return index

    # -- faults ----------------------------------------------------------------------
    def inject_hang(self, seconds: float) -> None:
        """Answer nothing (and process nothing) for ``seconds``; then carry on."""
        self.call(lambda: self._set_hang(seconds))

    def _set_hang(self, seconds: float) -> None:
        self._hang_until = time.monotonic() + seconds

    def inject_garbage(self, nbytes: int = 32) -> None:
        """Write ``nbytes`` of line noise (control bytes, invalid UTF-8) now; returns
        once the bytes are in the pty."""
        self.call_wait(lambda: self._write(bytes(self.rng.randrange(0, 256) for _ in range(nbytes))))

    def inject_drop_chars(self, probability: float) -> None:
        """Lose each written byte with ``probability`` (0 turns it off)."""
        self.call(lambda: setattr(self, "_drop_prob", probability))

    def inject_slow(self, extra_seconds: float) -> None:
        """Add ``extra_seconds`` (unscaled) to every answer (0 turns it off)."""
        self.call(lambda: setattr(self, "_slow_extra", extra_seconds))

    def inject_busy(self, count: int = 1, code: int = 14) -> None:
        """Answer the next ``count`` commands with +CME ERROR: ``code`` (14 SIM busy,
        515 "please wait, init in progress" on Qualcomm/Quectel)."""
        self.call(lambda: self._busy_errors.extend([code] * count))

    def reboot(self) -> None:
        """Spontaneous reboot: state lost, slots kept (flash), start-up URCs follow."""
        self.call(self.cmds.reboot)

    def reset_hook(self) -> None:
        """The board's reset line for the virtual board (the recovery ladder's last step)."""
        self.reboot()

    def lose_port(self) -> None:
        """USB pulled: the pty goes away; the agent's read fails. ``restore_port()``
        brings up a new pty (a new path, as after a real re-enumeration)."""
        self.call_wait(self._lose_port)

    def _lose_port(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = -1

    def restore_port(self) -> str:
        """A new pty after ``lose_port()``; the modem reboots as on re-enumeration."""

        def reopen() -> str:
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)
            os.set_blocking(self._master, False)
            self.path = os.ttyname(self._slave)
            self._editor.clear()
            self.cmds.reboot()
            return self.path

        return str(self.call_wait(reopen))

    # -- modem thread ----------------------------------------------------------------
    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on this thread after ``delay`` modelled seconds (time_scale applied)."""
        when = time.monotonic() + delay * self.config.time_scale
        heapq.heappush(self._timers, (when, next(self._seq), fn))

    def schedule_after_answer(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` ``delay`` modelled seconds after the answer of the command being
        executed is written: a URC a command causes (``+QNETDEVSTATUS`` after
        ``+QNETDEVCTL``'s OK) follows its OK on a real modem. Timed from the command's start
        instead, the two were microseconds apart at the tests' time scale, and a loaded
        machine wrote the URC first."""
        self._after_answer.append((delay, fn))

    def _run(self) -> None:
        while self._running:
            now = time.monotonic()
            timeout = 0.5
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - now))
            if self._hang_until > now:
                timeout = min(timeout, self._hang_until - now)
            if self._queue:  # a command waits for the modem to finish the previous one
                timeout = max(0.0, min(timeout, max(self._busy_until, self._hang_until) - now))
            fds = [self._wake_r] + ([self._master] if self._master >= 0 else [])
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except (OSError, ValueError):
                ready = []
            if self._wake_r in ready:
                try:
                    os.read(self._wake_r, 4096)
                except OSError:
                    pass
            self._drain_inbox()
            if self._master >= 0 and self._master in ready:
                self._read_master()
            self._run_timers()
            self._process_queue()

    def _drain_inbox(self) -> None:
        while True:
            try:
                fn = self._inbox.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception:
                LOGGER.exception("virtual modem: outside call failed")

    def _read_master(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # slave not open (yet / any more): nothing to read
        if self.wire_tap is not None:
            self.wire_tap(data)
        # --- terminal (issue 16): per-character echo, S3/S5 editing, A/ (modem_term.py)
        if self.cmds.sink is not None:  # online data mode after ATD*99# (modem_data.py)
            data = self.cmds.sink(data)  # the bytes after its end go to the command line
        echo, lines = self._editor.feed(data)
        if echo:
            self._write(echo)
        self._queue.extend(lines)
        # --- end terminal

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now and self._hang_until <= now:
            _, _, fn = heapq.heappop(self._timers)
            try:
                fn()
            except Exception:
                LOGGER.exception("virtual modem timer failed")

    def _process_queue(self) -> None:
        now = time.monotonic()
        while (self._queue and self._busy_until <= now and self._hang_until <= now
               and not self._answers_due):
            line = self._queue.pop(0)
            self._handle(line)
            now = time.monotonic()

    def _handle(self, line: str) -> None:
        if line == OVERFLOW:
            self._respond(["ERROR"], COMMAND_LATENCY)  # V.250: command line too long
            return
        text = line.strip()
        if not text.upper().startswith("AT"):
            return  # real modems ignore lines that are not commands
        self.commands_seen.append(re.split(r"[=?]", text, maxsplit=1)[0].upper())
        if self._busy_errors:
            code = self._busy_errors.pop(0)
            self._respond([self.cmds.cme(code)], COMMAND_LATENCY)
            return
        lines, delay = self.cmds.execute(text)
        self._respond(lines, delay)

    def _respond(self, lines: list[str], delay: float) -> None:
        """Write ``lines`` after ``delay`` modelled seconds; the modem is busy meanwhile."""
        wait = delay * self.config.time_scale + self._slow_extra
        self._busy_until = time.monotonic() + wait
        for after, fn in self._after_answer:
            heapq.heappush(self._timers, (self._busy_until + after * self.config.time_scale, next(self._seq), fn))
        self._after_answer.clear()
        if wait <= 0.0005:
            self.send_lines(lines)
            return
        self._answers_due += 1

        def answer() -> None:
            self._answers_due -= 1
            self.send_lines(lines)

        heapq.heappush(self._timers, (self._busy_until, next(self._seq), answer))

    def send_lines(self, lines: list[str], final: bool = True) -> None:
        """Write lines in V.250 framing, with random URCs between: information lines as
        ``<S3><S4>line1<S3><S4>line2<S3><S4>``, the final result code (the last line, when
        ``final``) as ``<S3><S4>OK<S3><S4>`` after them, as a real EC25 frames them."""
        out = bytearray()
        eol = self.cmds.eol
        lead = True
        for i, line in enumerate(lines):
            if self.config.urc_probability and self.rng.random() < self.config.urc_probability:
                out += eol + self.cmds.random_urc().encode() + eol
                lead = True
            if lead or (final and i == len(lines) - 1):
                out += eol
            out += line.encode() + eol
            lead = False
        self._write(bytes(out))

    def _spontaneous_urc(self) -> None:
        """A URC at a random moment (also while a command is being processed)."""
        self.urc(self.cmds.random_urc())
        self.schedule(self.rng.expovariate(1 / URC_MEAN_INTERVAL), self._spontaneous_urc)

    def urc(self, line: str) -> None:
        """Emit one URC now."""
        eol = self.cmds.eol
        self._write(eol + line.encode() + eol)

    def _write(self, data: bytes) -> None:
        if self._master < 0:
            return
        if self._drop_prob:
            data = bytes(b for b in data if self.rng.random() >= self._drop_prob)
        if self.wire_tap is not None:
            self.wire_tap(data)
        try:
            os.write(self._master, data)
        except OSError:
            pass  # nobody listening (slave closed): a real UART drops it too


# --- pocket-lab modem ---------------------------------------------------------------


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="ModemConfig as JSON or TOML (seed SIM, timings)")
    parser.add_argument("--fast", action="store_true", help=f"time_scale {FAST_SCALE}")
    parser.add_argument("--urc-probability", type=float, default=None)
    parser.add_argument("--ec25", action="store_true", help="name itself Quectel EC25 (ATI, +CGMI, +CGMM, +CGMR)")
    parser.add_argument("--remote-sim", action="store_true",
                        help="no card of its own: ask the host for it over AT (docs/remote-sim.md)")


def main(args: argparse.Namespace) -> int:
    """Run the virtual modem alone; print the pty path; run until SIGINT/SIGTERM."""
    config = ModemConfig.from_file(args.config) if args.config else ModemConfig()
    if args.fast:
        config = replace(config, time_scale=FAST_SCALE)
    if args.urc_probability is not None:
        config = replace(config, urc_probability=args.urc_probability)
    if args.remote_sim:
        config = replace(config, remote_sim=True)
    if args.ec25:

        ident = EC25_IDENTITY
        config = replace(config, manufacturer=ident["manufacturer"], model=ident["model"], revision=ident["revision"])
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    modem = VirtualModem(config)
    path = modem.start()
    print(path, flush=True)
    try:
        stop.wait()
    finally:
        modem.stop()
    return 0
