"""WorkSlots: how many JobActors may run a message at the same time.

Every JobActor has its own thread (pykka), and with thousands of jobs in flight thousands of
them wake together — when a leader adopts them all, or when their tasks finish together and
the callbacks arrive at once. In one interpreter they then queue for the GIL and for the
database pool, the LeaderActor's lock check waits behind them, its watchdog fires, and the
leader steps down for no fault of its own. A JobActor therefore takes a slot for each message
it handles and gives it back while it only waits on the outside world (a Telegram send, which
FloodControl may hold back for seconds; createTask, which KIE's account limit may pace):
threads waiting for a slot or for an answer cost no CPU.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from config.settings import DEFAULT_JOB_SLOTS


class WorkSlots:
    def __init__(self, size: int = DEFAULT_JOB_SLOTS) -> None:
        if size < 1:
            raise ValueError("WorkSlots needs at least one slot")
        self.size = size
        self._free = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._busy = 0
        self._waiting = 0
        self.most_busy = 0              # the high-water mark, for tests and the benchmarks
        self.closed = False             # the epoch ended: messages still waiting are dropped
        self._held = threading.local()

    def close(self) -> None:
        """The supervisor is stopping: whoever gets a slot from now on should just finish."""
        self.closed = True

    @contextmanager
    def held(self) -> Iterator[None]:
        """Run the body in a slot (one per thread: a JobActor handles one message at a time)."""
        self._take()
        self._held.on = True
        try:
            yield
        finally:
            self._held.on = False
            self._give()

    @contextmanager
    def outside(self) -> Iterator[None]:
        """Give the slot back while the body waits on the outside world; take one again after."""
        if not getattr(self._held, "on", False):
            yield
            return
        self._held.on = False
        self._give()
        try:
            yield
        finally:
            self._take()
            self._held.on = True

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def waiting(self) -> int:
        return self._waiting

    def _take(self) -> None:
        with self._lock:
            self._waiting += 1
        self._free.acquire()
        with self._lock:
            self._waiting -= 1
            self._busy += 1
            self.most_busy = max(self.most_busy, self._busy)

    def _give(self) -> None:
        with self._lock:
            self._busy -= 1
        self._free.release()
