"""A user's queue across a crash: two real `kiebot run` processes, the leader killed (SIGKILL)
while one generation runs at KIE and three wait in the queue. The standby adopts them all and
starts each queued job once, in the order they were asked for."""
from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.harness import Process
from tests.support.pricing import roomy_pricing
from tests.support.waiting import wait_until

USER = 7101
PROMPTS = [f"a queued painting {n}" for n in (1, 2, 3, 4)]


def jobs_of(db: Database) -> list[Job]:
    return sorted(recent_jobs(db, USER), key=lambda j: j.id)


def test_queued_jobs_survive_a_killed_leader_in_order_and_each_starts_once(
        leader_and_standby: Callable[..., tuple[Process, Process]], telegram: TelegramSim, kie: KieSim,
        db: Database, tmp_path: Path) -> None:
    pricing = roomy_pricing(tmp_path)
    leader, standby = leader_and_standby("queue", KIEBOT_PRICING=pricing)

    kie.script_next(Fate(outcome="stuck"), count=len(PROMPTS))
    for prompt in PROMPTS:
        telegram.user_sends(USER, f"/imagine {prompt}")
    waiting = [JobState.SUBMITTED] + [JobState.QUEUED] * 3
    wait_until(lambda: [j.state for j in jobs_of(db)] == waiting, timeout=30, what="one job at KIE, three queued")

    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait(timeout=10)
    wait_until(standby.active, timeout=10, what="standby takes over")

    for n in range(1, len(PROMPTS) + 1):        # KIE finishes each task once it has it
        wait_until(lambda n=n: len(kie.tasks()) >= n, timeout=30, what=f"task {n} created")  # type: ignore[misc]
        kie.complete_now(list(kie.tasks())[n - 1])
    jobs = wait_until(lambda: (js := jobs_of(db)) and all(j.state is JobState.DELIVERED for j in js) and js,
                      timeout=30, what="every job delivered")
    assert [c["body"]["input"]["prompt"] for c in kie.calls("createTask")] == PROMPTS
    starts = [j.started_at for j in jobs]
    assert all(s is not None for s in starts) and starts == sorted(starts)    # type: ignore[type-var]
    photos = [m for m in telegram.chat(USER) if m.from_bot and m.media == "photo"]
    assert len(photos) == len(PROMPTS)
    assert all(prompt in (m.caption or "") for m, prompt in zip(photos, PROMPTS, strict=True))
