"""A leader whose lock session goes silent (partitioned, hung, behind a proxy that keeps the
sockets open) does not keep the cluster leaderless: the server ends the session after
KIEBOT_LOCK_SILENCE_S, and a standby leads."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from sim.kie import KieSim
from sim.telegram import TelegramSim
from storage.db import DatabaseUnavailable
from storage.leader_term import LockConnection
from tests.support.harness import Instance, start_instance
from tests.support.tcp_proxy import PgProxy
from tests.support.waiting import wait_until

KEY = 4343
# Generous: the bound under test is the knob (1-2 s) plus one lock retry; this only catches "never".
TAKEOVER_TIMEOUT_S = 30.0


@pytest.fixture
def proxy(database_url: str) -> Iterator[PgProxy]:
    p = PgProxy(database_url)
    yield p
    p.close()


def takes_lock(conn: LockConnection) -> bool:
    try:
        return conn.try_lock()
    except DatabaseUnavailable:
        return False


def test_the_server_frees_the_lock_of_a_lock_session_gone_silent(proxy: PgProxy, database_url: str) -> None:
    silent = LockConnection(proxy.url, KEY, "kiebot-leader-silent", silence_s=1.0)
    standby = LockConnection(database_url, KEY, "kiebot-leader-standby", silence_s=1.0)
    try:
        assert silent.try_lock()
        assert not standby.try_lock()
        proxy.freeze()
        wait_until(lambda: takes_lock(standby), timeout=TAKEOVER_TIMEOUT_S, what="the standby takes the lock")
    finally:
        proxy.thaw()
        silent.close()
        standby.close()


def test_a_live_lock_session_that_keeps_checking_keeps_its_lock(database_url: str) -> None:
    leader = LockConnection(database_url, KEY, "kiebot-leader-live", silence_s=1.0)
    standby = LockConnection(database_url, KEY, "kiebot-leader-standby", silence_s=1.0)
    try:
        assert leader.try_lock()
        # Checking every 0.2 s for 3 silences: the server must not end a session that talks.
        checks = 0

        def checked_long_enough() -> bool:
            nonlocal checks
            assert leader.lock_held() and not standby.try_lock()
            checks += 1
            return checks >= 15

        wait_until(checked_long_enough, timeout=TAKEOVER_TIMEOUT_S, interval=0.2, what="15 lock checks")
    finally:
        leader.close()
        standby.close()


@pytest.fixture
def partitioned_pair(proxy: PgProxy, database_url: str, kie: KieSim,
                     telegram: TelegramSim) -> Iterator[tuple[Instance, Instance]]:
    """Instance A reaches Postgres through the proxy, B directly; both with a 2 s silence knob."""
    started: list[Instance] = []
    try:
        a = start_instance(proxy.url, kie, telegram, instance_id="it-a", KIEBOT_LOCK_SILENCE_S="2")
        started.append(a)
        wait_until(lambda: a.runtime.status.active, timeout=10, what="A leads")
        b = start_instance(database_url, kie, telegram, instance_id="it-b", KIEBOT_LOCK_SILENCE_S="2")
        started.append(b)
        wait_until(lambda: b.runtime.status.db_ok, timeout=10, what="B is a healthy standby")
        yield a, b
    finally:
        proxy.thaw()
        for inst in reversed(started):
            inst.runtime.stop()


def test_a_standby_leads_when_the_leaders_database_traffic_goes_silent(
        proxy: PgProxy, partitioned_pair: tuple[Instance, Instance]) -> None:
    a, b = partitioned_pair
    assert a.runtime.status.active and not b.runtime.status.active
    old_epoch = a.runtime.status.epoch
    assert old_epoch is not None

    proxy.freeze()

    wait_until(lambda: b.get("/health").json()["active"], timeout=TAKEOVER_TIMEOUT_S, what="B leads")
    assert (b.runtime.status.epoch or 0) > old_epoch
    # A cannot hear the server, so it must give up on its own rather than stay "active" forever.
    wait_until(lambda: not a.get("/health").json()["active"], timeout=TAKEOVER_TIMEOUT_S, what="A steps down")
