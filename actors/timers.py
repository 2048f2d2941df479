"""One timer thread for every actor: `later(delay, ref, message)` tells `message` when due.

Pykka has no timers, and a thread per pending poll would double the thread count; a heap and
one Condition serve them all. A message for an actor that has stopped is dropped.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any

import pykka


class Timers:
    def __init__(self, name: str = "kiebot-timers") -> None:
        self._heap: list[tuple[float, int, pykka.ActorRef[Any], Any]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def later(self, delay: float, ref: pykka.ActorRef[Any], message: Any) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), ref, message))
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, ref, message = heapq.heappop(self._heap)
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass
