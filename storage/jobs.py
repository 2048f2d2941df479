"""The jobs table: insert, read, and the one fenced `transition` every state change goes through.

`transition` refuses a pair that is not in actors.job_state.TRANSITIONS before any SQL runs,
and returns `Moved` or `LostRace`; a caller must handle both. Two moves carry a guard of their
own and have their own function: `start_queued` (queued -> created, only when the job's turn
has come) and `create_job` (which may make the job queued). `request_stop` records what the
user asked (the row's user_stop), never a state. Nothing here decides what a job should do
next: that is the JobActor's business.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from actors.job_state import TERMINAL, JobState, check_transition
from actors.outcomes import Failure, FailureCode, JobOutcome, StopRequest
from storage.db import Database, json_param


@dataclass(frozen=True)
class Job:
    id: int
    request_key: str
    chat_id: int
    user_id: int
    lang: str
    model: str
    input: dict[str, Any]
    state: JobState
    outcome: str | None
    callback_token: str
    kie_task_id: str | None
    result_urls: list[str] | None
    failure_reason: str | None
    progress_message_id: int | None
    delivered_message_ids: list[int] | None
    claim_epoch: int | None
    claimed_at: dt.datetime | None
    epoch: int | None
    deadline_at: dt.datetime
    created_at: dt.datetime
    updated_at: dt.datetime
    submitted_at: dt.datetime | None
    finished_at: dt.datetime | None
    delivered_at: dt.datetime | None
    result_file_ids: list[str] | None = None
    result_text: str | None = None
    delivery_parts: list[dict[str, Any]] = field(default_factory=list)   # see DeliveryPart
    claim_released: bool = False
    failure_code: str | None = None
    failure_detail: str | None = None
    price: int = 0                          # minor units the user pays (0: free or unpriced)
    free: bool = False                      # a generation of the daily free tier
    kie_credits_quoted: Decimal | None = None     # what KIE should charge, by our price data
    kie_credits_consumed: Decimal | None = None   # what KIE said it charged (creditsConsumed)
    user_stop: str | None = None            # what the user asked (StopRequest), see `stop`
    max_active: int | None = None           # the user's running limit it was made under (None: none)
    started_at: dt.datetime | None = None   # when it began to generate (left the queue)
    expected_s: float | None = None         # the model's usual duration when it was made (median)
    expected_p90_s: float | None = None     # …and its 90th percentile
    request_message_id: int | None = None   # the message that asked for it (a group's result replies)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        fields = {k: v for k, v in row.items() if k in _JOB_FIELDS}
        return cls(**{**fields, "state": JobState(row["state"])})

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.outcome == JobOutcome.SUCCESS

    @property
    def stop(self) -> StopRequest | None:
        """What the user asked to stop (None: nothing)."""
        return StopRequest(self.user_stop) if self.user_stop else None

    @property
    def generating_since(self) -> dt.datetime:
        """When it began to generate: it left the queue then (rows from before: created)."""
        return self.started_at or self.created_at

    @property
    def failure(self) -> Failure | None:
        """Why the job failed; None for rows from before failure codes (see failure_reason)."""
        if self.failure_code is None:
            return None
        try:
            return Failure(FailureCode(self.failure_code), self.failure_detail or "")
        except ValueError:
            return Failure(FailureCode.INTERNAL, self.failure_detail or "")


_JOB_FIELDS = frozenset(Job.__dataclass_fields__)


@dataclass(frozen=True)
class NewJob:
    request_key: str
    chat_id: int
    user_id: int
    lang: str
    model: str
    input: dict[str, Any]
    deadline_s: int
    progress_message_id: int | None = None
    price: int | None = 0           # minor units, held from the user's available balance
                                    # (None: not for sale, free generations only)
    free_per_day: int = 0           # free generations of this model per user per day
    kie_credits: Decimal | None = None
    epoch: int | None = None        # the intake's leader epoch: a deposed intake creates nothing
    agreed: int | None = None       # the most the user agreed to pay (None: the price)
    max_active: int | None = None   # the user's generations that may run at once (None: no limit);
                                    # beyond it the job is queued, up to `queue_length` waiting
    queue_length: int = 0
    expected: Durations | None = None   # the model's usual duration, shown while it runs
    request_message_id: int | None = None   # the user's message that asked for it, in `chat_id`
                                            # (None: a button started it with nothing to reply to)


@dataclass(frozen=True)
class Created:
    """The job is committed, its price held (or free). `free_left`: free generations of this
    model still left today (None when the model has no free tier)."""

    job: Job
    available: int
    free_left: int | None


@dataclass(frozen=True)
class Existing:
    """The request key made this job before (a redelivered update, a second tap)."""

    job: Job


@dataclass(frozen=True)
class Insufficient:
    """The available balance is below the price; nothing was written."""

    price: int
    available: int


@dataclass(frozen=True)
class Repriced:
    """No free generation is left and the price is above what the user agreed to (or there is
    no price: `price` None); nothing was written (the caller asks the user to confirm the price)."""

    price: int | None


@dataclass(frozen=True)
class QueueFull:
    """The user's queue holds `waiting` jobs already, its length: nothing was written."""

    waiting: int


