"""Leadership that cannot split: lost lock connections, database outages, start/stop storms."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from actors.job_state import JobState
from actors.leader import LeaderActor, LeadershipStatus
from actors.messages import Resign
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage import inbox, updates
from storage.db import Database, connect
from storage.jobs import LostRace, recent_jobs, transition
from telemetry.metrics import Metrics
from tests.support.factories import make_job
from tests.support.harness import Instance, start_instance
from tests.support.tcp_proxy import PgProxy
from tests.support.waiting import wait_until

KEY = 4242


def terminate(database_url: str, application_name: str) -> int:
    conn = connect(database_url, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s "
                    "AND datname = current_database()",
                    (application_name,))
        (n,) = cur.fetchone()
    conn.close()
    return int(n)


def test_terminating_the_lock_connection_demotes_the_leader_within_two_seconds_and_fences_its_writes(
        instance_factory: Callable[..., Instance], db: Database, database_url: str) -> None:
    a = instance_factory()
    wait_until(lambda: a.runtime.status.active, timeout=10)
    b = instance_factory()
    old = a.runtime.status.epoch
    assert old is not None
    job = make_job(db, old, JobState.SUCCEEDED, chat_id=-1)    # a job the old leader could still touch
    callback_id = inbox.store_callback(db, job.id, {"data": {}}, None, "test", notify=False)
    updates.store_update(db, 99, {"update_id": 99}, "test", notify=False)

    assert terminate(database_url, "kiebot-leader-it-1") == 1
    started = time.monotonic()
    wait_until(lambda: a.runtime.status.epoch != old, timeout=2.0, what="old leader leaves its term")
    assert time.monotonic() - started < 2.0
    new = wait_until(lambda: a.runtime.status.epoch or b.runtime.status.epoch, timeout=5, what="a new term")
    assert new > old
    assert [a.runtime.status.active, b.runtime.status.active].count(True) == 1

    assert isinstance(transition(db, job.id, JobState.SUCCEEDED, JobState.DELIVERING, old), LostRace)
    assert inbox.mark_processed(db, callback_id, old) is False
    assert updates.mark_processed(db, [99], old) is False


def test_a_database_outage_under_load_loses_nothing_and_leadership_is_won_again(
        database_url: str, kie: KieSim, telegram: TelegramSim, db: Database) -> None:
    proxy = PgProxy(database_url)
    inst = start_instance(proxy.url, kie, telegram)
    try:
        wait_until(lambda: inst.runtime.status.active, timeout=10)
        users = list(range(3001, 3007))
        kie.script_next(Fate(duration_s=1.5), count=len(users))
        for user in users:
            telegram.user_sends(user, f"/imagine outage {user}")
        wait_until(lambda: len(kie.tasks()) >= 3, timeout=20, what="jobs at KIE")
        proxy.cut()
        for _ in range(10):      # /health stays fast and honest through the outage
            started = time.monotonic()
            health = inst.get("/health").json()
            assert time.monotonic() - started < 1.0
            time.sleep(0.1)
        assert health["db"] == "down" and health["active"] is False
        proxy.restore()
        wait_until(lambda: inst.runtime.status.active, timeout=15, what="leadership won again")
        jobs = wait_until(lambda: (js := [j for u in users for j in recent_jobs(db, u)]) and len(js) == len(users)
                          and all(j.terminal for j in js) and js, timeout=60, what="every job final")
        assert {j.state for j in jobs} == {JobState.DELIVERED}
        for user in users:
            assert sum(1 for m in telegram.chat(user) if m.from_bot and m.media == "photo") == 1
    finally:
        inst.runtime.stop()
        proxy.close()


def test_fifty_concurrent_leader_start_stops_leak_no_threads_locks_or_connections(database_url: str) -> None:
    baseline = threading.active_count()
    started_supervisors: list[int] = []

    def supervisor(epoch: int) -> pykka.ActorRef[Any]:
        started_supervisors.append(epoch)
        return _Idle.start()

    def cycle(n: int) -> None:
        ref = LeaderActor.start(database_url, KEY, f"storm-{n}", supervisor, [], Metrics(), LeadershipStatus())
        time.sleep(0.01 * (n % 5))
        ref.ask(Resign(), timeout=10)
        ref.stop(timeout=10)

    threads = [threading.Thread(target=cycle, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    wait_until(lambda: threading.active_count() <= baseline, timeout=10, what="threads back to baseline")
    assert pykka.ActorRegistry.get_all() == []
    conn = connect(database_url, autocommit=True)
    with conn.cursor() as cur:
        # pg_locks is the whole server's: other workers' tests hold the same key in their own databases.
        wait_until(lambda: (cur.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
                                        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                                        (KEY,)) or cur.fetchone() == (0,)), timeout=5, what="no advisory lock left")
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'kiebot-leader-storm-%%'")
        wait_until(lambda: (cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                                        "'kiebot-leader-storm-%%'") or cur.fetchone() == (0,)), timeout=5,
                   what="no stray connections")
    conn.close()
    epochs = sorted(started_supervisors)
    assert len(epochs) == len(set(epochs)), "two leaders shared an epoch"


class _Idle(pykka.ThreadingActor):
    """A stand-in supervisor for the storm: it only has to start and stop."""


def test_a_standby_takes_over_on_the_resigning_leaders_notify_not_on_its_retry_timer(
        database_url: str, monkeypatch: Any) -> None:
    """With the retry timer at 60 s, only the NOTIFY can wake a standby within the wait below."""
    import actors.leader

    monkeypatch.setattr(actors.leader, "ACQUIRE_RETRY_INTERVAL_S", 60.0)

    def start(name: str) -> tuple[pykka.ActorRef[Any], LeadershipStatus]:
        status = LeadershipStatus()
        ref = LeaderActor.start(database_url, KEY, name, lambda epoch: _Idle.start(), [], Metrics(), status)
        return ref, status

    leader, leader_status = start("first")
    wait_until(lambda: leader_status.active, timeout=10, what="the first instance leads")
    for trial in range(5):
        standby, standby_status = start(f"standby-{trial}")
        wait_until(lambda: standby_status.db_ok, timeout=10, what="the standby made its first attempt")
        assert not standby_status.active
        leader.ask(Resign(), timeout=10)
        leader.stop(timeout=10)
        wait_until(lambda: standby_status.active, timeout=10, what=f"trial {trial}: the standby takes over")
        leader, leader_status = standby, standby_status
    leader.ask(Resign(), timeout=10)
    leader.stop(timeout=10)
