"""One terminal's conversation: prompt, login, commands, ``watch``, idle logout.

The serial layer hands every byte it reads to ``feed()`` and gives the session a
``write`` callable that never blocks (a bounded buffer; see ``ports.py``). Keystrokes
are echoed at once; whole lines go through a short queue to ``run()``, which asks the
daemon over the control socket and prints the answer. Ctrl-C is acted on immediately
(it stops a ``watch``), not queued behind the command it is meant to interrupt.

The login is the daemon's (``agent/core/logins.py``): the session asks it for a challenge
and hands it the pasted signature, and the daemon marks this session's connection as the
technician's; the session's own ``technician`` only decides the prompt and saves a round
trip for a command that would be refused. The daemon writes the audit log.

Idle logout runs on a timer of its own (``_idle_watch``), not in the command loop, so a
``signal watch`` left running does not keep a login alive (issue 20, finding 11). Only
what the technician types counts as activity: output never does, and neither do bytes
the line discipline throws away as noise, so a chattering cable cannot hold a login open.

Every output line is made inert and redacted last. Inert (``inert()``): any C0 control
byte and DEL, ESC above all, is shown in caret notation (``^[``) and anything outside
ASCII as ``?``, since a line can carry text the cloud or the modem chose (log lines,
ids, plan names), and a hostile broker must not drive a technician's terminal (finding
18). Redacted: the console has no way to learn a SIM's Ki or OPc (the daemon never hands
them over), and in case some future answer carried one anyway, any run of 32 or more hex
digits (a 128-bit key) is masked before it reaches the cable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agent.errors import ControlError
from agent.faces.console import commands as cmds
from agent.faces.console.linedisc import Interrupt, Line, LineDiscipline, Logout, Noise, TooLong
from agent.sim import redact_keys as redact

LOGGER = logging.getLogger(__name__)

QUEUE_MAX = 8
"""Lines typed ahead while a command runs; more are dropped with a notice (a paste of a
whole file into the terminal must not queue thousands of commands against the modem)."""
WATCH_EVERY = 1.0
"""Seconds between ``signal watch`` readings: the daemon's radio refresh is 5 s, the AT
channel answers +CESQ in ~50 ms, so once a second is live without crowding the channel."""
NEWLINE = "\r\n"
PROMPT_REFRESH_S = 1.0
"""The prompt's state is asked of the daemon at most once a second: a held-down Enter key
or line noise must not turn into a stream of requests."""
NOISE_NOTICE_EVERY = 10.0
"""Seconds between two "line noise" notices: tell the technician once, not per line."""
SHOW_CHUNK = 20
"""Lines written before waiting for the terminal to take them (about 2 kB)."""
IDLE_LOGOUT = 300.0
"""Seconds without a keystroke before a logged-in technician is logged out: long enough
to read a log, short enough that a laptop left plugged in does not stay privileged."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def inert(text: str) -> str:
    """``text`` as a terminal may safely show it: C0 controls and DEL in caret notation
    (ESC is ``^[``, so no escape sequence survives), the rest of it left to the ASCII
    encoder, which writes anything else (C1 controls too) as ``?``."""
    return _CONTROL.sub(lambda m: "^" + chr(ord(m.group()) ^ 0x40), text)