@dataclass(frozen=True)
class NotLeading:
    """The epoch is no longer current: this instance must not create jobs."""


JobCreation = Created | Existing | Insufficient | Repriced | QueueFull | NotLeading


@dataclass(frozen=True)
class Durations:
    """A model's usual duration from request to result over its latest deliveries, in seconds."""

    median_s: float
    p90_s: float
    samples: int


@dataclass(frozen=True)
class LaunchView:
    """What starting a job needs to know: the user's running and queued generations, and the
    model's usual duration (None: fewer than MIN_DURATION_SAMPLES measured)."""

    running: int
    waiting: int
    expected: Durations | None


@dataclass(frozen=True)
class Moved:
    job: Job
    queue_waiting: bool = False     # the move freed a slot (or left the queue) and jobs are queued


@dataclass(frozen=True)
class LostRace:
    """Zero rows changed: the state moved on, or `epoch` is no longer the current term."""

    job_id: int
    expected: JobState
    epoch: int


TransitionResult = Moved | LostRace


@dataclass(frozen=True)
class Started:
    """The queued job's turn came: it is `created` now. `others_waiting`: jobs queued behind it."""

    job: Job
    others_waiting: bool


@dataclass(frozen=True)
class Waiting:
    """Still queued: `position` 1 is next."""

    job: Job
    position: int


@dataclass(frozen=True)
class NotQueued:
    """The job is not (or no longer) waiting its turn, or the user asked to stop it: the row now."""

    job: Job


StartResult = Started | Waiting | NotQueued | LostRace

DURATION_SAMPLES = 20           # a model's usual duration: over its latest this many deliveries
MIN_DURATION_SAMPLES = 3        # fewer measured: no usual duration yet


def create_job(db: Database, new: NewJob) -> JobCreation:
    """Insert a job (queued when the user's running limit is reached) and hold its price, in one
    transaction (committed on return); with a known request_key return the existing job. See
    create_job_with_hold in migration 0009."""
    expected = new.expected
    row = db.one(
        "insert_job", request_key=new.request_key, chat_id=new.chat_id, user_id=new.user_id,
        lang=new.lang, model=new.model, input=json_param(new.input),
        callback_token=secrets.token_urlsafe(24), progress_message_id=new.progress_message_id,
        deadline_s=new.deadline_s, price=new.price, free_per_day=new.free_per_day,
        kie_credits=new.kie_credits, epoch=new.epoch, agreed=new.agreed, max_active=new.max_active,
        queue_length=new.queue_length, expected_s=expected.median_s if expected else None,
        expected_p90_s=expected.p90_s if expected else None, request_message_id=new.request_message_id)
    assert row is not None, "create_job_with_hold returns one row"
    match row["status"]:
        case "created":
            return Created(Job.from_row(row), int(row["available"]), row["free_left"])
        case "exists":
            return Existing(Job.from_row(row))
        case "insufficient":
            return Insufficient(new.price or 0, int(row["available"]))
        case "repriced":
            return Repriced(new.price)
        case "queue_full":
            return QueueFull(int(row["waiting"]))
        case _:
            return NotLeading()


