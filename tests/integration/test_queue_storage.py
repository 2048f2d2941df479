"""The queue, the user's stop requests and the usual durations in Postgres (migration 0009),
through storage.jobs against a real database: first come, first served under the user's limit;
a stop request refuses the moves it forbids and is never taken back; an abandoned job's hold
is released; a model's usual duration is the median and 90th percentile of its latest
deliveries."""
from __future__ import annotations

from typing import Any

from actors.job_state import JobState as S
from actors.outcomes import JobOutcome, StopRequest
from storage import ledger
from storage.db import Database
from storage.jobs import (
    Created,
    LostRace,
    Moved,
    NewJob,
    NotQueued,
    QueueFull,
    Started,
    Waiting,
    create_job,
    get_job,
    launch_view,
    model_durations,
    queued_job_ids,
    request_stop,
    start_queued,
    transition,
)
from tests.support.factories import make_job, take_epoch

USER = 9301


def new_job(n: int, *, max_active: int | None = 1, queue_length: int = 2, price: int = 0,
            user: int = USER, epoch: int | None = None) -> NewJob:
    return NewJob(request_key=f"queue:{user}:{n}", chat_id=user, user_id=user, lang="en", model="z-image",
                  input={"prompt": f"p{n}"}, deadline_s=600, price=price, max_active=max_active,
                  queue_length=queue_length, epoch=epoch)


def made(db: Database, new: NewJob) -> Any:
    creation = create_job(db, new)
    assert isinstance(creation, Created), creation
    return creation.job


def test_beyond_the_limit_jobs_are_queued_and_beyond_the_queue_refused(db: Database) -> None:
    first, second, third = (made(db, new_job(n)) for n in (1, 2, 3))
    assert [j.state for j in (first, second, third)] == [S.CREATED, S.QUEUED, S.QUEUED]
    assert first.started_at is not None and second.started_at is None
    assert create_job(db, new_job(4)) == QueueFull(2)
    assert queued_job_ids(db, USER) == [second.id, third.id]
    view = launch_view(db, USER, "z-image")
    assert (view.running, view.waiting) == (1, 2)


