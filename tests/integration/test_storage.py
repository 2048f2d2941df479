"""Storage against a real Postgres: the state machine in SQL, fencing, migrations, inboxes."""
from __future__ import annotations

import pytest

from actors.job_state import TRANSITIONS, IllegalTransition, JobState
from storage import inbox, updates
from storage.db import Database, connect
from storage.jobs import Created, Existing, LostRace, Moved, NewJob, create_job, get_job, transition
from storage.migrate import migrate
from tests.support.factories import PATH_TO, make_job, take_epoch

ALL_PAIRS = [(a, b) for a in JobState for b in JobState]


def test_python_job_states_equal_the_postgres_enum_labels(db: Database) -> None:
    conn = connect(db.dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
                    "WHERE t.typname = 'job_state' ORDER BY e.enumsortorder")
        labels = [r[0] for r in cur.fetchall()]
    conn.close()
    assert labels == [s.value for s in JobState]


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS, ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS])
def test_every_transition_pair_moves_only_when_allowed_expected_and_fenced(
        db: Database, database_url: str, current: JobState, new: JobState) -> None:
    epoch = take_epoch(database_url)
    job = make_job(db, epoch, current)
    if new not in TRANSITIONS[current]:
        with pytest.raises(IllegalTransition):
            transition(db, job.id, current, new, epoch)
        assert get_job(db, job.id).state == current  # type: ignore[union-attr]
        return
    stale = transition(db, job.id, current, new, epoch - 1)
    assert isinstance(stale, LostRace)
    wrong = next((s for s in JobState if s != current and new in TRANSITIONS[s]), None)
    if wrong is not None:
        assert isinstance(transition(db, job.id, wrong, new, epoch), LostRace)
    assert get_job(db, job.id).state == current  # type: ignore[union-attr]
    moved = transition(db, job.id, current, new, epoch)
    assert isinstance(moved, Moved) and moved.job.state == new and moved.job.epoch == epoch


def test_a_write_from_a_deposed_epoch_is_refused_by_the_database(db: Database, database_url: str) -> None:
    old = take_epoch(database_url)
    job = make_job(db, old, JobState.SUCCEEDED)
    take_epoch(database_url)
    assert isinstance(transition(db, job.id, JobState.SUCCEEDED, JobState.DELIVERING, old), LostRace)
    assert get_job(db, job.id).state == JobState.SUCCEEDED  # type: ignore[union-attr]


def test_the_same_request_key_creates_one_job(db: Database) -> None:
    new = NewJob(request_key="update:42", chat_id=1, user_id=1, lang="en", model="z-image",
                 input={"prompt": "x"}, deadline_s=60)
    first, second = create_job(db, new), create_job(db, new)
    assert isinstance(first, Created) and isinstance(second, Existing)
    assert first.job.id == second.job.id