def launch_view(db: Database, user_id: int, model: str) -> LaunchView:
    """The user's running and queued generations and the model's usual duration, in one read."""
    row = db.one("launch_view", user_id=user_id, model=model, samples=DURATION_SAMPLES)
    assert row is not None, "launch_view returns one row"
    return LaunchView(int(row["running"]), int(row["waiting"]), _durations(row))


def model_durations(db: Database, model: str) -> Durations | None:
    """The model's usual duration over its latest deliveries (None: too few measured yet)."""
    return _durations(db.one("model_durations", model=model, samples=DURATION_SAMPLES) or {})


def _durations(row: dict[str, Any]) -> Durations | None:
    samples = int(row.get("samples") or 0)
    if samples < MIN_DURATION_SAMPLES or row.get("median_s") is None or row.get("p90_s") is None:
        return None
    return Durations(float(row["median_s"]), float(row["p90_s"]), samples)


def created(creation: JobCreation) -> Job:
    """The job a creation made or found, for callers that never expect a refusal (benchmarks,
    test factories: price 0, no epoch)."""
    if isinstance(creation, (Created, Existing)):
        return creation.job
    raise AssertionError(f"the job was not created: {creation}")


def find_job(db: Database, request_key: str) -> Job | None:
    row = db.one("job_by_request_key", request_key=request_key)
    return Job.from_row(row) if row else None


def get_job(db: Database, job_id: int) -> Job | None:
    row = db.one("get_job", job_id=job_id)
    return Job.from_row(row) if row else None


def transition(db: Database, job_id: int, expected: JobState, new: JobState, epoch: int, *,
               outcome: JobOutcome | None = None, kie_task_id: str | None = None,
               result_urls: list[str] | None = None, failure: Failure | None = None,
               delivered_message_ids: list[int] | None = None, result_file_ids: list[str] | None = None,
               result_text: str | None = None, expected_claim_epoch: int | None = None,
               delivery_parts: list[dict[str, Any]] | None = None, claim_fenced: bool = False,
               kie_credits_consumed: Decimal | None = None) -> TransitionResult:
    """One fenced conditional UPDATE from `expected` to `new` under `epoch`.

    `claim_fenced`: a move out of `delivering` by the epoch holding the delivery claim, allowed
    even after that epoch's term ended (it records what that claim's own send did)."""
    check_transition(expected, new)
    row = db.one(
        "transition_job", job_id=job_id, expected=expected.value, new=new.value, epoch=epoch,
        outcome=JobOutcome(outcome).value if outcome else None, kie_task_id=kie_task_id,
        result_urls=json_param(result_urls) if result_urls is not None else None,
        failure_reason=None,
        failure_code=failure.code.value if failure else None,
        failure_detail=failure.detail if failure else None,
        delivered_message_ids=json_param(delivered_message_ids) if delivered_message_ids is not None else None,
        result_file_ids=json_param(result_file_ids) if result_file_ids is not None else None,
        result_text=result_text, expected_claim_epoch=expected_claim_epoch,
        delivery_parts=json_param(delivery_parts) if delivery_parts is not None else None,
        claim_fenced=claim_fenced, kie_credits_consumed=kie_credits_consumed)
    if row is None:
        return LostRace(job_id, expected, epoch)
    return Moved(Job.from_row(row), bool(row.get("queue_waiting")))