def test_a_queued_job_starts_only_in_its_turn_first_come_first_served(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    first, second, third = (made(db, new_job(n)) for n in (1, 2, 3))
    waiting = start_queued(db, third.id, epoch)
    assert isinstance(waiting, Waiting) and waiting.position == 2
    assert isinstance(start_queued(db, second.id, epoch), Waiting)     # the first one still runs
    moved = transition(db, first.id, S.CREATED, S.CANCELLED, epoch)
    assert isinstance(moved, Moved) and moved.queue_waiting
    assert isinstance(start_queued(db, third.id, epoch), Waiting)      # the second is first in line
    started = start_queued(db, second.id, epoch)
    assert isinstance(started, Started) and started.others_waiting
    assert started.job.state is S.CREATED and started.job.started_at is not None
    assert started.job.deadline_at > started.job.started_at
    again = start_queued(db, second.id, epoch)
    assert isinstance(again, NotQueued) and again.job.state is S.CREATED
    after = start_queued(db, third.id, epoch)
    assert isinstance(after, Waiting) and after.position == 1


def test_starting_from_the_queue_is_fenced_by_the_epoch(db: Database, database_url: str) -> None:
    old = take_epoch(database_url)
    made(db, new_job(1, max_active=0))
    queued = made(db, new_job(2, max_active=1))
    take_epoch(database_url)
    assert isinstance(start_queued(db, queued.id, old), LostRace)
    assert get_job(db, queued.id).state is S.QUEUED


def test_a_cancel_request_refuses_submission_and_lets_the_job_be_cancelled(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    job = make_job(db, epoch, S.CREATED)
    asked = request_stop(db, job.id, StopRequest.CANCEL, epoch)
    assert asked is not None and asked.stop is StopRequest.CANCEL
    assert isinstance(transition(db, job.id, S.CREATED, S.SUBMITTING, epoch), LostRace)
    assert isinstance(transition(db, job.id, S.CREATED, S.CANCELLED, epoch), Moved)


def test_a_cancel_request_on_a_submitted_job_lets_its_result_through(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    job = make_job(db, epoch, S.SUBMITTED)
    request_stop(db, job.id, StopRequest.CANCEL, epoch)
    assert isinstance(transition(db, job.id, S.SUBMITTED, S.SUCCEEDED, epoch, outcome=JobOutcome.SUCCESS,
                                 result_urls=["http://127.0.0.1/x.png"]), Moved)


def test_stop_waiting_refuses_any_outcome_and_is_never_taken_back(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    job = make_job(db, epoch, S.SUBMITTED)
    request_stop(db, job.id, StopRequest.STOP_WAITING, epoch)
    downgraded = request_stop(db, job.id, StopRequest.CANCEL, epoch)
    assert downgraded is not None and downgraded.stop is StopRequest.STOP_WAITING
    assert isinstance(transition(db, job.id, S.SUBMITTED, S.SUCCEEDED, epoch, outcome=JobOutcome.SUCCESS), LostRace)
    assert isinstance(transition(db, job.id, S.SUBMITTED, S.FAILED, epoch, outcome=JobOutcome.FAILURE), LostRace)
    assert isinstance(transition(db, job.id, S.SUBMITTED, S.ABANDONED, epoch), Moved)


def test_a_stop_request_for_a_finished_job_changes_nothing_and_a_stale_one_is_refused(
        db: Database, database_url: str) -> None:
    old = take_epoch(database_url)
    job = make_job(db, old, S.DELIVERED)
    late = request_stop(db, job.id, StopRequest.STOP_WAITING, old)
    assert late is not None and late.stop is None and late.state is S.DELIVERED
    running = make_job(db, old, S.SUBMITTED)
    take_epoch(database_url)
    assert request_stop(db, running.id, StopRequest.CANCEL, old) is None
    assert get_job(db, running.id).stop is None


def test_an_abandoned_paid_job_gives_its_hold_back(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    assert isinstance(ledger.grant(db, USER, 500, "test money"), ledger.Granted)
    job = made(db, new_job(1, price=300, max_active=None))
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 200, 300)
    for new in (S.SUBMITTING, S.SUBMITTED):
        job = transition(db, job.id, job.state, new, epoch).job
    request_stop(db, job.id, StopRequest.STOP_WAITING, epoch)
    assert isinstance(transition(db, job.id, S.SUBMITTED, S.ABANDONED, epoch), Moved)
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 500, 0)
    assert ledger.check(db).clean


def test_a_queued_paid_job_holds_its_price_and_a_cancelled_one_gives_it_back(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    assert isinstance(ledger.grant(db, USER, 500, "test money"), ledger.Granted)
    made(db, new_job(1, max_active=0, price=100))
    queued = made(db, new_job(2, price=300))
    assert queued.state is S.QUEUED and ledger.wallet(db, USER) == ledger.Wallet(USER, 100, 400)
    assert isinstance(transition(db, queued.id, S.QUEUED, S.CANCELLED, epoch), Moved)
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 400, 100)
    assert ledger.check(db).clean


def test_a_models_usual_duration_is_the_median_and_90th_percentile_of_its_latest_deliveries(
        db: Database, database_url: str, sql: Any) -> None:
    epoch = take_epoch(database_url)
    assert model_durations(db, "z-image") is None
    seconds = [4, 6, 8, 10, 30]
    for n, s in enumerate(seconds):
        job = make_job(db, epoch, S.DELIVERED)
        # The test's clock is the database's: this delivery took `s` seconds, the latest last.
        sql.execute("UPDATE jobs SET started_at = now() - make_interval(secs => %s + %s), "
                    "delivered_at = now() - make_interval(secs => %s) WHERE id = %s", (s, 100 - n, 100 - n, job.id))
        if n == 1:
            assert model_durations(db, "z-image") is None        # two measured: too few yet
    usual = model_durations(db, "z-image")
    assert usual is not None and usual.samples == 5
    assert usual.median_s == 8.0 and abs(usual.p90_s - 22.0) < 1e-3     # between 10 and 30, 60 % of the way
    failed = make_job(db, epoch, S.FAILED)      # only successful deliveries count
    assert failed.state is S.FAILED and model_durations(db, "z-image") == usual
