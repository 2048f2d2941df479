"""JobActor: one job, one mailbox: wait its turn, submit to KIE, poll / accept callbacks,
deliver, finish.

Every message for a job (resume, poll tick, callbacks, the user's stop) is handled here one at a
time, so the outcome is decided and delivered exactly once. Every state change is a fenced
`storage.jobs.transition`; a lost race means another epoch leads, and the actor stops, unless
the move was refused by what the user asked (jobs.user_stop): then it ends the job as asked.
A queued job starts when its turn comes (`storage.jobs.start_queued`); a job that frees one of
its user's slots tells the supervisor, which wakes the user's queued jobs.
Runs on its own pykka thread; blocking calls to KIE and Telegram are fine here.
"""
from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import pykka

from actors.decisions import Failed, KeepWaiting, Next, Succeeded, decide_after_record, next_poll_delay
from actors.job_state import STOPPABLE
from actors.job_state import JobState as S
from actors.messages import (
    CallbacksPending,
    Cancel,
    ChildFailed,
    ChildFinished,
    PollDue,
    ProgressDue,
    QueueMoved,
    Resume,
    RetrySend,
    ShowFinalAgain,
    TryStart,
)
from actors.outcomes import Failure, FailureCode, JobOutcome, ProgressStage, StopRequest
from actors.ports import OperatorAlert, OperatorPager, Sender, SendError, SendOutcome, Sent, StarsAccount
from actors.retention import RetentionConfig
from actors.timers import Timers
from actors.treasurer import KieBalance, TreasuryConfig, page
from actors.work_slots import WorkSlots
from config.catalogue import Catalogue
from config.settings import DeliveryPolicy
from faults import crashpoint
from kie.client import KieClient
from kie.errors import KieAlert, KieJobFailed, KieNoCredit, KieRetryLater, KieSubmitOutcomeUnknown
from kie.records import parse_record, task_id_of
from kie.uploads import TelegramFile
from storage import inbox
from storage.db import Database, DatabaseUnavailable
from storage.jobs import (
    Job,
    LostRace,
    Moved,
    NotQueued,
    Started,
    Waiting,
    get_job,
    record_delivery_parts,
    request_stop,
    start_queued,
    transition,
)
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

SUBMIT_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)
SEND_RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)
RECORD_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 10.0, 10.0, 10.0, 10.0)   # ~59 s: a managed failover
PROGRESS_PRIVATE_S = 5.0
CALLBACK_POLL_FACTOR = 5.0      # poll this much less often when KIE calls back (10 recordInfo/s per key)
PROGRESS_GROUP_S = 15.0
CALLBACK_RECHECK_S = 5.0        # a callback kept for a `submitting` job is confirmed again this often
CLAIM_RECHECK_S = 1.0           # another epoch's open claim is read again this often
SHOW_FINAL_AGAIN_S = 30.0       # longer than a stepping-down instance drains its requests (25 s)


class UploadRefused(Exception):
    """Telegram will not give us a file the user sent (getFile refused): asking again won't help."""


@dataclass(frozen=True)
class JobContext:
    """Everything a JobActor needs, handed down by the supervisor for one epoch."""

    db: Database
    kie: KieClient
    sender: Sender
    timers: Timers
    catalogue: Catalogue
    metrics: Metrics
    epoch: int
    public_url: str | None
    confirm_callbacks: bool
    hmac_required: bool
    delivery_policy: DeliveryPolicy
    poll_base_s: float
    delivery_grace_s: float
    slots: WorkSlots = field(default_factory=WorkSlots)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    kie_balance: KieBalance = field(default_factory=KieBalance)
    pager: OperatorPager | None = None          # messages to ADMIN_IDS
    stars: StarsAccount | None = None           # refunds and reconciliation (actors/treasurer.py)
    treasury: TreasuryConfig = field(default_factory=TreasuryConfig)

    def callback_url(self, job: Job) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url}/kie/callback/{job.id}?token={job.callback_token}"


