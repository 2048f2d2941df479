"""Wait on conditions, never on time: the one polling helper every test uses."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, what: str | None = None,
               interval: float = 0.01) -> T:
    """Poll `predicate` every `interval` s until it returns a truthy value, and return it.

    Fails with the condition's name (or the predicate's) when `timeout` passes first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for: {name}")
        time.sleep(interval)
