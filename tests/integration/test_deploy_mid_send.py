"""Deploys in the middle of a send (found by an adversarial review, each reproduced first):

- a handler's reply on the wire when the old leader stops is recorded as handled, so the next
  leader does not answer the update a second time (nor leave a second, stale progress message);
- a database blip while a JobActor waits out a 429 does not lose the result under
  at_most_once: the claim was released with its parts before the wait;
- a deposed leader's "generating" edit that lands after the new leader's failure notice is
  overwritten again: the new leader shows the final stage once more after the drain bound.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest

from actors import job as job_actor
from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage import updates
from storage.db import Database, connect
from storage.jobs import get_job, recent_jobs
from tests.support.harness import Instance
from tests.support.log_events import ActionSeen
from tests.support.waiting import wait_until

USER_INTAKE, USER_BLIP, USER_STALE = 9911, 9921, 9931


def settle(telegram: TelegramSim) -> None:
    """Every sendMessage that reached Telegram has been performed (A's slow one included)."""
    wait_until(lambda: len(telegram.calls("sendMessage")) == telegram.arrivals("sendMessage"),
               timeout=15, what="every sendMessage performed")


def leading(factory: Callable[..., Instance]) -> Instance:
    inst = factory()
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="leads")
    return inst


def test_help_reply_on_the_wire_during_a_deploy_is_sent_once(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database) -> None:
    a = leading(instance_factory)
    b = instance_factory()
    telegram.user_sends(USER_INTAKE, "/start")
    telegram.wait_for_chat(USER_INTAKE, lambda chat: any(m.from_bot for m in chat), timeout=10)
    before = len([m for m in telegram.chat(USER_INTAKE) if m.from_bot])

    telegram.slow("sendMessage", 2.0)
    telegram.peak_in_flight = 0
    telegram.user_sends(USER_INTAKE, "/help")
    wait_until(lambda: telegram.peak_in_flight >= 1, timeout=10, what="A's /help reply is on the wire")

    stopper = threading.Thread(target=a.runtime.stop)      # what SIGTERM does
    stopper.start()
    wait_until(lambda: b.runtime.status.active, timeout=10, what="B leads")
    stopper.join(30)
    wait_until(lambda: updates.backlog(db) == 0, timeout=15, what="update handled")
    telegram.slow("sendMessage", 0)
    settle(telegram)
    replies = [m for m in telegram.chat(USER_INTAKE) if m.from_bot][before:]
    assert len(replies) == 1, [r.text[:40] for r in replies]


def test_imagine_progress_on_the_wire_during_a_deploy_is_sent_once(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database) -> None:
    a = leading(instance_factory)
    b = instance_factory()
    telegram.slow("sendMessage", 2.0)
    telegram.peak_in_flight = 0
    telegram.user_sends(USER_INTAKE, "/imagine a cat")
    wait_until(lambda: telegram.peak_in_flight >= 1, timeout=10, what="A's progress message is on the wire")
    stopper = threading.Thread(target=a.runtime.stop)
    stopper.start()
    wait_until(lambda: b.runtime.status.active, timeout=10, what="B leads")
    stopper.join(30)
    wait_until(lambda: updates.backlog(db) == 0, timeout=15, what="update handled")
    telegram.slow("sendMessage", 0)
    settle(telegram)
    jobs = recent_jobs(db, USER_INTAKE)
    chat_texts = [(m.message_id, (m.text or "")[:50]) for m in telegram.chat(USER_INTAKE) if m.from_bot]
    assert len(jobs) == 1
    assert len([m for m in telegram.chat(USER_INTAKE) if m.from_bot and m.message_id != jobs[0].progress_message_id
                and m.media is None]) == 0, (chat_texts, jobs[0].progress_message_id)


