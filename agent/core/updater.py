"""The running agent's side of an update: take the offer, fetch within the plan, install, restart.

The cloud offers a release with an ``update`` command carrying the signed manifest
(docs/protocol.md 8). This module checks it (agent/update/manifest.py), fetches the
artifact chunk by chunk over the MQTT session the agent already holds (``update/get`` ->
``update/chunk``; docs/update.md says why not HTTPS), one chunk in flight, each appended
and fsync'd before the next is asked for, so a dropped link or a reboot resumes where it
stopped. It waits, reporting why once, while a swap is in progress, while the SIM's
allowance is low, or while the router is on the seed SIM, unless the manifest says the
release is urgent. With every byte verified it installs beside the running version,
switches the link and asks the daemon to restart: the package's code then runs the new
version on trial (agent/update/boot.py). After that start, the outcome (committed, or
rolled back with the failed version's last log lines) goes up as an ``update`` event.

Every refusal is an ``UpdateError`` (agent/errors.py): logged, reported as an ``update``
event with its reason and as an ``error`` event, and the agent keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import __version__
from agent.errors import UpdateError
from agent.update import boot, chunks, install, journal, machine
from agent.update import manifest as mf
from agent.update.download import Download
from agent.version import STATE_VERSION

LOGGER = logging.getLogger(__name__)

GET_LEAF = "update/get"
"""Device -> cloud: the next chunk wanted (``sha256``, ``offset``, ``length``)."""
CHUNK_LEAF = "update/chunk"
"""Cloud -> device: one chunk (agent/update/chunks.py)."""
CHUNK_TIMEOUT_S = 30.0
"""A chunk is 32 KiB: 1 s at 256 kbps (a throttled SIM). No answer in 30 s means the
request or the answer was lost with a session: asked again (the answer may still come)."""
MAX_CHUNK_WAIT_S = 3600.0
"""Unanswered requests are asked again after a doubling wait, up to an hour: a cloud that
stopped serving a release (a rollout withdrawn without the abort below) costs a device
one ~200-byte request an hour, not one every 30 s (576 KB a day)."""
DEFER_CHECK_S = 10.0
"""How often a deferred download looks again at what held it (a swap lasts ~6 s)."""
GET_EXPIRY_S = 60
"""A chunk request older than this is of no use to the device, which has asked again."""
TRIAL_POLL_S = 2.0
"""How often a version on trial reads the journal for its guard's verdict (to report it)."""
PROVE_EVERY = 10
"""Polls between the trial's usage reports (20 s): the first may find nothing to send."""
MQTT_OVERHEAD_BYTES = 60
"""Per message on the wire beyond its payload: MQTT fixed and variable header with the
topic (~40 bytes), TLS record header and tag (~22): the update event's ``bytes`` estimate."""


@dataclass
class UpdateHooks:
    """What the updater reads of and asks of the rest of the daemon (all callables)."""

    publish: Callable[[str, dict[str, Any]], bool]
    emit: Callable[[str, dict[str, Any]], Awaitable[None]]
    connected: Callable[[], bool]
    swapping: Callable[[], bool]
    on_seed: Callable[[], bool]
    allowance_low: Callable[[], bool]
    restart: Callable[[], None]
    """Stop the daemon and start afresh as the package's code (agent/update/boot.py restart)."""
    prove: Callable[[], None]
    """Flush the usage journal and send a report now: the health gate waits for its ack,
    and an idle router would otherwise send none for an hour (the heartbeat)."""


