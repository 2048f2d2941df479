"""Work a standby stores reaches the leader at once, through LISTEN/NOTIFY, not the sweep.

Every instance's PUBLIC_URL is the standby's address, as behind a load balancer that sends all
KIE callbacks and Telegram webhooks to the instance that does not lead. The sweeps run once an
hour here, so only the notification can bring the work to the leader within the waits below."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests

import actors.supervisor
import bot_gateway
from actors.job_state import JobState
from sim.kie import KieSim
from sim.telegram import ChatMessage, TelegramSim
from storage import inbox, updates
from storage.db import Database, connect
from storage.jobs import recent_jobs
from storage.notifications import ListenConnection, StoredWork
from tests.support.factories import make_job, take_epoch
from tests.support.harness import Instance, free_port
from tests.support.waiting import wait_until

USER = 7301
SECRET = "stored-work-webhook-secret"
HOUR_S = 3600.0


@pytest.fixture
def no_sweeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor's and the intake's sweeps (the safety net) cannot help within a test."""
    monkeypatch.setattr(actors.supervisor, "SWEEP_INTERVAL_S", HOUR_S)
    monkeypatch.setattr(bot_gateway, "INBOX_SWEEP_S", HOUR_S)


@pytest.fixture
def pair(instance_factory: Callable[..., Instance], no_sweeps: None) -> Callable[..., tuple[Instance, Instance]]:
    """A listening leader and a standby that receives everything sent to PUBLIC_URL."""

    def make(**env: str) -> tuple[Instance, Instance]:
        port = free_port()
        # Polling KIE once an hour: only the callback can finish a job.
        env = {"PUBLIC_URL": f"http://127.0.0.1:{port}", "KIEBOT_POLL_BASE_S": str(HOUR_S), **env}
        leader = instance_factory(**env)
        wait_until(lambda: leader.runtime.status.active, timeout=10, what="the first instance leads")
        wait_until(lambda: leader.runtime.listener.backend_pid, timeout=10, what="the leader listens")
        standby = instance_factory(HTTP_PORT=str(port), **env)
        wait_until(lambda: standby.runtime.status.db_ok, timeout=10, what="the standby is up")
        assert not standby.runtime.status.active
        return leader, standby

    return make


def photos(chat: list[ChatMessage]) -> list[ChatMessage]:
    return [m for m in chat if m.from_bot and m.media == "photo"]


def has_button(label: str) -> Callable[[list[ChatMessage]], bool]:
    return lambda chat: any(label in b[0] for m in chat if m.from_bot for row in m.buttons for b in row)


def metrics_of(inst: Instance) -> str:
    # The standby's HTTP_PORT was chosen here, not by the harness: ask its gateway for the port.
    return requests.get(f"http://127.0.0.1:{inst.runtime.http.port}/metrics", timeout=5).text


def listening_sessions(database_url: str, instance_id: str) -> list[int]:
    conn = connect(database_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
                        (f"kiebot-listen-{instance_id}",))
            return [int(pid) for (pid,) in cur.fetchall()]
    finally:
        conn.close()