@pytest.mark.parametrize("policy", ["at_most_once", "at_least_once"])
def test_a_db_blip_while_waiting_out_a_429_does_not_lose_the_result(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        database_url: str, pg_admin_url: str, policy: str) -> None:
    inst = instance_factory(DELIVERY_POLICY=policy)
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="leads")
    kie.script_next(Fate(outcome="stuck", result_count=1))
    telegram.user_sends(USER_BLIP, "/imagine a heron")
    job = wait_until(lambda: (j := recent_jobs(db, USER_BLIP)) and j[0].state == JobState.SUBMITTED and j[0],
                     timeout=10, what="submitted")
    telegram.fail_next("sendPhoto", 1, 429, retry_after=6)
    send_error = ActionSeen("send_error", job.id)
    # The actor meets the outage either in the write that records the 429 (it retries that write
    # with backoff for up to a minute) or, once that write is done, in its next read (it crashes
    # and the supervisor restarts it): both are the moment the outage may end.
    met = ActionSeen(("record_retry", "child_failed_transient"), job.id)
    logging.getLogger("actors.job").addHandler(send_error)
    logging.getLogger("actors.job").addHandler(met)
    logging.getLogger("actors.supervisor").addHandler(met)
    name = urlsplit(database_url).path.lstrip("/")
    admin = connect(pg_admin_url, autocommit=True)
    try:
        kie.complete_now(job.kie_task_id or "")
        assert send_error.seen.wait(15), "no 429"
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %s AND datname = %s",
                        (f"kiebot-{inst.runtime.settings.instance_id}", name))
        assert met.seen.wait(20), "the JobActor did not meet the outage"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
        logging.getLogger("actors.job").removeHandler(send_error)
        logging.getLogger("actors.job").removeHandler(met)
        logging.getLogger("actors.supervisor").removeHandler(met)

    final = wait_until(lambda: (j := get_job(db, job.id)) is not None and j.terminal and j, timeout=30,
                       what="final")
    photos = [m for m in telegram.chat(USER_BLIP) if m.from_bot and m.media == "photo"]
    assert (final.state, len(photos)) == (JobState.DELIVERED, 1)


def test_a_deposed_progress_edit_does_not_overwrite_the_failure_notice(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The new leader shows the final stage again once the old one's drain is surely over
    # (SHOW_FINAL_AGAIN_S, 30 s); here the old edit is on the wire for 10 s, so 12 s will do.
    monkeypatch.setattr(job_actor, "SHOW_FINAL_AGAIN_S", 12.0)
    a = instance_factory()
    wait_until(lambda: a.runtime.status.active, timeout=10, what="A leads")
    b = instance_factory()
    kie.script_next(Fate(outcome="fail", fail_msg="content policy", duration_s=9))
    telegram.slow("editMessageText", 10)
    telegram.user_sends(USER_STALE, "/imagine refused later")
    job = wait_until(lambda: (j := recent_jobs(db, USER_STALE)) and j[0].state == JobState.SUBMITTED and j[0],
                     timeout=10, what="submitted")
    telegram.wait_for_arrival("editMessageText", 1, timeout=15)     # A's "generating" edit, on the wire
    telegram.slow("editMessageText", 0)
    stopper = threading.Thread(target=a.runtime.stop)                 # a deploy
    stopper.start()
    wait_until(lambda: b.runtime.status.active, timeout=10, what="B leads")
    final = wait_until(lambda: (j := get_job(db, job.id)) is not None and j.terminal and j, timeout=30,
                       what="final")
    assert (final.state, final.outcome) == (JobState.DELIVERED, "failure")
    stopper.join(40)        # A drained its wire: its edit has been performed
    wait_until(lambda: len([c for c in telegram.calls("editMessageText") if c.params["text"].startswith("❌")]) >= 2,
               timeout=30, what="the notice shown again after the old leader's drain")
    [progress] = [m for m in telegram.chat(USER_STALE) if m.message_id == final.progress_message_id]
    assert (progress.text or "").startswith("❌"), progress.text
