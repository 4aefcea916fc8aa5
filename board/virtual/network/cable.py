"""A USB serial cable between a router's console port and a technician's laptop, on ptys.

Two pseudo-terminals: the *device end* (what the agent opens, as it would open
``/dev/ttyGS0``) and the *technician end* (what picocom opens). Two relay threads copy
bytes between their masters, one per direction, with blocking writes: a technician end
that nobody reads fills up and the relay stops reading the device end, so the device end
fills up too, exactly the back-pressure a real terminal that stopped reading produces.

``unplug()`` closes the device end's master and removes its path, as a pulled USB
cable removes the gadget's tty (the agent's reads fail with EIO); ``plug()`` creates a
fresh pty behind the same path. Each end is reached through a stable symlink, because a
new pty gets a new ``/dev/pts/N``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import tty
from pathlib import Path

LOGGER = logging.getLogger(__name__)

CHUNK = 4096
POLL_S = 0.2
"""How often an idle relay thread checks whether it should stop."""


def _pty() -> tuple[int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)  # no echo, no line editing: a serial line carries bytes as they are
    name = os.ttyname(slave)
    os.close(slave)
    return master, name


def _link(path: Path, target: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(target)
    os.replace(tmp, path)


class PtyCable:
    """``device_path`` and ``technician_path`` are symlinks to the two ends' ptys."""

    def __init__(self, device_path: Path | str, technician_path: Path | str):
        self.device_path = Path(device_path)
        self.technician_path = Path(technician_path)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tech_master, tech_name = _pty()
        # Keep a slave fd open on the technician end so the master never sees EIO while
        # no terminal program has it open (between two picocom runs).
        self._tech_keep = os.open(tech_name, os.O_RDWR | os.O_NOCTTY)
        _link(self.technician_path, tech_name)
        self._dev_master = -1
        self._dev_keep = -1
        self.plug()
        self._threads = [threading.Thread(target=self._relay, args=(True,), daemon=True, name="cable-up"),
                         threading.Thread(target=self._relay, args=(False,), daemon=True, name="cable-down")]
        for t in self._threads:
            t.start()

    @property
    def plugged(self) -> bool:
        return self._dev_master >= 0

    def plug(self) -> None:
        with self._lock:
            if self._dev_master >= 0:
                return
            master, name = _pty()
            self._dev_keep = os.open(name, os.O_RDWR | os.O_NOCTTY)
            self._dev_master = master
            _link(self.device_path, name)
        LOGGER.info("console cable plugged: device end %s", name)

    def unplug(self) -> None:
        with self._lock:
            if self._dev_master < 0:
                return
            with contextlib.suppress(FileNotFoundError):
                self.device_path.unlink()
            os.close(self._dev_keep)
            os.close(self._dev_master)
            self._dev_master = self._dev_keep = -1
        LOGGER.info("console cable unplugged")

    def close(self) -> None:
        self._stop.set()
        self.unplug()
        for t in self._threads:
            t.join(2)
        for fd in (self._tech_master, self._tech_keep):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            self.technician_path.unlink()

    def _relay(self, upstream: bool) -> None:
        """upstream: technician -> device; else device -> technician."""
        while not self._stop.is_set():
            src = self._tech_master if upstream else self._dev_master
            dst = self._dev_master if upstream else self._tech_master
            if src < 0 or dst < 0:
                self._stop.wait(POLL_S)
                continue
            try:
                ready, _, _ = select.select([src], [], [], POLL_S)
                if not ready:
                    continue
                data = os.read(src, CHUNK)
                view = memoryview(data)
                while view:
                    view = view[os.write(dst, view):]
            except OSError:
                # The device end was unplugged under us: what was in flight is lost, as on a
                # real cable. Wait for the next plug.
                self._stop.wait(POLL_S)