def terminate(database_url: str, pid: int) -> None:
    conn = connect(database_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        conn.close()


def test_a_callback_stored_by_the_standby_is_delivered_by_the_leader_without_the_sweep(
        pair: Callable[..., tuple[Instance, Instance]], telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    _leader, standby = pair()
    telegram.user_sends(USER, "/imagine a lighthouse at dusk")
    chat = telegram.wait_for_chat(USER, lambda c: len(photos(c)) == 1, timeout=15)
    assert len(photos(chat)) == 1
    [job] = recent_jobs(db, USER)
    wait_until(lambda: recent_jobs(db, USER)[0].state == JobState.DELIVERED, what="the job recorded delivered")
    [attempt] = kie.callback_attempts()
    assert f":{standby.runtime.http.port}/" in attempt["url"]
    assert 'kiebot_callbacks_total{outcome="stored"} 1.0' in metrics_of(standby)
    wait_until(lambda: inbox.pending_for_job(db, job.id) == [], what="the callback marked processed")


@pytest.mark.parametrize("listener_killed", [False, True], ids=["listening", "after_its_session_was_killed"])
def test_a_webhook_update_stored_by_the_standby_is_answered_by_the_leader_without_the_sweep(
        pair: Callable[..., tuple[Instance, Instance]], telegram: TelegramSim, database_url: str,
        listener_killed: bool) -> None:
    leader, standby = pair(BOT_MODE="webhook", TELEGRAM_WEBHOOK_SECRET=SECRET)
    if listener_killed:
        old = leader.runtime.listener.backend_pid
        assert old is not None
        terminate(database_url, old)
        wait_until(lambda: leader.runtime.listener.backend_pid not in (None, old), timeout=10,
                   what="the leader listens again on a new session")
    telegram.user_sends(USER, "/start")
    telegram.wait_for_chat(USER, has_button("Create image"), timeout=10)
    # Telegram posted it to PUBLIC_URL, where only the standby listens.
    assert [d.status for d in telegram.webhook_deliveries()] == [200]
    assert standby.runtime.http.port != leader.runtime.http.port


def test_only_the_leader_holds_a_listening_session(
        pair: Callable[..., tuple[Instance, Instance]], database_url: str) -> None:
    leader, standby = pair()
    assert listening_sessions(database_url, leader.runtime.settings.instance_id) == [
        leader.runtime.listener.backend_pid]
    assert standby.runtime.listener.backend_pid is None
    assert listening_sessions(database_url, standby.runtime.settings.instance_id) == []


@pytest.fixture
def listening(database_url: str) -> Iterator[ListenConnection]:
    conn = ListenConnection(database_url, "kiebot-listen-test")
    yield conn
    conn.close()


def heard(conn: ListenConnection, until_job: int) -> list[StoredWork]:
    """Every batch up to and including the one that names `until_job` (notifications from one
    session arrive in commit order, so nothing sent before it can come later)."""
    batches: list[StoredWork] = []

    def got_it() -> bool:
        batches.append(conn.wait(0.05))
        return until_job in batches[-1].job_ids

    wait_until(got_it, what=f"a notification for job {until_job}")
    return batches


def test_storing_notifies_once_it_commits_with_the_job_id_and_a_redelivered_update_notifies_nobody(
        db: Database, database_url: str, listening: ListenConnection) -> None:
    epoch = take_epoch(database_url)
    job, marker = make_job(db, epoch), make_job(db, epoch)
    assert updates.store_update(db, 9_300_001, {"update_id": 9_300_001}, "test", notify=True)
    inbox.store_callback(db, job.id, {"data": {"taskId": "t"}}, None, "test", notify=True)
    inbox.store_callback(db, job.id, {"data": {"taskId": "t"}}, None, "test", notify=True)
    inbox.store_callback(db, marker.id, {}, None, "test", notify=True)
    batches = heard(listening, marker.id)
    assert [j for b in batches for j in b.job_ids if j == job.id] != []
    assert any(b.updates for b in batches)

    assert not updates.store_update(db, 9_300_001, {"update_id": 9_300_001}, "test", notify=True)
    later = make_job(db, epoch)
    inbox.store_callback(db, later.id, {}, None, "test", notify=True)
    assert not any(b.updates for b in heard(listening, later.id))


def test_a_listener_skips_what_its_own_instance_stored(db: Database, database_url: str) -> None:
    """The instance that stored a callback or an update woke its own supervisor or intake at
    once; hearing it again through NOTIFY would cost a second read of the inbox."""
    epoch = take_epoch(database_url)
    conn = ListenConnection(database_url, "kiebot-listen-test", own="me")
    try:
        mine, theirs = make_job(db, epoch), make_job(db, epoch)
        assert updates.store_update(db, 9_300_101, {"update_id": 9_300_101}, "me", notify=True)
        inbox.store_callback(db, mine.id, {}, None, "me", notify=True)
        inbox.store_callback(db, theirs.id, {}, None, "other", notify=True)
        batches = heard(conn, theirs.id)
        assert mine.id not in [j for b in batches for j in b.job_ids]
        assert not any(b.updates for b in batches)
        assert updates.store_update(db, 9_300_102, {"update_id": 9_300_102}, "other", notify=True)
        marker = make_job(db, epoch)
        inbox.store_callback(db, marker.id, {}, None, "other", notify=True)
        assert any(b.updates for b in heard(conn, marker.id))
    finally:
        conn.close()