def test_every_state_change_is_recorded_as_an_event(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    job = make_job(db, epoch, JobState.DELIVERED)
    from storage.jobs import job_events

    path = [e["to_state"] for e in job_events(db, job.id)]
    assert path == ["created"] + [s.value for s, _ in PATH_TO[JobState.DELIVERED]]


def test_timestamps_are_timezone_aware(db: Database, database_url: str) -> None:
    job = make_job(db, take_epoch(database_url))
    assert job.created_at.tzinfo is not None and job.deadline_at.tzinfo is not None


def test_migrating_twice_changes_nothing(database_url: str) -> None:
    def snapshot() -> list[tuple[str, ...]]:
        conn = connect(database_url)
        with conn.cursor() as cur:
            cur.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = 'public' ORDER BY 1, 2")
            rows = cur.fetchall()
            cur.execute("SELECT version FROM schema_migrations ORDER BY 1")
            rows += cur.fetchall()
        conn.close()
        return rows

    before = snapshot()
    assert migrate(database_url) == []
    assert snapshot() == before


def test_a_callback_is_consumed_once_and_only_by_the_current_epoch(db: Database, database_url: str) -> None:
    old = take_epoch(database_url)
    job = make_job(db, old, JobState.SUBMITTED)
    callback_id = inbox.store_callback(db, job.id, {"data": {"taskId": "t"}}, None, "test", notify=False)
    new = take_epoch(database_url)
    assert inbox.mark_processed(db, callback_id, old) is False
    assert [c.id for c in inbox.pending_for_job(db, job.id)] == [callback_id]
    assert inbox.mark_processed(db, callback_id, new) is True
    assert inbox.mark_processed(db, callback_id, new) is False
    assert inbox.pending_for_job(db, job.id) == []


def test_a_redelivered_update_is_stored_once(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    assert updates.store_update(db, 7, {"update_id": 7}, "a", notify=False) is True
    assert updates.store_update(db, 7, {"update_id": 7}, "b", notify=False) is False
    assert [u for u, _ in updates.unprocessed(db)] == [7]
    assert updates.mark_processed(db, [7], epoch - 1) is False
    assert [u for u, _ in updates.unprocessed(db)] == [7]
    assert updates.mark_processed(db, [7], epoch) is True
    assert updates.unprocessed(db) == []


def test_handled_updates_are_marked_in_one_batch_fenced_by_the_epoch(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    updates.store_updates(db, [(u, {"update_id": u}) for u in (21, 22, 23)], "a", notify=False)
    assert updates.mark_processed(db, [21, 23], epoch - 1) is False
    assert [u for u, _ in updates.unprocessed(db)] == [21, 22, 23]
    assert updates.mark_processed(db, [21, 23], epoch) is True
    assert [u for u, _ in updates.unprocessed(db)] == [22]
    assert updates.mark_processed(db, [21, 22], epoch) is True     # 21 again: left as it was
    assert updates.unprocessed(db) == []


def test_an_update_with_a_nul_character_is_still_stored(db: Database) -> None:
    assert updates.store_update(db, 8, {"update_id": 8, "message": {"text": "a\x00b"}}, "a", notify=False) is True
    [(update_id, body)] = updates.unprocessed(db)
    assert update_id == 8 and body["message"]["text"] == "a\ufffdb"


def test_later_migrations_keep_the_data_of_earlier_releases(pg_admin_url: str) -> None:
    import uuid

    from sim import cluster
    from tests.conftest import drop_database, with_database

    name = f"kiebot_mig_{uuid.uuid4().hex[:10]}"
    cluster.create_database(pg_admin_url, name)
    url = with_database(pg_admin_url, name)
    try:
        assert migrate(url, up_to=1) == ["0001_initial.sql"]
        conn = connect(url, autocommit=True)
        with conn.cursor() as cur:     # release 1's data, written as release 1 would have
            cur.execute("UPDATE leader_term SET epoch = 7")
            cur.execute("INSERT INTO jobs (request_key, chat_id, user_id, model, input, callback_token, deadline_at)"
                        " VALUES ('old:1', 5, 5, 'z-image', '{\"prompt\": \"kept\"}', 't', now())")
            cur.execute("INSERT INTO telegram_updates (update_id, body) VALUES (1, '{}')")
            cur.execute("INSERT INTO conversations (chat_id, user_id, step) VALUES (5, 5, 'prompt')")
        applied = migrate(url)
        assert applied and "0001_initial.sql" not in applied
        with conn.cursor() as cur:
            cur.execute("SELECT epoch FROM leader_term")
            assert cur.fetchone() == (7,)
            cur.execute("SELECT input->>'prompt', state::text FROM jobs WHERE request_key = 'old:1'")
            assert cur.fetchone() == ("kept", "created")
            cur.execute("SELECT (SELECT count(*) FROM telegram_updates), (SELECT count(*) FROM conversations)")
            assert cur.fetchone() == (1, 1)
        conn.close()
    finally:
        drop_database(pg_admin_url, name)


def test_the_pool_keeps_its_connections_and_makes_callers_wait_for_a_free_one(database_url: str) -> None:
    import threading

    database = Database(database_url, max_connections=2)
    try:
        pids = {database.one("backend_pid")["pid"] for _ in range(20)}  # type: ignore[index]
        assert len(pids) == 1, "a returned connection was closed instead of kept"
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(database.one("ping_slow")["ok"]))  # type: ignore[index]
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [1] * 6, "callers beyond the pool size must wait, not fail"
    finally:
        database.close()