class Session:
    """Lives as long as the terminal is connected; ``run()`` returns on logout or close."""

    def __init__(self, write: Callable[[bytes], None], client: Any, *,
                 terminal: str, idle_logout: float = IDLE_LOGOUT, monotonic: Callable[[], float] = time.monotonic):
        self._write = write
        self.client = client
        self.client.hello = terminal  # a console: the daemon never lends this connection its uid's trust
        self.terminal = terminal
        self.idle_logout = idle_logout
        self._monotonic = monotonic
        self.disc = LineDiscipline()
        self.queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_MAX)
        self.interrupted = asyncio.Event()
        self.technician: str | None = None
        self.device_id = "?"
        self.state = "?"
        self._state_at = float("-inf")
        self._noise_said = float("-inf")
        self._challenge: str | None = None
        self._last_input = monotonic()
        self._logged_in = asyncio.Event()
        self._busy = False
        self.closed = False
        self.colour = False
        """No escape sequence reaches the terminal unless the technician asks (``colour on``)."""
        self.drain: Callable[[], Awaitable[bool]] | None = None
        """Set by the port: waits until the terminal took most of the output (or stalled)."""

    # ---- input ------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        noise_before = self.disc.dropped
        echo, events = self.disc.feed(data)
        if self.disc.dropped - noise_before < len(data):  # typed, not only noise
            self._last_input = self._monotonic()
        if echo:
            self._write(echo)
        for event in events:
            if isinstance(event, Interrupt):
                self.interrupted.set()
            try:
                self.queue.put_nowait(event)
            except asyncio.QueueFull:
                if isinstance(event, Line):  # noise is dropped quietly; a typed line is not
                    self.say("(busy: line dropped)")

    # ---- output -----------------------------------------------------------------------
    def say(self, *lines: str) -> None:
        """Write ``lines``, each made inert and redacted (see the module doc)."""
        self._lines([inert(line) for line in lines])

    def _lines(self, lines: list[str]) -> None:
        self._write("".join(redact(line) + NEWLINE for line in lines).encode("ascii", "replace"))

    async def prompt(self) -> None:
        now = self._monotonic()
        if now - self._state_at >= PROMPT_REFRESH_S:
            self._state_at = now
            try:
                dev = await self.client.request("device")
                self.device_id, self.state = str(dev.get("device_id", "?")), str(dev.get("state", "?"))
            except ControlError as exc:
                LOGGER.warning("console prompt: %s (%s)", exc, exc.reason)
                self.state = "unreachable" if exc.reason == "not_available" else self.state
        state = self.state
        if self._challenge is not None:
            self._write(b"signature> ")
        else:
            prompt = inert(f"{self.device_id} {state}{'#' if self.technician else '>'} ")
            self._write(redact(prompt).encode("ascii", "replace"))

    # ---- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        self.say("", "pocket-agent technician console. Type help for commands.")
        await self.prompt()
        idle = asyncio.get_running_loop().create_task(self._idle_watch(), name=f"console idle {self.terminal}")
        try:
            while not self.closed:
                event = await self.queue.get()
                self._busy = True
                try:
                    await self._handle(event)
                finally:
                    self._busy = False
                if not self.closed and self.queue.empty():
                    await self.prompt()
        finally:
            idle.cancel()

    async def _idle_watch(self) -> None:
        """Log an idle technician out, whatever the command loop is doing (a ``signal
        watch`` keeps running, read-only; the login does not)."""
        while not self.closed:
            try:
                await self._idle_step()
            except Exception:  # the login's only timer must not die quietly: fail closed
                LOGGER.exception("console %s: idle timer failed; logging out", self.terminal)
                await self._logout("idle timer failed")

    async def _idle_step(self) -> None:
        if self.technician is None:
            self._logged_in.clear()
            await self._logged_in.wait()
            return
        left = self.idle_logout - (self._monotonic() - self._last_input)
        if left > 0:
            await asyncio.sleep(left)
            return
        self.say("", f"idle for {self.idle_logout:.0f} s: logged out")
        await self._logout("idle")
        if not self._busy:
            await self.prompt()

    async def _handle(self, event: Any) -> None:
        self.interrupted.clear()
        if isinstance(event, Interrupt):
            self._challenge = None
        elif isinstance(event, Logout) and self.technician:  # (nothing to do when not logged in)
            await self._logout("ctrl-d")
            self.say("logged out")
        elif isinstance(event, Noise):
            now = self._monotonic()
            if now - self._noise_said >= NOISE_NOTICE_EVERY:
                self._noise_said = now
                self.say(f"(line noise: {event.dropped} stray bytes, line ignored; check the baud rate, 115200 8N1)")
        elif isinstance(event, TooLong):
            self.say(f"line too long ({event.length} characters, at most {self.disc.max_line}): ignored")
        elif isinstance(event, Line):
            if self._challenge is not None:
                await self._finish_login(event.text)
            elif event.text.strip():
                await self.command(event.text)

    async def close(self, why: str) -> None:
        """The port went away or the server stops: a pulled cable ends the login."""
        if self.technician:
            await self._logout(why)
        self.closed = True

    # ---- commands ---------------------------------------------------------------------
    async def command(self, line: str) -> None:
        name, words, rest, want_json = cmds.split(line)
        try:
            await self._dispatch(name, words, rest, want_json)
        except cmds.UsageError as exc:
            self._error(want_json, "usage", f"{name}: {exc}")
        except ControlError as exc:
            self._error(want_json, exc.reason, str(exc))

    def _error(self, want_json: bool, reason: str, message: str) -> None:
        self.say(cmds.as_json({"error": {"reason": reason, "message": message}}) if want_json else f"error: {message}")

    async def _dispatch(self, name: str, words: list[str], rest: str, want_json: bool) -> None:
        if name in ("help", "?") or "--help" in words:
            topic = name if name not in ("help", "?") else (words[0] if words else None)
            lines = cmds.help_lines(topic)
            self.say(*([cmds.as_json({"help": lines})] if want_json else lines))
            return
        if name == "login":
            await self._start_login(want_json)
            return
        if name in ("colour", "color"):
            if words not in (["on"], ["off"]):
                raise cmds.UsageError("colour on|off")
            self.colour = words == ["on"]
            self.say(cmds.as_json({"colour": self.colour}) if want_json else f"colour {words[0]}")
            return
        if name in ("logout", "exit", "quit"):
            if self.technician:
                await self._logout("logout")
            self.say(cmds.as_json({"logged_in": False}) if want_json else "logged out")
            return
        cmd = cmds.COMMANDS.get(name)
        if cmd is None or cmd.op is None:
            raise cmds.UsageError("unknown command; type help")
        args = cmd.args(words, rest)
        if cmd.privileged:
            await self._privileged(cmd, args, want_json)
        elif name == "signal" and words == ["watch"]:
            await self._watch(cmd, want_json)
        else:
            await self._show(cmd, await self.client.request(cmd.op, **args), want_json)

    async def _show(self, cmd: cmds.Command, result: dict[str, Any], want_json: bool) -> None:
        lines = [inert(line) for line in ([cmds.as_json(result)] if want_json else cmd.render(result))]
        if self.colour and not want_json:  # our own escapes, added after the answer's were made inert
            lines = [cmds.colourise(line) for line in lines]
        waiting = self.drain is not None and len(lines) > SHOW_CHUNK
        for start in range(0, len(lines), SHOW_CHUNK):
            self._lines(lines[start:start + SHOW_CHUNK])
            if waiting and self.drain is not None and not await self.drain():
                # The terminal stopped reading: the rest of this answer is written without
                # waiting, and the port's bounded buffer drops (and later reports) what does not fit.
                LOGGER.debug("console %s: terminal not reading", self.terminal)
                waiting = False

    async def _watch(self, cmd: cmds.Command, want_json: bool) -> None:
        while not self.interrupted.is_set() and not self.closed:
            await self._show(cmd, await self.client.request("signal"), want_json)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.interrupted.wait(), WATCH_EVERY)
        # The Ctrl-C that stopped us is still queued: handling it later is harmless.

    async def _privileged(self, cmd: cmds.Command, args: dict[str, Any], want_json: bool) -> None:
        """The daemon checks the login and writes the audit; asking without one would only
        be refused, so the session says so itself."""
        if self.technician is None:
            raise ControlError(f"{cmd.name} needs a technician login: type login", reason="refused")
        assert cmd.op is not None
        try:
            result = await self.client.request(cmd.op, **args)
        except ControlError as exc:
            if exc.reason == "unauthorized":  # the daemon no longer knows this login (it restarted)
                self.technician = None
                raise ControlError(f"{cmd.name}: the login ended (the agent restarted): type login",
                                   reason="unauthorized") from None
            raise
        await self._show(cmd, result, want_json)

    # ---- login ------------------------------------------------------------------------
    async def _start_login(self, want_json: bool) -> None:
        self._challenge = str((await self.client.request("login_challenge"))["challenge"])
        if want_json:
            self.say(cmds.as_json({"challenge": self._challenge}))
        else:
            self.say("challenge:", f"  {self._challenge}",
                     f'sign it on your laptop: pocket-agent console sign --key YOUR.key "{self._challenge}"',
                     "then paste the signature (Ctrl-C cancels)")

    async def _finish_login(self, signature: str) -> None:
        self._challenge = None
        try:
            result = await self.client.request("login", signature=signature.strip())
        except ControlError as exc:
            self.say(f"login failed: {exc}")
            return
        self.technician = str(result.get("technician"))
        self._last_input = self._monotonic()
        self._logged_in.set()
        self.say(f"logged in as {self.technician}; idle logout after {self.idle_logout:.0f} s")

    async def _logout(self, why: str) -> None:
        self.technician = None
        try:
            await self.client.request("logout", reason=why)
        except ControlError as exc:  # the daemon is gone: its side of the login went with it
            LOGGER.info("console logout not acknowledged: %s", exc)