class JobActor(pykka.ThreadingActor):
    def __init__(self, job_id: int, ctx: JobContext, supervisor: pykka.ActorRef[Any], *,
                 adopted: Job | None = None, callbacks_waiting: bool = True) -> None:
        """`adopted`: the row as the supervisor read it for this epoch, so that adopting
        thousands of jobs is one query; `callbacks_waiting=False`: the supervisor saw none."""
        super().__init__()
        self.job_id = job_id
        self.ctx = ctx
        self.supervisor = supervisor
        self.job: Job | None = None
        self._adopted = adopted
        self._callbacks_waiting = callbacks_waiting
        self._poll_generation = 0
        self._poll_attempt = 0
        self._submit_attempt = 0
        self._send_attempt = 0
        self._finished = False
        self._progress_shown: ProgressStage | None = None
        self._callback_at: dt.datetime | None = None
        self._uncertainty_counted = False
        self._inbox_read_at = float("-inf")
        self._inherited = False         # an earlier epoch worked on this job (see ShowFinalAgain)
        self._foreign_claim_seen: dt.datetime | None = None   # another epoch's open claim, first seen
        self._claimed = False           # this actor holds the job's delivery claim
        self._claim_clean = False       # …and nothing of it is on the wire or unrecorded
        self._queue_position: int | None = None     # the place in the queue shown to the user

    # --- pykka hooks ------------------------------------------------------------------------
    def on_start(self) -> None:
        """Actor thread. Persists nothing; the first message reads the row."""
        self.actor_ref.tell(Resume())

    def on_receive(self, message: Any) -> Any:
        """Actor thread. An exception stops the actor and reaches on_failure."""
        if self._finished:
            return None
        with self.ctx.slots.held():
            if self.ctx.slots.closed:   # the epoch ended while this message waited for a slot
                return self._finish()
            self._handle(message)
        return None

    def _handle(self, message: Any) -> None:
        match message:
            case Resume():
                self._resume()
            case ShowFinalAgain(stage=stage):
                if self.job is not None:
                    self._progress_shown = None
                    self._show_progress(self.job, stage)
                self._finish()
            case RetrySend():
                # The earlier send certainly did not happen and the claim was released with its
                # parts recorded: take it back and send the next part (unless another leader did).
                job = self._reload()
                if job is None or job.state != S.DELIVERING or job.claim_epoch != self.ctx.epoch:
                    return self._finish()
                if job.claim_released:
                    job = self._move(job, S.DELIVERING, expected_claim_epoch=job.claim_epoch)
                if job is not None:
                    self._send(job)
            case PollDue(generation=generation):
                if generation == self._poll_generation:
                    self._poll()
            case CallbacksPending(at=at):
                if at >= self._inbox_read_at:   # else a later read already saw it (sweeps repeat)
                    self._handle_callbacks()
            case Cancel():
                self._cancel()
            case TryStart():
                self._try_start()
            case ProgressDue():
                job = self.job
                if job is not None and job.state in (S.SUBMITTING, S.SUBMITTED):
                    self._show_progress(job, ProgressStage.GENERATING, refresh=True)
                    self._keep_counting(job)
            case _:
                raise TypeError(f"JobActor got an unknown message: {message!r}")
        return None

    def on_stop(self) -> None:
        """Actor thread. Stopped (leadership ended) while holding a delivery claim with nothing
        on the wire, e.g. waiting to retry after a 429: hand the claim back so the next leader
        resumes from the first part not sent, at once and without guessing."""
        job = self.job
        if self._claimed and self._claim_clean and job is not None and job.state == S.DELIVERING \
                and job.claim_epoch == self.ctx.epoch and not job.claim_released:
            try:
                self._release_claim(job)
            except Exception:  # stopping; the next leader falls back to the grace period
                log.exception("job %s: could not release its claim", self.job_id)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Actor thread, after on_receive raised: the supervisor restarts us from the row."""
        self._tell_supervisor(ChildFailed(self.job_id, repr(exception_value),
                                          transient=isinstance(exception_value, DatabaseUnavailable)))

    # --- steps ------------------------------------------------------------------------------
    def _resume(self) -> None:
        job, self._adopted = self._adopted, None
        if job is None:
            job = self._reload()
        else:
            self.job = job
        if job is not None and job.epoch is not None and job.epoch != self.ctx.epoch:
            self._inherited = True      # an earlier epoch wrote this row last
        if job is None or job.terminal:
            return self._finish()
        if self._stopped_by_user(job):
            return None
        if job.state in (S.CREATED, S.SUBMITTING, S.SUBMITTED) and self._past_deadline(job):
            return self._fail(job, self._deadline_failure(job))
        match job.state:
            case S.QUEUED:
                self._try_start()
            case S.CREATED:
                self._submit(job)
            case S.SUBMITTING:
                # createTask's answer was lost (crash or timeout): never resubmit; a callback
                # names the task, or the deadline ends the wait.
                self._handle_callbacks()
                if self.job and self.job.state == S.SUBMITTING:
                    self._later(self._seconds_to_deadline(job), Resume())
            case S.SUBMITTED:
                if self._callbacks_waiting:
                    self._handle_callbacks()
                self._callbacks_waiting = True
                if self.job and self.job.state == S.SUBMITTED:
                    # Spread, not at once: a new leader adopts every job together, and KIE
                    # allows 10 recordInfo/s per key. Callbacks meanwhile reach the inbox.
                    self._schedule_poll(spread=True)
                    # The progress message goes on counting (and shows a stop asked before).
                    self._keep_counting(job)
            case S.SUCCEEDED | S.FAILED:
                self._deliver(job)
            case S.DELIVERING:
                self._resume_delivery(job)
        return None

    # --- the queue and the user's stop -------------------------------------------------------
    def _try_start(self) -> None:
        """A queued job: start it if its turn has come, else show its place (when it changed)."""
        result = start_queued(self.ctx.db, self.job_id, self.ctx.epoch)
        match result:
            case Started(job=job, others_waiting=others):
                self.job = job
                self._note("started", "its turn in the queue came")
                if others:
                    self._tell_supervisor(QueueMoved(job.user_id))     # the rest move up
                self._show_progress(job, ProgressStage.GENERATING)
                self._submit(job)
            case Waiting(job=job, position=position):
                self.job = job
                if position != self._queue_position:
                    self._show_queued(job, position)
            case NotQueued(job=job):
                # It moved on meanwhile (another epoch started or ended it), or the user asked to
                # stop it: do what its row calls for.
                self._adopted = job
                self._resume()
            case LostRace():
                self._stop_stale("the queue's epoch is not ours")

    def _cancel(self) -> None:
        """The user asked to stop the job. Before KIE has it, it is cancelled; once KIE has it
        (KIE cannot stop a task), stopping waiting is offered, or done when that was asked."""
        job = self._reload()
        if job is None or job.terminal:
            return self._finish()
        if job.state not in STOPPABLE:
            return None         # the outcome is known: it is on its way to the user
        if job.stop is None:
            # Told without a recorded request (an intake from before user_stop): record it.
            job = request_stop(self.ctx.db, job.id, StopRequest.CANCEL, self.ctx.epoch)
            if job is None:
                return self._stop_stale("stop request refused: the epoch is not ours")
            self.job = job
        if not self._stopped_by_user(job):
            self._show_progress(job, ProgressStage.GENERATING)     # now with the offer to stop waiting
        return None

    def _stopped_by_user(self, job: Job) -> bool:
        """End the job as its user asked, if that can be done now: cancelled before KIE has it,
        abandoned once they stopped waiting. True when this actor is done with the job."""
        stop = job.stop
        if stop is None:
            return False
        if job.state in (S.QUEUED, S.CREATED):
            end, stage = S.CANCELLED, ProgressStage.CANCELLED
        elif job.state in (S.SUBMITTING, S.SUBMITTED) and stop is StopRequest.STOP_WAITING:
            end, stage = S.ABANDONED, ProgressStage.ABANDONED
        else:
            return False
        moved = self._move(job, end)
        if moved is not None:
            self._note(end.value, f"as the user asked ({stop.value}) in {job.state.value}")
            self._count_finished(moved, end.value)
            self._show_progress(moved, stage)
        self._finish()
        return True

    def _show_queued(self, job: Job, position: int) -> None:
        """Best effort, like every progress edit."""
        try:
            with self.ctx.slots.outside():
                self.ctx.sender.show_queued(job, position)
            self._queue_position = position
        except SendError as exc:
            self._note("progress_edit_failed", str(exc), level=logging.DEBUG)

    # --- submission ---------------------------------------------------------------------------
    def _submit(self, job: Job) -> None:
        try:
            job_input = self._resolve_uploads(job)
        except UploadRefused as exc:
            self._note("upload_refused", str(exc), level=logging.WARNING)
            return self._fail(job, Failure(FailureCode.UPLOAD_REFUSED, str(exc)))
        except (KieRetryLater, SendError) as exc:
            return self._retry_submit_later(job, str(exc), moved_back=True)
        except KieJobFailed as exc:
            return self._fail(job, Failure(FailureCode.KIE_FAILED, exc.reason))
        except KieAlert as exc:
            return self._kie_alert(job, exc)
        if not self.ctx.kie_balance.covers(job.kie_credits_quoted):
            return self._no_kie_credit(job, "balance", f"balance {self.ctx.kie_balance.get()} is below "
                                                       f"the job's {job.kie_credits_quoted} credits")
        # KIE's account limit may pace createTask for seconds. The job waits for its turn while
        # still `created`: killed then, it is submitted by the next leader; in `submitting` it
        # could only wait for a callback or its deadline, KIE having it or not.
        turn = self.ctx.kie.try_create_turn()
        if turn is None:
            with self.ctx.slots.outside():
                turn = self.ctx.kie.create_turn()
        moved = self._move(job, S.SUBMITTING)
        if moved is None:
            return None
        try:
            with self.ctx.slots.outside():
                task_id = self.ctx.kie.create_task(job.model, job_input, self.ctx.callback_url(job), turn=turn)
        except KieRetryLater as exc:
            return self._retry_submit_later(moved, str(exc), moved_back=False)
        except KieJobFailed as exc:
            return self._fail(moved, Failure(FailureCode.KIE_FAILED, exc.reason))
        except KieAlert as exc:
            return self._kie_alert(moved, exc)
        except KieSubmitOutcomeUnknown as exc:
            self._note("submit_outcome_unknown", str(exc), level=logging.WARNING)
            self._later(self._seconds_to_deadline(moved), Resume())
            return None
        crashpoint("after_create_task")
        self.ctx.kie_balance.spend(job.kie_credits_quoted)
        submitted = self._move(moved, S.SUBMITTED, kie_task_id=task_id)
        if submitted is None:
            return None
        self._note("submitted", f"task {task_id}")
        if self._progress_shown is not ProgressStage.GENERATING:
            # "starting…" becomes "generating": a change of stage, so not a refresh that may give
            # way (a queued job showed it when its turn came).
            self._show_progress(submitted, ProgressStage.GENERATING)
        self._keep_counting(submitted)
        # A callback that arrived before createTask answered is not read here: its
        # CallbacksPending is already in this mailbox (or the supervisor's sweep sends one).
        self._schedule_poll()
        return None

    def _kie_alert(self, job: Job, exc: KieAlert) -> None:
        log.error("KIE account needs an operator: %s", exc, extra={"action": "kie_alert", "job_id": job.id})
        self.ctx.metrics.kie_alerts.inc()
        if isinstance(exc, KieNoCredit):
            self.ctx.kie_balance.set(Decimal(0))    # until the next read: refuse before createTask
            return self._no_kie_credit(job, "402", str(exc))
        self._fail(job, Failure(FailureCode.UNAVAILABLE, str(exc)))
        return None

    def _no_kie_credit(self, job: Job, reason: str, detail: str) -> None:
        """The operator's KIE balance is short: the job fails before KIE has it (its hold is
        released by the same write), and the admins hear of it at once (once an hour)."""
        self.ctx.metrics.kie_no_credit.labels(reason).inc()
        self._note("no_kie_credit", detail, level=logging.ERROR)
        with self.ctx.slots.outside():
            page(self.ctx.db, self.ctx.pager, self.ctx.metrics, OperatorAlert.KIE_NO_CREDIT, detail,
                 self.ctx.treasury.page_period_s)
        self._fail(job, Failure(FailureCode.NO_KIE_CREDIT, reason))

    def _retry_submit_later(self, job: Job, why: str, *, moved_back: bool) -> None:
        """Nothing reached KIE: try again later from `created`."""
        self._note("submit_retry_later", why)
        if moved_back or self._move(job, S.CREATED) is not None:
            delay = SUBMIT_RETRY_S[min(self._submit_attempt, len(SUBMIT_RETRY_S) - 1)]
            self._submit_attempt += 1
            self._later(delay, Resume())

    def _resolve_uploads(self, job: Job) -> dict[str, Any]:
        """Files users sent (kie.uploads.TelegramFile) go to KIE's upload host; KIE gets their
        URLs. Telegram refusing the file for good (getFile 400) fails the job at once."""
        spec = self.ctx.catalogue.get(job.model)

        def resolve(value: Any, legacy: bool) -> Any:
            if isinstance(value, list):
                return [resolve(v, legacy) for v in value]
            upload = TelegramFile.from_json(value, legacy=legacy)
            if upload is None:
                return value
            try:
                with self.ctx.slots.outside():
                    data, name = self.ctx.sender.download_file(upload.file_id)
            except SendError as exc:
                if exc.outcome in (SendOutcome.REJECTED, SendOutcome.UNDELIVERABLE):
                    raise UploadRefused(exc.detail) from exc
                raise
            return self.ctx.kie.upload_file(data, name)

        def takes_files(name: str) -> bool:
            field = spec.field(name) if spec else None
            return bool(field is not None and field.media)

        return {key: resolve(value, takes_files(key)) for key, value in job.input.items()}

    def _poll(self) -> None:
        job = self.job
        if job is None or job.state != S.SUBMITTED or not job.kie_task_id:
            return None
        if self._past_deadline(job):
            return self._fail(job, self._deadline_failure(job))
        try:
            record = self.ctx.kie.record_info(job.kie_task_id)
        except (KieRetryLater, KieJobFailed, KieAlert) as exc:
            # A poll error never decides a job; only an explicit KIE failure state does.
            self._note("poll_error", str(exc), level=logging.WARNING)
            return self._schedule_poll()
        self._apply(job, decide_after_record(record), source="poll")
        return None

    def _apply(self, job: Job, decision: Next, *, source: str, task_id: str | None = None) -> None:
        match decision:
            case KeepWaiting(why=why):
                self._note("keep_waiting", f"{source}: {why}", level=logging.DEBUG)
                if job.state == S.SUBMITTING and task_id:
                    job = self._move(job, S.SUBMITTED, kie_task_id=task_id) or job
                if self.job and self.job.state == S.SUBMITTED:
                    self._schedule_poll()
            case Succeeded(urls=urls, text=result_text, credits=credits):
                moved = self._move(job, S.SUCCEEDED, outcome=JobOutcome.SUCCESS, result_urls=list(urls),
                                   result_text=result_text, kie_task_id=task_id, kie_credits_consumed=credits)
                if moved:
                    self._note("succeeded", f"via {source}")
                    self._count_kie_charge(moved)
                    self._deliver(moved)
            case Failed(reason=reason, credits=credits):
                self._fail(job, Failure(FailureCode.KIE_FAILED, reason), kie_task_id=task_id, kie_credits=credits)

    def _fail(self, job: Job, failure: Failure, *, kie_task_id: str | None = None,
              kie_credits: Decimal | None = None) -> None:
        moved = self._move(job, S.FAILED, outcome=JobOutcome.FAILURE, failure=failure, kie_task_id=kie_task_id,
                           kie_credits_consumed=kie_credits)
        if moved:
            self._count_kie_charge(moved)
            self._note("failed", f"{failure.code.value}: {failure.detail}")
            self._deliver(moved)

    # --- callbacks --------------------------------------------------------------------------
    def _handle_callbacks(self) -> None:
        self._inbox_read_at = time.monotonic()
        for stored in inbox.pending_for_job(self.ctx.db, self.job_id):
            if not self._handle_callback(stored):
                continue        # kept in the inbox; read again after CALLBACK_RECHECK_S
            if not inbox.mark_processed(self.ctx.db, stored.id, self.ctx.epoch):
                return self._stop_stale("callback consumption refused")
        return None

    def _handle_callback(self, stored: inbox.StoredCallback) -> bool:
        """Handle one stored callback; False when it must stay in the inbox: while the job is
        `submitting` its callback is the only news of the task, and it is adopted only once
        recordInfo confirms the task exists (null or an error means "ask again later")."""
        job = self._reload()
        if job is None or job.state not in (S.SUBMITTING, S.SUBMITTED):
            self.ctx.metrics.callbacks.labels("duplicate").inc()
            self.ctx.metrics.duplicates_suppressed.labels("callback").inc()
            return True
        body_task = task_id_of(stored.body)
        if (self.ctx.hmac_required and stored.signature_ok is not True) or (
                job.kie_task_id and body_task != job.kie_task_id):
            self.ctx.metrics.callbacks.labels("forged").inc()
            self._note("callback_rejected", "signature or task id does not match", level=logging.WARNING)
            return True
        task_id = job.kie_task_id or body_task
        if not task_id:
            self.ctx.metrics.callbacks.labels("forged").inc()
            return True
        if self.ctx.confirm_callbacks:
            try:
                record = self.ctx.kie.record_info(task_id)
            except (KieRetryLater, KieJobFailed, KieAlert) as exc:
                self._note("confirm_error", str(exc), level=logging.WARNING)
                if job.state == S.SUBMITTED:
                    self._schedule_poll()
                    return True
                self._later(CALLBACK_RECHECK_S, CallbacksPending())
                return False
            if job.kie_task_id is None and record is None:
                self._note("callback_unconfirmed", "recordInfo does not know the task yet", level=logging.INFO)
                self._later(CALLBACK_RECHECK_S, CallbacksPending())
                return False
            if record is not None and job.kie_task_id is None and record.callback_url != self.ctx.callback_url(job):
                self.ctx.metrics.callbacks.labels("forged").inc()
                return True
        else:
            data = stored.body.get("data") if isinstance(stored.body, dict) else None
            record = parse_record(data) if isinstance(data, dict) else None
        self.ctx.metrics.callbacks.labels("accepted").inc()
        self._callback_at = stored.received_at
        self._apply(job, decide_after_record(record), source="callback",
                    task_id=task_id if job.kie_task_id is None else None)
        return True

    # --- delivery ---------------------------------------------------------------------------
    def _deliver(self, job: Job) -> None:
        claimed = self._move(job, S.DELIVERING)
        if claimed:
            self._claimed = True
            self._note("claimed", f"epoch {self.ctx.epoch}")
            crashpoint("after_claim")
            self._send(claimed)

    def _resume_delivery(self, job: Job) -> None:
        """A claim whose send may or may not have happened: ours after an unknown outcome, or
        another epoch's. A released claim is certain (its holder recorded every part it sent)
        and is taken at once; so is one with every part recorded, whose holder had only the
        progress message to clear and `delivered` to record, both harmless to do again. Another
        epoch's open claim may still have a send on the wire that its holder will record
        (shutdown drains for less than the grace period), so whatever the policy it is left
        alone for the grace period, counted from when this actor first saw it, and read again
        every second. Then DELIVERY_POLICY decides, counted once."""
        if job.claim_released or len(job.delivery_parts) >= self._part_count(job):
            reclaimed = self._move(job, S.DELIVERING, expected_claim_epoch=job.claim_epoch)
            if reclaimed:
                why = "released" if job.claim_released else "every part recorded"
                self._note("reclaimed", f"{why} by epoch {job.claim_epoch}")
                self._send(reclaimed)
            return None
        now = dt.datetime.now(dt.UTC)
        since = job.claimed_at or now
        foreign = job.claim_epoch != self.ctx.epoch
        if foreign:
            self._foreign_claim_seen = self._foreign_claim_seen or now
            since = max(since, self._foreign_claim_seen)
        park = self.ctx.delivery_policy == DeliveryPolicy.AT_MOST_ONCE
        wait = (since - now).total_seconds() + self.ctx.delivery_grace_s
        if wait > 0 and (foreign or not park):
            return self._later(min(wait, CLAIM_RECHECK_S), Resume())
        if not self._uncertainty_counted:
            self.ctx.metrics.uncertain_deliveries.inc()
            self._uncertainty_counted = True
        if park:
            if self._move(job, S.DELIVERY_UNKNOWN):
                self._count_finished(job, "delivery_unknown")
                log.error("delivery outcome unknown; parked (at_most_once)",
                          extra={"action": "delivery_unknown", "job_id": job.id})
            return self._finish()
        reclaimed = self._move(job, S.DELIVERING, expected_claim_epoch=job.claim_epoch)
        if reclaimed:
            self._uncertainty_counted = False
            self._foreign_claim_seen = None
            self._note("reclaimed", f"from epoch {job.claim_epoch}", level=logging.WARNING)
            self._send(reclaimed)
        return None

    def _send(self, job: Job) -> None:
        """Send the parts of the delivery not yet recorded as sent, recording each before the
        next (claim-fenced); for a result, clear its progress message; then `delivered` with
        every message id."""
        sender = self.ctx.sender
        count = self._part_count(job)
        clears = self._clears_progress(job)
        done = [Sent.from_json(p) for p in job.delivery_parts]
        self._claimed = True
        for index in range(len(done), count):
            self._claim_clean = False      # from here until recorded, this part may be in the chat
            try:
                with self.ctx.slots.outside():      # FloodControl may hold a send back for seconds
                    sent = sender.send_result_part(job, index) if job.succeeded else sender.send_failure(job)
            except SendError as exc:
                self._claim_clean = exc.outcome != SendOutcome.UNKNOWN
                return self._send_failed(job, exc, done)
            crashpoint("after_send")
            done.append(sent)
            if index < count - 1 or clears:
                # The lambda runs at once, inside this turn of the loop: it cannot see a later `job`.
                recorded = self._record(lambda: record_delivery_parts(
                    self.ctx.db, job.id, self.ctx.epoch, [p.to_json() for p in done]))  # noqa: B023
                if recorded is None:
                    return self._stop_stale("delivery claim taken over")
                job = self.job = recorded
                self._claim_clean = True
        if clears and not self._clear_progress(job, done):
            return None
        self._delivered(job, done)
        return None

    def _clears_progress(self, job: Job) -> bool:
        """A result replaces the job's progress message: it is deleted under the delivery's claim,
        after every part is recorded and before `delivered` (a failure notice is an edit of it)."""
        return job.succeeded and job.progress_message_id is not None

    def _part_count(self, job: Job) -> int:
        return self.ctx.sender.result_parts(job) if job.succeeded else 1

    def _clear_progress(self, job: Job, done: list[Sent]) -> bool:
        """Delete the progress message of a result whose parts are all recorded; True to go on to
        `delivered`. A delete is harmless to repeat, so a refusal by the fence, a 429 or a lost
        answer hands the claim back (the next leader, or this actor's RetrySend, deletes again
        and records `delivered`): recorded first, a lost delete would stay in the chat for good.
        Telegram refusing it for good is only noted: the result is in the chat."""
        try:
            with self.ctx.slots.outside():      # it waits for the chat's next slot, after the result
                self.ctx.sender.show_progress(job, ProgressStage.DONE)
            self._progress_shown = ProgressStage.DONE
            return True
        except SendError as exc:
            self._note("progress_clear_failed", str(exc), level=logging.WARNING)
            match exc.outcome:
                case SendOutcome.DEPOSED:
                    self._release_claim(job, done)
                    self._finish()
                case SendOutcome.RETRY_AFTER | SendOutcome.RETRY | SendOutcome.UNKNOWN:
                    self._release_claim(job, done)
                    delay = max(exc.retry_after, SEND_RETRY_S[min(self._send_attempt, len(SEND_RETRY_S) - 1)])
                    self._send_attempt += 1
                    self._later(delay, RetrySend())
                case SendOutcome.UNDELIVERABLE | SendOutcome.REJECTED:
                    return True
            return False

    def _delivered(self, job: Job, done: list[Sent]) -> None:
        """Record the known outcome; a database error is retried, never turned into "unknown"."""
        message_ids = [m for part in done for m in part.message_ids]
        file_ids = [f for part in done for f in part.file_ids]
        result = self._record(lambda: transition(
            self.ctx.db, job.id, S.DELIVERING, S.DELIVERED, self.ctx.epoch, claim_fenced=True,
            delivered_message_ids=message_ids, result_file_ids=file_ids or None,
            delivery_parts=[p.to_json() for p in done]))
        if isinstance(result, Moved):
            self.job = delivered = result.job
            self._claim_clean = True
            crashpoint("after_record")
            self.ctx.metrics.deliveries.labels(job.outcome or "unknown").inc()
            self._count_finished(delivered, job.outcome or "unknown")
            self._note("delivered", f"messages {message_ids}")
            final = ProgressStage.DONE if job.succeeded else ProgressStage.FAILED
            in_place = job.succeeded or (job.progress_message_id,) == done[0].message_ids
            if self._inherited and job.progress_message_id and in_place:
                # Another epoch worked on this job: a progress edit it had on the wire when it
                # stepped down may land after ours (its shutdown drains for up to
                # SHOW_FINAL_AGAIN_S); show the final stage once more after that.
                return self._later(SHOW_FINAL_AGAIN_S, ShowFinalAgain(final))
        elif result is not None:
            self._note("lost_race", "delivered write refused: the claim was taken over", level=logging.WARNING)
        self._finish()
        return None

    def _record(self, write: Callable[[], T]) -> T | None:
        """Run a write that records a known send outcome, retrying database errors with backoff
        (outside the work slot); None when the database stayed away. The caller keeps what it
        knows until then: a known outcome is never downgraded to unknown by a failed write."""
        for attempt, delay in enumerate((*RECORD_RETRY_S, None)):
            try:
                return write()
            except DatabaseUnavailable as exc:
                self._note("record_retry", f"attempt {attempt + 1}: {exc}", level=logging.WARNING)
                if delay is None:
                    break
                with self.ctx.slots.outside():
                    time.sleep(delay)
        log.error("job %s: could not record a send's outcome; the next leader treats it as unknown", self.job_id,
                  extra={"action": "record_failed", "job_id": self.job_id})
        return None

    def _count_kie_charge(self, job: Job) -> None:
        """What KIE charged next to what our price data said it would (stale prices show as
        drift: kiebot_kie_credits_consumed_total / kiebot_kie_credits_quoted_total per model)."""
        if job.kie_credits_consumed is None:
            return
        self.ctx.metrics.kie_credits_consumed.labels(job.model).inc(float(job.kie_credits_consumed))
        if job.kie_credits_consumed > 0 and job.kie_credits_quoted is not None:
            self.ctx.metrics.kie_credits_quoted.labels(job.model).inc(float(job.kie_credits_quoted))

    def _count_finished(self, job: Job, outcome: str) -> None:
        now = dt.datetime.now(dt.UTC)
        self.ctx.metrics.jobs_finished.labels(job.model, outcome).inc()
        self.ctx.metrics.job_duration.labels(job.model).observe((now - job.created_at).total_seconds())
        if self._callback_at is not None and outcome in (JobOutcome.SUCCESS, JobOutcome.FAILURE):
            self.ctx.metrics.callback_to_delivery.observe((now - self._callback_at).total_seconds())

    def _send_failed(self, job: Job, exc: SendError, done: list[Sent]) -> None:
        self._note("send_error", str(exc), level=logging.WARNING)
        self.ctx.metrics.delivery_errors.labels(exc.outcome.value).inc()
        match exc.outcome:
            case SendOutcome.RETRY_AFTER | SendOutcome.RETRY:
                # Known not sent: release the claim with its parts before waiting, so that a
                # crash, a database blip or a new leader meanwhile resumes without guessing
                # (at_most_once would otherwise park a delivery nothing of which is unknown).
                self._release_claim(job, done)
                delay = max(exc.retry_after, SEND_RETRY_S[min(self._send_attempt, len(SEND_RETRY_S) - 1)])
                self._send_attempt += 1
                self._later(delay, RetrySend())
            case SendOutcome.DEPOSED:
                # Nothing of this part left: hand the claim back so the next leader resumes at once.
                self._release_claim(job, done)
                self._finish()
            case SendOutcome.UNKNOWN:
                # The claim stays; _resume_delivery counts it and applies DELIVERY_POLICY after
                # the grace period (the parts before this one are recorded).
                self._later(0.0, Resume())
            case SendOutcome.UNDELIVERABLE | SendOutcome.REJECTED:
                result = self._record(lambda: transition(
                    self.ctx.db, job.id, S.DELIVERING, S.UNDELIVERABLE, self.ctx.epoch, claim_fenced=True,
                    delivery_parts=[p.to_json() for p in done]))
                if isinstance(result, Moved):
                    self._claim_clean = True
                    self._count_finished(job, "undeliverable")
                self._finish()

    def _release_claim(self, job: Job, done: list[Sent] | None = None) -> None:
        """Our claim, with nothing of it on the wire: record its parts and release it."""
        if done is None:
            done = [Sent.from_json(p) for p in job.delivery_parts]
        released = self._record(lambda: record_delivery_parts(self.ctx.db, job.id, self.ctx.epoch,
                                                              [p.to_json() for p in done], release=True))
        if released is not None:
            self.job = released
            self._note("claim_released", f"after {len(done)} parts")

    # --- helpers ----------------------------------------------------------------------------
    def _move(self, job: Job, new: S, **fields: Any) -> Job | None:
        """A fenced move; None when it did not happen (and this actor is done with the job). A
        move the user's stop request refused (to submitting; to an outcome once they stopped
        waiting) ends the job as they asked; any other refusal means another epoch leads."""
        result = transition(self.ctx.db, job.id, job.state, new, self.ctx.epoch, **fields)
        if isinstance(result, Moved):
            self.job = result.job
            if result.queue_waiting:
                self._tell_supervisor(QueueMoved(job.user_id))
            return result.job
        assert isinstance(result, LostRace)
        if new in (S.SUBMITTING, S.SUCCEEDED, S.FAILED):
            fresh = self._reload()
            if fresh is not None and fresh.state == job.state and self._stopped_by_user(fresh):
                return None
        self._stop_stale(f"{job.state.value} -> {new.value} lost")
        return None

    def _stop_stale(self, why: str) -> None:
        self._note("lost_race", why, level=logging.WARNING)
        self._finish()

    def _reload(self) -> Job | None:
        self.job = get_job(self.ctx.db, self.job_id)
        return self.job

    def _schedule_poll(self, *, spread: bool = False) -> None:
        self._poll_generation += 1
        delay = next_poll_delay(self._poll_attempt, self.ctx.poll_base_s)
        if self.ctx.public_url:
            delay *= CALLBACK_POLL_FACTOR   # callbacks carry the news; polling is the safety net
        if spread:
            delay *= random.random()  # noqa: S311 - spreading polls in time, not a secret
        self._poll_attempt += 1
        self.ctx.timers.later(delay, self.actor_ref, PollDue(self._poll_generation))

    def _later(self, delay: float, message: Any) -> None:
        self.ctx.timers.later(delay, self.actor_ref, message)

    def _keep_counting(self, job: Job) -> None:
        """Update the progress message again after its interval: slower in groups (20 messages/min).
        A job without one (it could not be sent, or the job was not made in a chat) never gets one,
        so it gets no ticks either: a leader adopting thousands of them would otherwise wake each
        actor every few seconds for nothing."""
        if job.progress_message_id:
            self._later(PROGRESS_GROUP_S if job.chat_id < 0 else PROGRESS_PRIVATE_S, ProgressDue())

    def _past_deadline(self, job: Job) -> bool:
        return self._seconds_to_deadline(job) <= 0

    @staticmethod
    def _seconds_to_deadline(job: Job) -> float:
        return (job.deadline_at - dt.datetime.now(dt.UTC)).total_seconds()

    @staticmethod
    def _deadline_failure(job: Job) -> Failure:
        minutes = max(1, round((job.deadline_at - job.generating_since).total_seconds() / 60))
        return Failure(FailureCode.DEADLINE, str(minutes))

    def _show_progress(self, job: Job, stage: ProgressStage, *, refresh: bool = False) -> None:
        """Best effort: the progress message is a courtesy, never a reason to fail a job; a
        final stage is shown once. A `refresh` (ProgressDue: the count moving on, the stage
        already shown) gives way to other sends."""
        if not job.progress_message_id or (stage != ProgressStage.GENERATING and stage == self._progress_shown):
            return      # (without a progress message there is nothing to show, nor a slot to give up)
        try:
            with self.ctx.slots.outside():
                self.ctx.sender.show_progress(job, stage, refresh=refresh)
            self._progress_shown = stage
        except SendError as exc:
            self._note("progress_edit_failed", str(exc), level=logging.DEBUG)

    def _note(self, action: str, detail: str, level: int = logging.INFO) -> None:
        log.log(level, "job %s %s: %s", self.job_id, action, detail,
                extra={"action": action, "job_id": self.job_id})

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._tell_supervisor(ChildFinished(self.job_id))
        self.stop()

    def _tell_supervisor(self, message: Any) -> None:
        """The supervisor may have stopped first (leadership ended): nothing left to tell."""
        try:
            self.supervisor.tell(message)
        except pykka.ActorDeadError:
            pass
