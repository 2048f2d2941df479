"""Every message the actors exchange: small frozen dataclasses named by intent."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from actors.outcomes import ProgressStage


# --- to a JobActor --------------------------------------------------------------------------
@dataclass(frozen=True)
class Resume:
    """Look at the persisted row and do the next thing its state calls for."""


@dataclass(frozen=True)
class PollDue:
    """Time to ask KIE's recordInfo; `generation` drops stale timer ticks."""

    generation: int


@dataclass(frozen=True)
class RetrySend:
    """A send that certainly did not happen (429, refused) may go out again under our claim."""


@dataclass(frozen=True)
class ShowFinalAgain:
    """Show the job's final progress stage once more: a deposed leader's progress edit that
    was on the wire when it stepped down may have landed over it."""

    stage: ProgressStage


@dataclass(frozen=True)
class Cancel:
    """The user asked to stop the job (jobs.user_stop; none recorded yet counts as a cancel):
    end it if KIE does not have it yet, else offer to stop waiting, or stop waiting."""


@dataclass(frozen=True)
class TryStart:
    """The user's queue moved: a queued job looks whether its turn has come (or its place)."""


@dataclass(frozen=True)
class CancelJob:
    """To the supervisor: route a Cancel to this job's actor."""

    job_id: int


@dataclass(frozen=True)
class ProgressDue:
    """Time to refresh the progress message (state and elapsed time)."""


@dataclass(frozen=True)
class CallbacksPending:
    """The inbox holds callbacks for this job; read and handle them. Told only after the
    callback was stored, so an inbox read that began after `at` has already seen it."""

    at: float = field(default_factory=time.monotonic)


# --- to the JobSupervisor -------------------------------------------------------------------
@dataclass(frozen=True)
class JobCreated:
    job_id: int


@dataclass(frozen=True)
class CallbackStored:
    job_id: int


@dataclass(frozen=True)
class QueueMoved:
    """A job of this user left the running or queued ones: its queued jobs look again (TryStart)."""

    user_id: int


@dataclass(frozen=True)
class Sweep:
    """Periodic: adopt jobs and callbacks stored by other instances or missed notifications."""


@dataclass(frozen=True)
class ChildFinished:
    job_id: int


@dataclass(frozen=True)
class ChildFailed:
    job_id: int
    error: str
    transient: bool = False     # the database was away: not the job's fault, no restart counted


@dataclass(frozen=True)
class Respawn:
    job_id: int


# --- to the LeaderActor ---------------------------------------------------------------------
@dataclass(frozen=True)
class Tick:
    """Check the lock (active) or try to take it (passive)."""


@dataclass(frozen=True)
class Resign:
    """Graceful shutdown: stop work, release the lock, wake the standbys."""


@dataclass(frozen=True)
class ToSupervisor:
    """Forward `message` to the supervisor if this instance leads; drop it otherwise."""

    message: Any
