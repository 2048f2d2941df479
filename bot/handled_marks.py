"""Handled marks: the intake writes "processed" for handled updates in batches.

An update is marked processed (fenced by the leader epoch) only after its handler finished.
Writing each mark in a transaction of its own puts one storage call per update behind the
handlers' own storage calls, so in a burst (a thousand Stars payments at once) the marks, and
the lane slots waiting for them, fall behind the handlers. Here a handled update is noted at
once and written with the others noted meanwhile, in one transaction per batch.

Until its batch is written an update counts as taken (`unwritten`), so the intake's sweep of the
store does not hand it out again. A batch that fails to be written stays noted and is written
with the next one; an update whose mark is lost with the process is handled again by the next
leader, like one whose handler was cut short.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

MAX_BATCH = 500         # marks written in one transaction

Write = Callable[[list[int]], Awaitable[None]]


class HandledMarks:
    """Handled update ids waiting to be marked processed, and the task that writes them."""

    def __init__(self, write: Write, max_batch: int = MAX_BATCH) -> None:
        # `write` marks one batch; it raises when it cannot (the database is gone, or the epoch
        # has ended) and the batch is noted again.
        self._write = write
        self._max_batch = max_batch
        self._noted: list[int] = []
        self._writing: list[int] = []
        self._ready = asyncio.Event()

    def note(self, update_id: int) -> None:
        """The handler of `update_id` finished: mark it with the next batch."""
        self._noted.append(update_id)
        self._ready.set()

    def unwritten(self) -> list[int]:
        """Handled updates whose mark is not written yet (the sweep must not take them again)."""
        return self._writing + self._noted

    async def run(self) -> None:
        """Write marks as they come, until cancelled or a write fails (the error is raised)."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            await self.flush()

    async def flush(self) -> None:
        """Write every noted mark now, a batch at a time."""
        while self._noted:
            batch, self._noted = self._noted[:self._max_batch], self._noted[self._max_batch:]
            self._writing = batch
            try:
                await self._write(batch)
            except BaseException:
                self._noted[:0] = batch
                raise
            finally:
                self._writing = []
