"""The job state machine, written once, as data.

`JobState` values equal the Postgres enum labels of `job_state`; `TRANSITIONS` is the only list
of allowed moves, and `storage.jobs.transition` refuses any other pair before SQL runs. This is
a leaf module: it imports nothing from the project.
"""
from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    # created: the row is committed, createTask not called yet. The JobActor moves it to
    # submitting just before calling createTask (or to failed when it cannot be submitted).
    CREATED = "created"
    # submitting: createTask is in flight. The JobActor moves it on when createTask answers.
    # After a crash nobody knows whether KIE has the task, so it is never resubmitted: a callback
    # (whose URL names the job) confirmed by recordInfo settles it, or the deadline fails it.
    SUBMITTING = "submitting"
    # submitted: KIE accepted the task. The JobActor polls recordInfo and accepts callbacks;
    # only an explicit KIE failure or the model's deadline moves it to failed.
    SUBMITTED = "submitted"
    # succeeded / failed: the outcome is known and stored; the JobActor claims its delivery.
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # delivering: claimed for sending by the epoch in claim_epoch. The JobActor records the
    # result; a newer epoch may re-claim it after the grace period (DELIVERY_POLICY decides).
    DELIVERING = "delivering"
    # delivered: the user has the result or the failure notice. Final.
    DELIVERED = "delivered"
    # delivery_unknown: a send whose outcome is unknown, parked under at_most_once. Final.
    DELIVERY_UNKNOWN = "delivery_unknown"
    # undeliverable: Telegram refused for good (bot blocked, chat gone). Final.
    UNDELIVERABLE = "undeliverable"
    # cancelled: the user cancelled before the job was submitted (/cancel). Final.
    # (Last, because Postgres appends enum labels added by a migration.)
    CANCELLED = "cancelled"


S = JobState

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.CREATED: frozenset({S.SUBMITTING, S.FAILED, S.CANCELLED}),
    S.SUBMITTING: frozenset({S.SUBMITTED, S.CREATED, S.SUCCEEDED, S.FAILED}),
    S.SUBMITTED: frozenset({S.SUCCEEDED, S.FAILED}),
    S.SUCCEEDED: frozenset({S.DELIVERING}),
    S.FAILED: frozenset({S.DELIVERING}),
    S.DELIVERING: frozenset({S.DELIVERED, S.DELIVERY_UNKNOWN, S.UNDELIVERABLE, S.DELIVERING}),
    S.DELIVERED: frozenset(),
    S.DELIVERY_UNKNOWN: frozenset(),
    S.UNDELIVERABLE: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL: frozenset[JobState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

# States whose outcome is known but not yet in the user's hands.
AWAITING_DELIVERY: frozenset[JobState] = frozenset({S.SUCCEEDED, S.FAILED, S.DELIVERING})


class IllegalTransition(Exception):
    """A move that is not in TRANSITIONS: a bug in our code, never a race."""


def check_transition(current: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current.value} -> {new.value} is not an allowed transition")
