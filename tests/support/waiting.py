"""Wait on conditions, never on time: the one polling helper every test uses.

The loop is `sim.cluster.wait_until`, shared with the demo and the benchmarks; tests poll every
10 ms and fail with an AssertionError that names the condition.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sim import cluster

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, what: str | None = None,
               interval: float = 0.01) -> T:
    """Poll `predicate` every `interval` s until it returns a truthy value, and return it.

    Fails with the condition's name (or the predicate's) when `timeout` passes first.
    """
    return cluster.wait_until(predicate, timeout, what, interval, error=AssertionError)
