"""What a job came to, as data the actors decide and the bot presents: the outcome, and for a
failure a code plus a detail (never a sentence in some language). The bot turns a `Failure`
into words in the user's language when it tells them. A leaf module, like actors/job_state.py.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class JobOutcome(str, enum.Enum):
    """jobs.outcome: set when the outcome is known (succeeded / failed)."""

    SUCCESS = "success"
    FAILURE = "failure"


class FailureCode(str, enum.Enum):
    """jobs.failure_code: why a job failed, in the bot's own vocabulary."""

    KIE_FAILED = "kie_failed"           # KIE said the generation failed; detail: its message
    DEADLINE = "deadline"               # it took too long; detail: the deadline in minutes
    UNAVAILABLE = "unavailable"         # the KIE account needs an operator (key, sub-key cap, …)
    NO_KIE_CREDIT = "no_kie_credit"     # the operator's KIE balance is short (402, or known low
                                        # before createTask); detail: "402" or "balance"
    UPLOAD_REFUSED = "upload_refused"   # Telegram would not give us the file the user sent
    INTERNAL = "internal"               # our own fault (a JobActor kept crashing)


@dataclass(frozen=True)
class Failure:
    code: FailureCode
    detail: str = ""


class StopRequest(str, enum.Enum):
    """jobs.user_stop: what the user asked, kept in the row so that any leader honours it."""

    CANCEL = "cancel"               # /cancel or the Cancel button: end it if KIE does not have it
                                    # yet, else offer to stop waiting (KIE cannot stop a task)
    STOP_WAITING = "stop_waiting"   # the Stop waiting button: end it whatever KIE still does


class ProgressStage(enum.Enum):
    """What the progress message shows."""

    GENERATING = "generating"   # with the Cancel button, or the stop-waiting offer (user_stop)
    DONE = "done"               # the result is in the chat: the progress message goes away
    FAILED = "failed"           # the failure notice, in place (never a new message)
    CANCELLED = "cancelled"     # cancelled before KIE had it
    ABANDONED = "abandoned"     # the user stopped waiting; a late result is never sent
