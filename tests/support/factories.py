"""Factories that build test data through the storage code, never with raw SQL."""
from __future__ import annotations

import itertools
from typing import Any

from actors.job_state import JobState
from actors.outcomes import Failure, FailureCode, JobOutcome
from storage.db import Database
from storage.jobs import Job, NewJob, create_job, created, get_job, transition
from storage.leader_term import LockConnection

_keys = itertools.count(1)

# The shortest path from created to each state, for factories.
PATH_TO: dict[JobState, list[tuple[JobState, dict[str, Any]]]] = {
    JobState.CREATED: [],
    JobState.SUBMITTING: [(JobState.SUBMITTING, {})],
    JobState.SUBMITTED: [(JobState.SUBMITTING, {}), (JobState.SUBMITTED, {"kie_task_id": None})],
    JobState.SUCCEEDED: [(JobState.SUBMITTING, {}), (JobState.SUBMITTED, {"kie_task_id": None}),
                         (JobState.SUCCEEDED, {"outcome": JobOutcome.SUCCESS, "result_urls": ["http://127.0.0.1/x.png"]})],
    JobState.FAILED: [(JobState.SUBMITTING, {}), (JobState.SUBMITTED, {"kie_task_id": None}),
                      (JobState.FAILED, {"outcome": JobOutcome.FAILURE,
                                                          "failure": Failure(FailureCode.KIE_FAILED, "boom")})],
}
PATH_TO[JobState.CANCELLED] = [(JobState.CANCELLED, {})]
PATH_TO[JobState.QUEUED] = []          # made queued (make_job: a user limit of none running)
PATH_TO[JobState.ABANDONED] = PATH_TO[JobState.SUBMITTED] + [(JobState.ABANDONED, {})]
PATH_TO[JobState.DELIVERING] = PATH_TO[JobState.SUCCEEDED] + [(JobState.DELIVERING, {})]
PATH_TO[JobState.DELIVERED] = PATH_TO[JobState.DELIVERING] + [(JobState.DELIVERED, {"delivered_message_ids": [1]})]
PATH_TO[JobState.DELIVERY_UNKNOWN] = PATH_TO[JobState.DELIVERING] + [(JobState.DELIVERY_UNKNOWN, {})]
PATH_TO[JobState.UNDELIVERABLE] = PATH_TO[JobState.DELIVERING] + [(JobState.UNDELIVERABLE, {})]


def take_epoch(database_url: str) -> int:
    """Bump the epoch as a new leader would and return it."""
    conn = LockConnection(database_url, key=1)
    try:
        return conn.bump_epoch("tests")
    finally:
        conn.close()


def make_job(db: Database, epoch: int, state: JobState = JobState.CREATED, *, chat_id: int = 1001,
             model: str = "z-image", prompt: str = "a red fox", deadline_s: int = 900, **extra: Any) -> Job:
    n = next(_keys)
    if state is JobState.QUEUED:
        extra = {"max_active": 0, "queue_length": 1_000_000, **extra}
    job = created(create_job(db, NewJob(request_key=f"test:{n}", chat_id=chat_id, user_id=chat_id, lang="en",
                                   model=model, input={"prompt": prompt, "aspect_ratio": "1:1"},
                                   deadline_s=deadline_s, **extra)))
    for new, fields in PATH_TO[state]:
        if "kie_task_id" in fields:
            fields = {**fields, "kie_task_id": f"{n:032x}"}
        result = transition(db, job.id, job.state, new, epoch, **fields)
        job = result.job  # type: ignore[union-attr]
    fresh = get_job(db, job.id)
    assert fresh is not None
    return fresh
