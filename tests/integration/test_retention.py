"""The retention duty against a real Postgres: what is past its age goes, in batches of at most
`batch_size` rows per statement; what is newer, unprocessed, or belongs to an unfinished job stays,
and no job is ever deleted."""
from __future__ import annotations

from typing import Any

import pytest

from actors.job_state import JobState
from actors.retention import Retention, RetentionConfig
from storage import inbox, updates
from storage.db import Database
from storage.jobs import get_job, job_events
from tests.support.factories import make_job, take_epoch


class Removed:
    """An on_removed callback that remembers every (table, n) it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, table: str, n: int) -> None:
        self.calls.append((table, n))


def stored_update_ids(sql: Any) -> set[int]:
    sql.execute("SELECT update_id FROM telegram_updates")
    return {row[0] for row in sql.fetchall()}


def stored_callback_ids(sql: Any) -> set[int]:
    sql.execute("SELECT id FROM callback_inbox")
    return {row[0] for row in sql.fetchall()}


def store_updates(db: Database, epoch: int, ids: range, *, processed: bool) -> None:
    for update_id in ids:
        assert updates.store_update(db, update_id, {"update_id": update_id}, "test", notify=False)
        if processed:
            assert updates.mark_processed(db, [update_id], epoch)


def test_processed_updates_past_their_age_go_in_batches_and_the_rest_stay(
        db: Database, database_url: str, sql: Any) -> None:
    epoch = take_epoch(database_url)
    store_updates(db, epoch, range(1, 6), processed=True)        # old and processed: go
    store_updates(db, epoch, range(6, 8), processed=True)        # processed a day ago: stay
    store_updates(db, epoch, range(8, 10), processed=False)      # old but unprocessed: stay
    sql.execute("UPDATE telegram_updates SET processed_at = now() - interval '8 days' WHERE update_id <= 5")
    sql.execute("UPDATE telegram_updates SET processed_at = now() - interval '1 day' WHERE update_id IN (6, 7)")
    sql.execute("UPDATE telegram_updates SET received_at = now() - interval '30 days' WHERE update_id >= 8")
    removed = Removed()

    result = Retention(db, RetentionConfig(batch_size=2), on_removed=removed).run_once()

    assert (result.updates, result.callbacks, result.events, result.capped) == (5, 0, 0, False)
    assert removed.calls == [("telegram_updates", 2), ("telegram_updates", 2), ("telegram_updates", 1)]
    assert stored_update_ids(sql) == {6, 7, 8, 9}
    assert updates.backlog(db) == 2


def test_processed_callbacks_past_their_age_go_and_unprocessed_ones_stay(
        db: Database, database_url: str, sql: Any) -> None:
    epoch = take_epoch(database_url)
    job = make_job(db, epoch, JobState.SUBMITTED)
    old, recent, waiting = (inbox.store_callback(db, job.id, {"n": n}, None, "test", notify=False) for n in range(3))
    assert inbox.mark_processed(db, old, epoch) and inbox.mark_processed(db, recent, epoch)
    sql.execute("UPDATE callback_inbox SET processed_at = now() - interval '8 days' WHERE id = %s", (old,))
    sql.execute("UPDATE callback_inbox SET received_at = now() - interval '30 days' WHERE id = %s", (waiting,))
    removed = Removed()

    result = Retention(db, on_removed=removed).run_once()

    assert (result.updates, result.callbacks, result.events) == (0, 1, 0)
    assert removed.calls == [("callback_inbox", 1)]
    assert stored_callback_ids(sql) == {recent, waiting}
    assert [c.id for c in inbox.pending_for_job(db, job.id)] == [waiting]


def test_only_long_finished_jobs_lose_their_history_and_no_job_is_deleted(
        db: Database, database_url: str, sql: Any) -> None:
    epoch = take_epoch(database_url)
    long_done = make_job(db, epoch, JobState.DELIVERED)
    stuck = make_job(db, epoch, JobState.SUBMITTED)            # unfinished: keeps its history
    just_done = make_job(db, epoch, JobState.CANCELLED)        # finished yesterday: keeps it whole
    sql.execute("UPDATE job_events SET at = now() - interval '40 days'")
    sql.execute("UPDATE jobs SET updated_at = now() - interval '40 days' WHERE id IN (%s, %s)",
                (long_done.id, stuck.id))
    sql.execute("UPDATE jobs SET updated_at = now() - interval '1 day' WHERE id = %s", (just_done.id,))
    history = {j.id: len(job_events(db, j.id)) for j in (long_done, stuck, just_done)}
    assert history[long_done.id] >= 5

    result = Retention(db, RetentionConfig(batch_size=2)).run_once()

    assert result.events == history[long_done.id]
    assert job_events(db, long_done.id) == []
    assert len(job_events(db, stuck.id)) == history[stuck.id]
    assert len(job_events(db, just_done.id)) == history[just_done.id]
    assert all(get_job(db, j.id) is not None for j in (long_done, stuck, just_done))


def test_a_run_stops_after_max_batches_and_the_next_one_takes_the_rest(
        db: Database, database_url: str, sql: Any) -> None:
    epoch = take_epoch(database_url)
    store_updates(db, epoch, range(1, 6), processed=True)
    sql.execute("UPDATE telegram_updates SET processed_at = now() - interval '8 days'")
    retention = Retention(db, RetentionConfig(batch_size=2, max_batches=2))

    first = retention.run_once()
    second = retention.run_once()

    assert (first.updates, first.capped) == (4, True)
    assert (second.updates, second.capped) == (1, False)
    assert retention.run_once().quiet and stored_update_ids(sql) == set()


def test_nothing_due_means_a_quiet_result_and_no_metric(db: Database) -> None:
    removed = Removed()
    result = Retention(db, on_removed=removed).run_once()
    assert result.quiet and not result.capped
    assert removed.calls == []


def test_it_runs_once_per_interval_and_again_at_once_while_a_backlog_remains(
        db: Database, database_url: str, sql: Any) -> None:
    now = [1000.0]
    epoch = take_epoch(database_url)
    store_updates(db, epoch, range(1, 4), processed=True)
    sql.execute("UPDATE telegram_updates SET processed_at = now() - interval '8 days'")
    retention = Retention(db, RetentionConfig(batch_size=1, max_batches=2, interval_s=60),
                          clock=lambda: now[0])

    assert retention.run_when_due() is None                  # a new leader first adopts its jobs
    now[0] += 60
    first = retention.run_when_due()
    assert first is not None and (first.updates, first.capped) == (2, True)
    second = retention.run_when_due()                       # a backlog: due again at once
    assert second is not None and (second.updates, second.capped) == (1, False)
    now[0] += 59
    assert retention.run_when_due() is None
    now[0] += 1
    assert retention.run_when_due() is not None


@pytest.mark.parametrize("bad", [
    {"updates_days": 0.5}, {"callbacks_days": 0}, {"events_days": -1}, {"batch_size": 0},
    {"max_batches": 0}, {"interval_s": 0},
])
def test_bad_configuration_fails_at_start(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetentionConfig(**bad)
