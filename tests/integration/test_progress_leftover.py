"""One message per job across a change of leader (#14): a job's progress message is gone once its
result is in the chat, even when the leader steps down the moment the result lands.

`kiebot demo` once ended with a "⏳ generating… 0 s [✖ Cancel]" message above the results of a
user who had queued three images and cancelled the third. The progress message of a result was
deleted after `delivered` was recorded, and that delete waits for the chat's next send slot
(about a second after the result). A leader stepping down in that second (a deploy, a lost lock)
had the delete refused at dispatch, and no leader looked at the finished job again; a 429 on
the delete lost it the same way. The demo, which stops its instances as soon as every job is
final, met the first case. Now the delete is part of the delivery: after every part is recorded
and before `delivered`, under the delivery's claim, which a refused or delayed delete hands on.

Each case asserts what the user sees in the simulated chat once things settle: every result
once, and no progress message left of a delivered job.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, TelegramSim
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.harness import Instance
from tests.support.pricing import roomy_pricing
from tests.support.sessions import terminate
from tests.support.waiting import the_job, wait_until

USER = 8601
PROMPTS = ("a snail racing a leaf", "a castle made of bread", "a very tired moon")


def jobs_of(db: Database) -> list[Job]:
    return sorted(recent_jobs(db, USER, 50), key=lambda j: j.id)


def the_jobs(db: Database, *states: JobState) -> list[Job]:
    """The user's jobs, oldest first, once they are in exactly these states."""
    seen: list[Job] = []

    def reached() -> list[Job]:
        seen[:] = jobs_of(db)
        return list(seen) if [j.state for j in seen] == list(states) else []
    try:
        return wait_until(reached, timeout=30, what=f"the jobs in {[s.value for s in states]}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; they are {[(j.id, j.state.value) for j in seen]}") from None


def words_of(message: ChatMessage | None) -> str:
    return (message.text or message.caption or "") if message is not None else ""


def progress_of(telegram: TelegramSim, job: Job) -> ChatMessage | None:
    """The job's progress message as the chat shows it now (None: gone)."""
    return next((m for m in telegram.chat(USER) if m.message_id == job.progress_message_id), None)


def photos(telegram: TelegramSim) -> list[ChatMessage]:
    return [m for m in telegram.chat(USER) if m.from_bot and m.media == "photo"]


def no_progress_left(telegram: TelegramSim, db: Database) -> None:
    """Every delivered job's progress message is gone from the chat (waited for: a delete
    takes its chat slot after the result)."""
    def leftovers() -> list[str]:
        delivered = [j for j in jobs_of(db) if j.state is JobState.DELIVERED]
        return [f"job {j.id}: {words_of(progress_of(telegram, j))!r}" for j in delivered
                if progress_of(telegram, j) is not None]
    try:
        wait_until(lambda: not leftovers(), timeout=20, what="no progress message left of a delivered job")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; left in the chat: {leftovers()}") from None


def leading(instance_factory: Callable[..., Instance], tmp_path: Path) -> Instance:
    """A leading instance with room in the free tier."""
    leader = instance_factory(KIEBOT_PRICING=roomy_pricing(tmp_path))
    wait_until(lambda: leader.runtime.status.active, timeout=10, what="the first instance leads")
    return leader


def two_instances(instance_factory: Callable[..., Instance], tmp_path: Path) -> tuple[Instance, Instance]:
    """A leading and a standby, with room in the free tier."""
    leader = leading(instance_factory, tmp_path)
    standby = instance_factory(KIEBOT_PRICING=roomy_pricing(tmp_path))
    wait_until(lambda: standby.runtime.status.db_ok, timeout=10, what="the standby is up")
    return leader, standby


def queue_three_and_cancel_the_third(telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    """The demo's queue user: three /imagine in a row (one runs, two wait), the third cancelled
    from its progress message while it waits; then the first one's result, and the second one
    generating ("generating… 0 s", with Cancel)."""
    kie.script_next(Fate(outcome="stuck"), len(PROMPTS))
    for prompt in PROMPTS:
        telegram.user_sends(USER, f"/imagine {prompt}")
    first, second, third = the_jobs(db, JobState.SUBMITTED, JobState.QUEUED, JobState.QUEUED)
    telegram.user_presses(USER, "Cancel", message_id=third.progress_message_id)
    the_job(db, third.id, JobState.CANCELLED)
    kie.complete_now(next(iter(kie.tasks())))
    the_job(db, first.id, JobState.DELIVERED)
    telegram.wait_for_chat(USER, lambda c: progress_of(telegram, first) is None, timeout=10)
    second = the_job(db, second.id, JobState.SUBMITTED)
    telegram.wait_for_chat(USER, lambda c: "generating" in words_of(progress_of(telegram, second)))


def finish_second_as_its_result_lands(telegram: TelegramSim, kie: KieSim, step_down: Callable[[], object]) -> None:
    """KIE finishes the second job; the leader steps down the moment its photo is in the chat."""
    kie.complete_now(list(kie.tasks())[1])
    telegram.wait_for_chat(USER, lambda c: len(photos(telegram)) == 2, timeout=20)
    step_down()


def assert_settled(telegram: TelegramSim, db: Database) -> None:
    the_jobs(db, JobState.DELIVERED, JobState.DELIVERED, JobState.CANCELLED)
    no_progress_left(telegram, db)
    assert [words_of(m).split(": ", 1)[-1] for m in photos(telegram)] == list(PROMPTS[:2])
    cancel_buttons = [words_of(m) for m in telegram.chat(USER)
                      if m.from_bot and any("Cancel" in b[0] for row in m.buttons for b in row)]
    assert cancel_buttons == []


def test_a_deploy_as_the_result_lands_leaves_no_progress_message(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        tmp_path: Path) -> None:
    """The demo's case: the leader resigns (SIGTERM, a deploy) right after a result is sent."""
    leader, standby = two_instances(instance_factory, tmp_path)
    queue_three_and_cancel_the_third(telegram, kie, db)
    stopper = threading.Thread(target=leader.runtime.stop)
    finish_second_as_its_result_lands(telegram, kie, stopper.start)
    wait_until(lambda: standby.runtime.status.active, timeout=15, what="the standby takes over")
    stopper.join(40)
    assert_settled(telegram, db)


def test_a_lost_lock_as_the_result_lands_leaves_no_progress_message(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        database_url: str, tmp_path: Path) -> None:
    """The leader loses its lock (its lock session ends) right after a result is sent; the first
    try of the delete is refused with a short 429, so it is still waiting when the leader notices."""
    leader, standby = two_instances(instance_factory, tmp_path)
    queue_three_and_cancel_the_third(telegram, kie, db)
    telegram.fail_next("deleteMessage", 1, status=429, retry_after=3)
    finish_second_as_its_result_lands(
        telegram, kie, lambda: terminate(database_url, f"kiebot-leader-{leader.runtime.settings.instance_id}"))
    wait_until(lambda: standby.runtime.status.active, timeout=15, what="the standby takes over")
    assert_settled(telegram, db)


def test_a_long_429_on_the_delete_is_waited_out(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        tmp_path: Path) -> None:
    """No change of leader: Telegram answers the delete with a 429 too long to wait inline."""
    leading(instance_factory, tmp_path)
    queue_three_and_cancel_the_third(telegram, kie, db)
    telegram.fail_next("deleteMessage", 1, status=429, retry_after=7)
    finish_second_as_its_result_lands(telegram, kie, lambda: None)
    assert_settled(telegram, db)