class Updater:
    """One per daemon; ``run`` is a supervisor task."""

    def __init__(self, state_dir: Path, release_key: Ed25519PublicKey | None, board: str, hooks: UpdateHooks,
                 *, trial_ok: bool = True):
        self.state_dir, self.release_key, self.board, self.hooks = state_dir, release_key, board, hooks
        self.trial_ok = trial_ok
        """False when nothing can prove a new version (no status file): offers are refused."""
        self.state = journal.load(state_dir)
        self.download: Download | None = None
        self._wake = asyncio.Event()
        self._chunk_arrived = asyncio.Event()
        self.deferred = ""
        self.misses = 0
        """Chunk requests unanswered in a row (the wait before the next one doubles)."""
        self.bytes = 0
        """Bytes of this update's messages, both ways, with their MQTT and TLS overhead."""

    # -- facts for the status file and the console ------------------------------------
    def summary(self) -> dict[str, Any]:
        """``update`` of the status file: running version and any update in progress."""
        out: dict[str, Any] = {"running": __version__, "phase": self.state.phase}
        if self.state.phase != "idle":
            out.update(version=self.state.version)
        if self.download is not None and self.state.phase == "fetching":
            out.update(have=self.download.have, size=self.download.manifest.size)
        if self.deferred:
            out["deferred"] = self.deferred
        if self.state.reason:
            out["reason"] = self.state.reason
        return out

    def device(self) -> mf.DeviceFacts:
        return mf.DeviceFacts(board=self.board, running=__version__, state_version=STATE_VERSION,
                              floor=self.state.floor, rollout=self.state.rollout, rollout_sha256=self.state.rollout_sha256)

    # -- inbound ----------------------------------------------------------------------
    def offer(self, command_id: str, manifest_doc: Any) -> None:
        """An ``update`` command: a verified, acceptable manifest starts (or resumes) a fetch."""
        try:
            if self.release_key is None or not self.trial_ok:
                raise UpdateError("updates are off: no release key pinned" if self.release_key is None
                                  else "updates are off: no status file to prove a new version with")
            manifest = mf.verify(manifest_doc, self.release_key)
            mf.check_offer(manifest, self.device())
        except UpdateError as exc:
            self._refused(exc, command_id)
            return
        if mf.same_as_running(manifest, self.device()):
            if self.state.phase == "fetching":  # the platform's abort: "stay on what you run"
                LOGGER.warning("update %s: stay on %s; the fetch of %s is abandoned", command_id, manifest.version,
                               self.state.version)
                self.state = replace(self.state, rollout=manifest.rollout, rollout_sha256=manifest.sha256)
                self._abandon("aborted")
            else:
                LOGGER.info("update %s: already running %s", command_id, manifest.version)
            return
        if self.state.in_progress and self.state.phase != "fetching":
            LOGGER.info("update %s to %s waits: update to %s is %s", command_id, manifest.version,
                        self.state.version, self.state.phase)
            return
        LOGGER.info("update %s: release %s offered (%d bytes, rollout %d%s)", command_id, manifest.version,
                    manifest.size, manifest.rollout, ", urgent" if manifest.urgent else "")
        self.state = journal.save(self.state_dir, machine.offered(
            self.state, manifest.to_dict(), manifest.version, manifest.rollout, manifest.sha256,
            max(self.state.floor, manifest.floor, key=mf.version_key)))
        self.download = None
        self._report("offered")
        self._wake.set()

    def on_chunk(self, body: dict[str, Any]) -> None:
        """``update/chunk``: appended if it is the next one; a bad one is refused and asked again."""
        self.bytes += len(str(body.get("data", ""))) + MQTT_OVERHEAD_BYTES
        if self.download is None or self.state.phase != "fetching":
            return
        try:
            taken = self.download.add(chunks.decode(body, version=self.state.version))
        except UpdateError as exc:
            LOGGER.warning("update to %s: chunk refused (%s): %s", self.state.version, exc.reason, exc)
            self._error(exc)
            taken = False
        if taken:
            self._chunk_arrived.set()

    # -- the task ---------------------------------------------------------------------
    async def run(self) -> None:
        """Report the outcome of the last start (a trial's once its guard judged it), then
        fetch and install whatever is offered."""
        proved = 0
        while self.state.phase == "trial":  # this is the version on trial: the guard writes the verdict
            if self.hooks.connected() and proved % PROVE_EVERY == 0:
                self.hooks.prove()
            proved += self.hooks.connected()
            await asyncio.sleep(TRIAL_POLL_S)
            self.state = journal.load(self.state_dir)
        await self._report_outcome()
        while True:
            if self.state.phase == "fetching":
                await self._fetch()
            elif self.state.phase in ("fetched", "unpacked", "switching"):
                await self._install()
            else:
                self._wake.clear()
                await self._wake.wait()

    async def _report_outcome(self) -> None:
        if self.state.phase not in ("committed", "rolled_back"):
            return
        while not self.hooks.connected():
            await asyncio.sleep(1.0)
        status = "committed" if self.state.phase == "committed" else "rolled_back"
        await self.hooks.emit("update", self._event(status))
        self.state = install.reported(self.state_dir)

    async def _fetch(self) -> None:
        manifest = mf.parse(self.state.manifest)
        if self.download is None:
            self.download = Download(self.state_dir, manifest)
        why = self._defer_reason(manifest)
        if why:
            if why != self.deferred:
                LOGGER.info("update to %s deferred: %s", manifest.version, why)
                self.deferred = why
                self._report("deferred", reason=why)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), DEFER_CHECK_S)
            self._wake.clear()
            return
        self.deferred = ""
        request = self.download.next_request()
        if request is None:
            try:
                await asyncio.to_thread(self.download.finish)
            except UpdateError as exc:
                self._refused(exc)
                self._abandon("")
                return
            self.state = journal.save(self.state_dir, machine.advance(self.state, "fetched"))
            self._report("fetched", bytes=self.bytes)
            return
        offset, length = request
        self._chunk_arrived.clear()
        body = {"sha256": manifest.sha256, "offset": offset, "length": length}
        if self.hooks.publish(GET_LEAF, body):
            self.bytes += 120 + MQTT_OVERHEAD_BYTES
        wait = min(CHUNK_TIMEOUT_S * 2 ** min(self.misses, 10), MAX_CHUNK_WAIT_S)
        try:
            await asyncio.wait_for(self._chunk_arrived.wait(), wait)
            self.misses = 0
        except TimeoutError:
            self.misses += 1

    def _abandon(self, why: str) -> None:
        """The fetch in progress is given up (wrong hash, the platform's abort): its bytes
        removed, the journal idle, the floor and rollout seen kept."""
        if self.download is not None:
            self.download.discard()
        if why:
            self._report("refused", reason=why)
        self.state = journal.save(self.state_dir, machine.UpdateState(
            floor=self.state.floor, rollout=self.state.rollout, rollout_sha256=self.state.rollout_sha256))
        self.download, self.misses = None, 0

    def _defer_reason(self, manifest: mf.Manifest) -> str:
        if not self.hooks.connected():
            return "offline"
        if self.hooks.swapping():
            return "swap_in_progress"
        if manifest.urgent:
            return ""
        if self.hooks.on_seed():
            return "seed_sim"
        if self.hooks.allowance_low():
            return "allowance_low"
        return ""

    async def _install(self) -> None:
        """Unpack beside, switch the link, and restart into the trial (never during a swap)."""
        while self.hooks.swapping():
            await asyncio.sleep(1.0)
        if self.download is None:
            self.download = Download(self.state_dir, mf.parse(self.state.manifest))
        boot.note_package(self.state_dir, boot.own_tree())
        try:
            self.state = await asyncio.to_thread(install.install, self.state_dir, self.download.done, boot.own_tree())
        except (UpdateError, OSError) as exc:
            failure = exc if isinstance(exc, UpdateError) else UpdateError(f"install failed: {exc}",
                                                                           version=self.state.version)
            self._refused(failure)
            self.state = install.rollback(self.state_dir, failure.reason)
            self.state = install.reported(self.state_dir)
            self.download = None
            return
        LOGGER.warning("update to %s installed beside %s: restarting into it", self.state.version, __version__)
        self._report("installing")
        self.hooks.restart()
        await asyncio.Event().wait()  # the stop is under way; nothing more to do here

    # -- reports ----------------------------------------------------------------------
    def _event(self, status: str, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"status": status, "version": self.state.version or "0", "running": __version__}
        if status == "rolled_back":
            data.update(reason=self.state.reason[:120], log_tail=list(self.state.log_tail))
        data.update(extra)
        return data

    def _report(self, status: str, **extra: Any) -> None:
        asyncio.get_running_loop().create_task(self.hooks.emit("update", self._event(status, **extra)))

    def _refused(self, exc: UpdateError, command_id: str = "") -> None:
        LOGGER.warning("update %s refused (%s): %s", command_id or exc.version or "", exc.reason, exc)
        data = {"status": "refused", "version": (exc.version or self.state.version or "0")[:mf.MAX_TEXT],
                "running": __version__, "reason": exc.reason}
        asyncio.get_running_loop().create_task(self.hooks.emit("update", data))
        self._error(exc)

    def _error(self, exc: UpdateError) -> None:
        asyncio.get_running_loop().create_task(self.hooks.emit(
            "error", {"reason": "update", "topic": None, "detail": f"{exc.reason}: {exc}"[:300]}))
