"""The job state machine, written once, as data.

`JobState` values equal the Postgres enum labels of `job_state`; `TRANSITIONS` is the only list
of allowed moves, and `storage.jobs.transition` refuses any other pair before SQL runs. This is
a leaf module: it imports nothing from the project.
"""
from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    # queued: the row is committed and its price held, but the user already has as many
    # generations running as they may (jobs.max_active): it waits its turn, in id order. Its
    # JobActor moves it to created when no earlier queued job of the user waits and a slot is
    # free (storage.jobs.start_queued, under the user's wallet lock), or to cancelled when the
    # user cancels. A new leader adopts it like every unfinished job. (Labelled before created
    # in Postgres too: migration 0008 adds it BEFORE 'created'.)
    QUEUED = "queued"
    # created: the row is committed, createTask not called yet. The JobActor moves it to
    # submitting just before calling createTask (or to failed when it cannot be submitted, or
    # to cancelled when the user asked to stop: jobs.user_stop refuses the move to submitting).
    CREATED = "created"
    # submitting: createTask is in flight. The JobActor moves it on when createTask answers.
    # After a crash nobody knows whether KIE has the task, so it is never resubmitted: a callback
    # (whose URL names the job) confirmed by recordInfo settles it, or the deadline fails it.
    SUBMITTING = "submitting"
    # submitted: KIE accepted the task. The JobActor polls recordInfo and accepts callbacks;
    # only an explicit KIE failure or the model's deadline moves it to failed. KIE cannot stop
    # a task: when the user asks to stop waiting (jobs.user_stop = stop_waiting, which refuses
    # the moves to succeeded and failed), the JobActor moves it to abandoned instead.
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
    # cancelled: the user cancelled before the job was submitted (/cancel, the Cancel button),
    # while it was queued or created. Final; its hold is released.
    CANCELLED = "cancelled"
    # abandoned: the user stopped waiting for a task KIE already had (submitting or submitted).
    # Final; its hold is released, and whatever KIE still produces is never sent (a late
    # callback finds a final job). (Last: Postgres appends enum labels a migration adds.)
    ABANDONED = "abandoned"


S = JobState

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.QUEUED: frozenset({S.CREATED, S.CANCELLED, S.FAILED}),
    S.CREATED: frozenset({S.SUBMITTING, S.FAILED, S.CANCELLED}),
    S.SUBMITTING: frozenset({S.SUBMITTED, S.CREATED, S.SUCCEEDED, S.FAILED, S.ABANDONED}),
    S.SUBMITTED: frozenset({S.SUCCEEDED, S.FAILED, S.ABANDONED}),
    S.SUCCEEDED: frozenset({S.DELIVERING}),
    S.FAILED: frozenset({S.DELIVERING}),
    S.DELIVERING: frozenset({S.DELIVERED, S.DELIVERY_UNKNOWN, S.UNDELIVERABLE, S.DELIVERING}),
    S.DELIVERED: frozenset(),
    S.DELIVERY_UNKNOWN: frozenset(),
    S.UNDELIVERABLE: frozenset(),
    S.CANCELLED: frozenset(),
    S.ABANDONED: frozenset(),
}

TERMINAL: frozenset[JobState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)

# States whose outcome is known but not yet in the user's hands.
AWAITING_DELIVERY: frozenset[JobState] = frozenset({S.SUCCEEDED, S.FAILED, S.DELIVERING})

# A user's running generations: at most jobs.max_active of them at once; more wait as queued.
# Once a job's result is being delivered its generation is over and its slot is free.
RUNNING: frozenset[JobState] = frozenset({S.CREATED, S.SUBMITTING, S.SUBMITTED, S.SUCCEEDED, S.FAILED})

# Where the user may still stop a job: cancel it (not yet at KIE) or stop waiting (at KIE).
STOPPABLE: frozenset[JobState] = frozenset({S.QUEUED, S.CREATED, S.SUBMITTING, S.SUBMITTED})


class IllegalTransition(Exception):
    """A move that is not in TRANSITIONS: a bug in our code, never a race."""


def check_transition(current: JobState, new: JobState) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"{current.value} -> {new.value} is not an allowed transition")