def start_queued(db: Database, job_id: int, epoch: int) -> StartResult:
    """queued -> created when the job's turn has come (no earlier job of its user queued, fewer
    than its max_active running), under the user's lock and fenced by `epoch`; else where it
    stands (see start_queued_job in migration 0009)."""
    check_transition(JobState.QUEUED, JobState.CREATED)
    row = db.one("start_queued_job", job_id=job_id, epoch=epoch)
    assert row is not None, "start_queued_job returns one row"
    match row["status"]:
        case "started":
            return Started(Job.from_row(row), bool(row["others_waiting"]))
        case "waiting":
            return Waiting(Job.from_row(row), int(row["job_position"]))
        case "not_queued":
            return NotQueued(Job.from_row(row))
        case _:
            return LostRace(job_id, JobState.QUEUED, epoch)


def request_stop(db: Database, job_id: int, kind: StopRequest, epoch: int | None) -> Job | None:
    """Record that the user asked to stop the job (the JobActor acts on it): kept while the job
    can still be stopped, and stop_waiting is never taken back. The row as it is now, or None
    when `epoch` is not current (or there is no such job)."""
    row = db.one("request_job_stop", job_id=job_id, kind=kind.value, epoch=epoch)
    return Job.from_row(row) if row else None


def queued_job_ids(db: Database, user_id: int) -> list[int]:
    """The user's queued jobs, first in line first."""
    return [int(r["id"]) for r in db.all("queued_job_ids_for_user", user_id=user_id)]


def record_delivery_parts(db: Database, job_id: int, claim_epoch: int, parts: list[dict[str, Any]], *,
                          release: bool = False) -> Job | None:
    """Record the parts sent so far under `claim_epoch`'s claim (and release it); None when
    the claim is no longer that epoch's."""
    row = db.one("record_delivery_parts", job_id=job_id, epoch=claim_epoch, parts=json_param(parts),
                 release=release)
    return Job.from_row(row) if row else None


def unfinished_job_ids(db: Database) -> list[int]:
    return [r["id"] for r in db.all("unfinished_job_ids")]


def unfinished_jobs(db: Database) -> list[Job]:
    """Whole rows, so that adopting thousands of jobs is one query, not one per JobActor."""
    return [Job.from_row(r) for r in db.all("unfinished_jobs")]


def counts_by_state(db: Database) -> dict[str, int]:
    return {r["state"]: int(r["n"]) for r in db.all("job_counts_by_state")}


def database_gauges(db: Database) -> tuple[dict[str, int], int, int, float]:
    """(unfinished jobs by state, callback backlog, update backlog, oldest unfinished job age in s).

    Only unfinished states are counted, each one present (0 when empty), so that a scrape costs
    O(unfinished jobs); finished jobs are counted as they finish, by kiebot_jobs_finished_total."""
    row = db.one("database_gauges") or {}
    counted = row.get("jobs_by_state") or {}
    by_state = {s.value: int(counted.get(s.value, 0)) for s in JobState if s not in TERMINAL}
    return (by_state, int(row.get("callback_backlog", 0)), int(row.get("update_backlog", 0)),
            float(row.get("oldest_age_s", 0.0)))


def active_jobs(db: Database, user_id: int) -> list[Job]:
    """The user's queued and generating jobs, oldest first (a job being delivered is done)."""
    return [Job.from_row(r) for r in db.all("active_jobs_for_user", user_id=user_id)]


def reconcile_counts(db: Database, epoch: int, grace_s: float) -> tuple[int, int]:
    """(unfinished jobs past their deadline, older epochs' claims past the grace period)."""
    row = db.one("reconcile_counts", epoch=epoch, grace_s=grace_s) or {}
    return int(row.get("past_deadline", 0)), int(row.get("stale_claims", 0))


def recent_jobs(db: Database, user_id: int, limit: int = 10) -> list[Job]:
    return [Job.from_row(r) for r in db.all("recent_jobs_for_user", user_id=user_id, limit=limit)]


def job_events(db: Database, job_id: int) -> list[dict[str, Any]]:
    return db.all("job_events", job_id=job_id)
