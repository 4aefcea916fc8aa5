"""Every task the cloud link starts has an owner: it is kept, its crash is logged, stop cancels it.

``asyncio`` keeps only a weak reference to a task, so a task started with
``ensure_future`` and forgotten can be collected mid-flight, its exception is reported
(if ever) only when it is garbage-collected, and nothing cancels it when the link stops.
A ``TaskOwner`` holds each task until it ends, logs an exception the moment the task
dies of it, and ``stop()`` cancels and awaits whatever is left, so a stopped link leaves
no task pending.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

LOGGER = logging.getLogger(__name__)


class TaskOwner:
    """The tasks of one component (``name`` is used in task names and log lines)."""

    def __init__(self, name: str):
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any] | Awaitable[Any], label: str) -> asyncio.Task[Any]:
        """Run ``work`` as a task this owner keeps until it ends (the loop must be running)."""
        task = asyncio.ensure_future(work)
        task.set_name(f"{self.name}-{label}")
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def pending(self) -> list[asyncio.Task[Any]]:
        """The tasks not yet done (for tests and the console)."""
        return [t for t in self._tasks if not t.done()]

    async def stop(self) -> None:
        """Cancel every task still running and wait for each to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            LOGGER.error("task %s crashed", task.get_name(), exc_info=exc)
