"""Wait on conditions, never on time: the one polling helper every test uses (and `the_job`,
which waits with it for a job to reach a state).

The loop is `sim.cluster.wait_until`, shared with the demo and the benchmarks; tests poll every
10 ms and fail with an AssertionError that names the condition.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from actors.job_state import JobState
from sim import cluster
from storage.db import Database
from storage.jobs import Job, get_job

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, what: str | None = None,
               interval: float = 0.01) -> T:
    """Poll `predicate` every `interval` s until it returns a truthy value, and return it.

    Fails with the condition's name (or the predicate's) when `timeout` passes first.
    """
    return cluster.wait_until(predicate, timeout, what, interval, error=AssertionError)


def the_job(db: Database, job_id: int, *states: JobState, timeout: float = 30) -> Job:
    """Wait until job `job_id` is in one of `states`, and return it."""
    def reached() -> Job | None:
        job = get_job(db, job_id)
        return job if job is not None and job.state in states else None
    job = wait_until(reached, timeout=timeout, what=f"job {job_id} in {[s.value for s in states]}")
    assert job is not None
    return job
