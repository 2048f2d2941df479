"""JobSupervisor: exists only while this instance leads, for exactly one epoch.

On start it spawns a JobActor for every unfinished job in Postgres (nothing lives only in its
memory), queued ones included; it routes new jobs, the users' stop requests and stored callbacks
to them, wakes a user's queued jobs when their queue moves, sweeps every second for work stored
by other instances, restarts a JobActor that raised (bounded, with backoff) and stops them all
when leadership ends.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import pykka

from actors.job import JobActor, JobContext
from actors.job_state import JobState as S
from actors.messages import (
    CallbacksPending,
    CallbackStored,
    Cancel,
    CancelJob,
    ChildFailed,
    ChildFinished,
    JobCreated,
    QueueMoved,
    Respawn,
    Sweep,
    TryStart,
)
from actors.outcomes import Failure, FailureCode, JobOutcome
from actors.reconciler import Reconciler, ReconcilerConfig
from actors.retention import Retention
from actors.treasurer import Treasurer, Treasury
from storage import inbox
from storage.db import DatabaseUnavailable
from storage.jobs import Job, Moved, get_job, queued_job_ids, transition, unfinished_jobs

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0
MAX_RESTARTS = 3
RESTART_BACKOFF_S = (0.1, 0.5, 2.0)
STOP_WAIT_S = 25.0      # below the default delivery grace period (30 s)


class JobSupervisor(pykka.ThreadingActor):
    def __init__(self, ctx: JobContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.children: dict[int, pykka.ActorRef[Any]] = {}
        self.restarts: dict[int, int] = {}
        self.reconciler = Reconciler(ctx.db, ctx.epoch, ReconcilerConfig(SWEEP_INTERVAL_S, ctx.delivery_grace_s))
        self.retention = Retention(ctx.db, ctx.retention,
                                   on_removed=lambda table, n: ctx.metrics.retention_removed.labels(table).inc(n))
        self.treasurer: pykka.ActorRef[Any] | None = None

    def on_start(self) -> None:
        """Supervisor thread. Adopts every unfinished job from two reads (rows, and which of them
        have callbacks waiting); a database error here stops us, and the LeaderActor steps down."""
        adopted = unfinished_jobs(self.ctx.db)
        with_callbacks = set(inbox.jobs_with_pending(self.ctx.db))
        for job in adopted:
            self._spawn(job.id, adopted=job, callbacks_waiting=job.id in with_callbacks)
        self.ctx.metrics.job_actors.set(len(self.children))
        self.treasurer = Treasurer.start(Treasury(self.ctx.db, self.ctx.kie, self.ctx.stars, self.ctx.pager,
                                                  self.ctx.metrics, self.ctx.kie_balance, self.ctx.treasury),
                                         self.ctx.timers)
        log.info("supervisor started with %d jobs", len(self.children),
                 extra={"action": "supervisor_start", "epoch": self.ctx.epoch})
        self.ctx.timers.later(SWEEP_INTERVAL_S, self.actor_ref, Sweep())

    def on_receive(self, message: Any) -> Any:
        """Supervisor thread. Persists nothing itself. A database error costs one message (the
        sweep finds its work again); whether to keep leading is the LeaderActor's call."""
        try:
            self._handle(message)
        except DatabaseUnavailable as exc:
            log.warning("supervisor could not handle %s: %s", type(message).__name__, exc,
                        extra={"action": "supervisor_db_error"})
        self.ctx.metrics.job_actors.set(len(self.children))

    def _handle(self, message: Any) -> None:
        match message:
            case JobCreated(job_id=job_id):
                self._spawn(job_id)
            case CallbackStored(job_id=job_id):
                self._route_callbacks(job_id)
            case Sweep():
                self._sweep()
            case ChildFinished(job_id=job_id):
                self.children.pop(job_id, None)
                self.restarts.pop(job_id, None)
            case ChildFailed(job_id=job_id, error=error, transient=transient):
                self._child_failed(job_id, error, transient=transient)
            case Respawn(job_id=job_id):
                self._spawn(job_id)
            case CancelJob(job_id=job_id):
                self._spawn(job_id)
                self.children[job_id].tell(Cancel())
            case QueueMoved(user_id=user_id):
                self._wake_queue(user_id)
            case _:
                raise TypeError(f"JobSupervisor got an unknown message: {message!r}")

    def on_stop(self) -> None:
        """Supervisor thread. Stops every JobActor and waits for them briefly."""
        self._stop_children()

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        """Supervisor thread. pykka calls this instead of on_stop when on_receive raised: the
        JobActors must still go, or they would keep working for an epoch nobody supervises."""
        log.error("supervisor failed: %r", exception_value, extra={"action": "supervisor_failed"})
        self._stop_children()

    def _stop_children(self) -> None:
        self.ctx.slots.close()
        refs = list(self.children.values())
        if self.treasurer is not None:
            refs.append(self.treasurer)
            self.treasurer = None
        for ref in refs:
            ref.stop(block=False)
        # A JobActor with a send on the wire finishes it and records the outcome under its own
        # claim before it stops; queued sends are refused at dispatch, so this is short.
        deadline = time.monotonic() + STOP_WAIT_S
        for ref in refs:
            ref.actor_stopped.wait(max(0.0, deadline - time.monotonic()))
        self.children.clear()
        self.ctx.metrics.job_actors.set(0)

    def _spawn(self, job_id: int, *, adopted: Job | None = None, callbacks_waiting: bool = True) -> None:
        ref = self.children.get(job_id)
        if ref is not None and ref.is_alive():
            return
        self.children[job_id] = JobActor.start(job_id, self.ctx, self.actor_ref, adopted=adopted,
                                               callbacks_waiting=callbacks_waiting)

    def _route_callbacks(self, job_id: int) -> None:
        ref = self.children.get(job_id)
        if ref is not None and ref.is_alive():
            try:
                ref.tell(CallbacksPending())
                return
            except pykka.ActorDeadError:
                pass
        job = get_job(self.ctx.db, job_id)
        if job is not None and not job.terminal:
            self._spawn(job_id)     # its Resume reads the inbox
        elif job is not None:
            # A callback for a finished job: nothing to do but record that we saw it.
            for stored in inbox.pending_for_job(self.ctx.db, job_id):
                self.ctx.metrics.callbacks.labels("duplicate").inc()
                self.ctx.metrics.duplicates_suppressed.labels("callback").inc()
                inbox.mark_processed(self.ctx.db, stored.id, self.ctx.epoch)

    def _wake_queue(self, user_id: int) -> None:
        """The user's queue moved: each queued job looks whether its turn came (or its new
        place); one without an actor gets one, whose Resume does the same."""
        for job_id in queued_job_ids(self.ctx.db, user_id):
            ref = self.children.get(job_id)
            if ref is not None and ref.is_alive():
                try:
                    ref.tell(TryStart())
                    continue
                except pykka.ActorDeadError:
                    pass
            self._spawn(job_id)

    def _sweep(self) -> None:
        try:
            result = self.reconciler.run_once(set(self.children))
            for job_id in result.orphans:
                self._spawn(job_id)
            for job_id in result.callbacks:
                self._route_callbacks(job_id)
            self.retention.run_when_due()
        finally:
            self.ctx.timers.later(self.reconciler.config.interval_s, self.actor_ref, Sweep())

    def _child_failed(self, job_id: int, error: str, *, transient: bool = False) -> None:
        """Restart a crashed JobActor from its row, with backoff; after MAX_RESTARTS crashes of
        its own, give up. A database outage is nobody's fault: restarted, never counted."""
        self.children.pop(job_id, None)
        count = self.restarts.get(job_id, 0) + (0 if transient else 1)
        self.restarts[job_id] = count
        if transient:
            self.ctx.metrics.job_actor_restarts.inc()
            self.ctx.timers.later(RESTART_BACKOFF_S[-1], self.actor_ref, Respawn(job_id))
            log.warning("job actor %s stopped by a database error; restarting: %s", job_id, error,
                        extra={"action": "child_failed_transient", "job_id": job_id})
            return
        log.error("job actor %s failed (%d/%d): %s", job_id, count, MAX_RESTARTS, error,
                  extra={"action": "child_failed", "job_id": job_id})
        if count <= MAX_RESTARTS:
            self.ctx.metrics.job_actor_restarts.inc()
            self.ctx.timers.later(RESTART_BACKOFF_S[min(count - 1, len(RESTART_BACKOFF_S) - 1)],
                                  self.actor_ref, Respawn(job_id))
            return
        self._give_up(job_id)

    def _give_up(self, job_id: int) -> None:
        """Too many crashes: end the job as failed so the user hears about it."""
        job = get_job(self.ctx.db, job_id)
        if job is None or job.terminal:
            return
        if job.state in (S.QUEUED, S.CREATED, S.SUBMITTING, S.SUBMITTED):
            transition(self.ctx.db, job_id, job.state, S.FAILED, self.ctx.epoch, outcome=JobOutcome.FAILURE,
                       failure=Failure(FailureCode.INTERNAL, "the job kept crashing"))
            self.restarts[job_id] = MAX_RESTARTS - 1   # one more life to deliver the notice
            self.ctx.timers.later(RESTART_BACKOFF_S[-1], self.actor_ref, Respawn(job_id))
        else:
            # The outcome is known but delivering it crashes every time: end it, or the sweep
            # would respawn it every second for ever. (Only `delivering` may become final.)
            if job.state != S.DELIVERING:
                moved = transition(self.ctx.db, job_id, job.state, S.DELIVERING, self.ctx.epoch)
                if not isinstance(moved, Moved):
                    return
                if moved.queue_waiting:         # its generation is over: the queue moves up
                    self._wake_queue(job.user_id)
                job = moved.job
            transition(self.ctx.db, job_id, S.DELIVERING, S.UNDELIVERABLE, self.ctx.epoch,
                       expected_claim_epoch=job.claim_epoch)
            self.ctx.metrics.jobs_finished.labels(job.model, "undeliverable").inc()
            log.error("job %s ended undeliverable after repeated crashes while delivering", job_id,
                      extra={"action": "job_abandoned", "job_id": job_id})
