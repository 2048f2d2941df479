"""Two real instances on one database: exactly one leads; killing it hands every job over."""
from __future__ import annotations

import signal
from collections.abc import Callable

from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import job_events, recent_jobs
from tests.support.harness import Process
from tests.support.waiting import wait_until

USERS = [7001, 7002, 7003]


def test_one_of_two_instances_leads_and_the_other_finishes_the_jobs_when_it_is_killed(
        leader_and_standby: Callable[..., tuple[Process, Process]], telegram: TelegramSim, kie: KieSim,
        db: Database) -> None:
    leader, standby = leader_and_standby("sys")
    assert leader.health()["epoch"] is not None and standby.health()["epoch"] is None  # type: ignore[index]

    kie.script_next(Fate(duration_s=2.0), count=len(USERS))
    for user in USERS:
        telegram.user_sends(user, f"/imagine a painting for {user}")
    # Kill while every job waits at KIE (crashes inside createTask are the exactly-once suite's).
    wait_until(lambda: [j.state for u in USERS for j in recent_jobs(db, u)] == [JobState.SUBMITTED] * len(USERS),
               timeout=15, what="all jobs submitted to KIE")

    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait(timeout=10)
    wait_until(standby.active, timeout=10, what="standby takes over")

    jobs = wait_until(lambda: (js := [j for u in USERS for j in recent_jobs(db, u)]) and
                      all(j.terminal for j in js) and js, timeout=30, what="every job final")
    assert len(jobs) == len(USERS)
    assert {j.state for j in jobs} == {JobState.DELIVERED}
    for user in USERS:
        delivered = [m for m in telegram.chat(user) if m.from_bot and m.media == "photo"]
        assert len(delivered) == 1, f"user {user} got {len(delivered)} photos"
    epochs = {e["epoch"] for j in jobs for e in job_events(db, j.id) if e["to_state"] == "delivered"}
    assert epochs == {standby.health()["epoch"]}  # type: ignore[index]


def test_sigterm_resigns_at_once_and_the_standby_takes_over(
        leader_and_standby: Callable[..., tuple[Process, Process]]) -> None:
    import time

    leader, standby = leader_and_standby("term")
    signalled = time.monotonic()
    leader.proc.send_signal(signal.SIGTERM)
    wait_until(standby.active, timeout=5, what="standby takes over")
    took = time.monotonic() - signalled
    assert leader.proc.wait(timeout=20) == 0, leader.log()[-2000:]
    assert "resigning" in leader.log()
    assert took < 3.0, f"takeover after SIGTERM took {took:.2f}s"
