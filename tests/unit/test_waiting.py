"""The one polling loop (sim.cluster.wait_until) that the tests, the demo and the benchmarks share."""
from __future__ import annotations

import pytest

from sim import cluster
from tests.support.waiting import wait_until


def test_wait_until_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "", "ready", "later"])

    assert cluster.wait_until(lambda: next(answers), timeout=5, interval=0) == "ready"


def test_a_timeout_raises_the_requested_error_naming_the_condition() -> None:
    with pytest.raises(KeyError, match="the moon to rise"):
        cluster.wait_until(lambda: False, timeout=0, what="the moon to rise", error=KeyError)


def test_the_demo_and_benchmarks_get_a_timeout_error_by_default() -> None:
    with pytest.raises(TimeoutError, match="waiting for: nothing_happens"):
        def nothing_happens() -> bool:
            return False
        cluster.wait_until(nothing_happens, timeout=0)


def test_tests_get_an_assertion_error_naming_the_condition() -> None:
    with pytest.raises(AssertionError, match="waiting for: the leader"):
        wait_until(lambda: None, timeout=0, what="the leader")
