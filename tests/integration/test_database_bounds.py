"""Every wait on Postgres is bounded: a silent network, a slow statement or a held lock ends in
DatabaseUnavailable, and a pooled connection that died while idle is replaced unseen."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from storage.db import Database, DatabaseUnavailable, connect
from tests.support.tcp_proxy import PgProxy
from tests.support.waiting import wait_until

OUTER_TIMEOUT_S = 60.0    # only "it returned at all": the bounds under test are far shorter


@pytest.fixture
def proxy(database_url: str) -> Iterator[PgProxy]:
    p = PgProxy(database_url)
    yield p
    p.close()


def outcome_of(call: Callable[[], object]) -> object:
    """Run `call` in a thread and return its result or the exception it raised; fail the test
    if it has not returned within OUTER_TIMEOUT_S (a hang)."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(call())
        except Exception as exc:  # noqa: BLE001 - the exception is the outcome under test
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(OUTER_TIMEOUT_S)
    assert box, f"the call still hangs after {OUTER_TIMEOUT_S:g}s"
    return box[0]


def test_a_query_through_a_silent_network_raises_database_unavailable_instead_of_hanging(
        proxy: PgProxy) -> None:
    db = Database(proxy.url, statement_timeout_s=1.0)
    try:
        assert db.one("ping") is not None       # the pooled connection exists before the partition
        proxy.freeze()
        assert isinstance(outcome_of(lambda: db.one("ping")), DatabaseUnavailable)
        proxy.thaw()
        assert db.one("ping") is not None        # the broken connection was dropped, a new one works
    finally:
        proxy.thaw()
        db.close()


def test_a_new_connection_through_a_silent_network_raises_database_unavailable(proxy: PgProxy) -> None:
    proxy.freeze()
    db = Database(proxy.url)
    try:
        assert isinstance(outcome_of(lambda: db.one("ping")), DatabaseUnavailable)
    finally:
        proxy.thaw()
        db.close()


def test_a_statement_past_its_timeout_raises_database_unavailable(database_url: str) -> None:
    db = Database(database_url, statement_timeout_s=0.2)

    def slow() -> None:
        with db.tx() as cur:
            cur.execute("SELECT pg_sleep(30)")

    try:
        assert isinstance(outcome_of(slow), DatabaseUnavailable)
        assert db.one("ping") is not None
    finally:
        db.close()


def test_a_lock_wait_past_the_lock_timeout_raises_database_unavailable(database_url: str) -> None:
    holder = connect(database_url)
    db = Database(database_url, lock_timeout_s=0.2)

    def write_locked_table() -> None:
        with db.tx() as cur:
            cur.execute("LOCK TABLE leader_term IN ACCESS EXCLUSIVE MODE")

    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE leader_term IN ACCESS EXCLUSIVE MODE")     # held until rollback
        assert isinstance(outcome_of(write_locked_table), DatabaseUnavailable)
    finally:
        holder.rollback()
        holder.close()
        db.close()


def backend_alive(database_url: str, pid: int) -> bool:
    conn = connect(database_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            (n,) = cur.fetchone()
        return int(n) > 0
    finally:
        conn.close()


def test_the_pool_replaces_a_connection_whose_server_process_died_while_idle(database_url: str) -> None:
    db = Database(database_url, max_connections=1, idle_check_s=0.0)   # check after any idle time
    try:
        row = db.one("backend_pid")
        assert row is not None
        old_pid = int(row["pid"])
        admin = connect(database_url, autocommit=True)
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (old_pid,))
        admin.close()
        wait_until(lambda: not backend_alive(database_url, old_pid), timeout=10, what="the backend exits")

        assert db.one("ping") is not None
        row = db.one("backend_pid")
        assert row is not None and int(row["pid"]) != old_pid
    finally:
        db.close()
