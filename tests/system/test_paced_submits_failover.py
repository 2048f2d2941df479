"""Jobs waiting for KIE's createTask pace across a crash: two real `kiebot run` processes, more
jobs at once than KIE's account takes in one window (20 per 10 s), and the leader killed
(SIGKILL) while the rest wait for their turn. They wait in `created`, which the next leader
submits; in `submitting` they could only have waited for a callback or their deadline (15
minutes for an image), since KIE might have had them."""
from __future__ import annotations

import signal
from collections.abc import Callable

from actors.job_state import JobState
from kie.client import CREATE_LIMIT
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.harness import Process
from tests.support.waiting import wait_until

PACE = CREATE_LIMIT[0]
USERS = [7301 + n for n in range(PACE + 5)]     # one free image each: five more than one window


def jobs_of(db: Database) -> list[Job]:
    return sorted((j for u in USERS for j in recent_jobs(db, u)), key=lambda j: j.id)


def test_jobs_waiting_for_kies_pace_when_the_leader_dies_are_submitted_by_the_next_one(
        leader_and_standby: Callable[..., tuple[Process, Process]], telegram: TelegramSim, kie: KieSim,
        db: Database) -> None:
    leader, standby = leader_and_standby("paced")

    kie.script_next(Fate(outcome="stuck"), count=len(USERS))     # nothing finishes before the kill
    for user in USERS:
        telegram.user_sends(user, "/imagine a lighthouse waiting its turn")
    wait_until(lambda: len(jobs_of(db)) == len(USERS) and len(kie.tasks()) == PACE, timeout=30,
               what="every job made and one window's worth at KIE")
    waiting = [j for j in jobs_of(db) if j.kie_task_id is None]
    assert len(waiting) == len(USERS) - PACE
    assert {j.state for j in waiting} == {JobState.CREATED}

    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait(timeout=10)
    wait_until(standby.active, timeout=10, what="the standby takes over")

    wait_until(lambda: len(kie.tasks()) == len(USERS), timeout=60, what="the waiting jobs reach KIE")
    for task_id in kie.tasks():
        kie.complete_now(task_id)
    wait_until(lambda: all(j.state is JobState.DELIVERED for j in jobs_of(db)), timeout=60,
               what="every job delivered")
    assert len(kie.tasks()) == len(USERS)           # nothing was submitted twice
    for user in USERS:
        assert [m.media for m in telegram.chat(user) if m.from_bot and m.media] == ["photo"]
