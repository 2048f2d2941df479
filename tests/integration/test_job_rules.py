"""Job rules end to end: KIE's optional HMAC signatures, trusting callbacks when configured,
deadlines, a job that crashes its actor, and updates that reach a passive instance."""
from __future__ import annotations

import json
from collections.abc import Callable

import requests

from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage.db import Database, connect
from storage.jobs import get_job, recent_jobs
from tests.support.factories import make_job
from tests.support.harness import Instance, start_instance
from tests.support.waiting import wait_until

USER = 4601
HMAC_KEY = "kie-hmac-key-for-tests"


def final_job(db: Database, user: int = USER):  # type: ignore[no-untyped-def]
    [job] = wait_until(lambda: (js := recent_jobs(db, user)) and all(j.terminal for j in js) and js, timeout=20,
                       what="job final")
    return job


def test_signed_callbacks_are_accepted_and_bad_stale_or_missing_signatures_refused(
        database_url: str, telegram: TelegramSim, db: Database) -> None:
    with KieSim(default_duration_s=0.2, hmac_key=HMAC_KEY) as kie:
        inst = start_instance(database_url, kie, telegram, KIE_WEBHOOK_HMAC_KEY=HMAC_KEY, KIEBOT_POLL_BASE_S="0.4")
        try:
            wait_until(lambda: inst.runtime.status.active, timeout=10)
            kie.script_next(Fate(signature="valid"))
            telegram.user_sends(USER, "/imagine signed")
            assert final_job(db).state == JobState.DELIVERED
            assert [a["status"] for a in kie.callback_attempts()] == [200]
            for n, fault in enumerate(("bad", "stale", "missing")):
                user = USER + 1 + n
                kie.script_next(Fate(signature=fault))
                telegram.user_sends(user, f"/imagine {fault} signature")
                task = wait_until(lambda u=user: (js := recent_jobs(db, u)) and js[0].kie_task_id, timeout=10)
                kie.wait_for_callbacks(1, task_id=task, timeout=10)
                assert kie.callback_attempts(task)[0]["status"] == 401
                assert final_job(db, user).state == JobState.DELIVERED     # polling still finishes the job
            # KIE tries each refused callback 1 + 3 times, and every try is refused.
            wait_until(lambda: sum(1 for a in kie.callback_attempts() if a["status"] == 401) == 12, timeout=15,
                       what="KIE done retrying the refused callbacks")
            assert 'kiebot_callbacks_total{outcome="forged"} 12.0' in inst.get("/metrics").text
        finally:
            inst.runtime.stop()


def test_with_callbacks_trusted_a_callback_delivers_without_asking_kie(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    inst = instance_factory(KIE_CONFIRM_CALLBACKS="false", KIEBOT_POLL_BASE_S="5")
    wait_until(lambda: inst.runtime.status.active, timeout=10)
    telegram.user_sends(USER, "/imagine trusted")
    assert final_job(db).state == JobState.DELIVERED
    assert kie.calls("recordInfo") == []


def test_a_job_past_its_deadline_fails_with_a_clear_message(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    telegram.user_sends(USER, "hi")
    kie.script_next(Fate(outcome="stuck"))
    epoch = bot.runtime.status.epoch
    assert epoch is not None
    job = make_job(db, epoch, JobState.CREATED, chat_id=USER, deadline_s=2)
    bot.runtime._to_supervisor_job(job.id)
    final = wait_until(lambda: (j := get_job(db, job.id)) and j.terminal and j, timeout=20, what="deadline")
    assert (final.state, final.outcome) == (JobState.DELIVERED, "failure")
    telegram.wait_for_chat(USER, lambda c: any("longer than" in (m.text or "") for m in c))


def test_a_job_that_crashes_its_actor_is_retried_then_failed_with_a_message(
        bot: Instance, telegram: TelegramSim, db: Database, database_url: str) -> None:
    telegram.user_sends(USER, "hi")
    conn = connect(database_url, autocommit=True)
    with conn.cursor() as cur:      # a row our code cannot use: input is not an object
        cur.execute("INSERT INTO jobs (request_key, chat_id, user_id, model, input, callback_token, deadline_at) "
                    "VALUES ('poison', %s, %s, 'z-image', '[\"not an object\"]', 't', now() + interval '1 hour') "
                    "RETURNING id", (USER, USER))
        (job_id,) = cur.fetchone()
    conn.close()
    bot.runtime._to_supervisor_job(job_id)
    final = wait_until(lambda: (j := get_job(db, job_id)) and j.terminal and j, timeout=30, what="poison job final")
    assert (final.state, final.outcome) == (JobState.DELIVERED, "failure")
    telegram.wait_for_chat(USER, lambda c: any("on our side" in (m.text or "") for m in c))
    assert "kiebot_job_actor_restarts_total 3.0" in bot.get("/metrics").text


def test_a_webhook_update_that_reaches_the_passive_instance_is_processed_by_the_leader(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database) -> None:
    secret = "passive-secret"
    leader = instance_factory(BOT_MODE="webhook", TELEGRAM_WEBHOOK_SECRET=secret)
    wait_until(lambda: leader.runtime.status.active, timeout=10)
    passive = instance_factory(BOT_MODE="webhook", TELEGRAM_WEBHOOK_SECRET=secret)
    wait_until(lambda: passive.runtime.status.db_ok, timeout=10)
    assert not passive.runtime.status.active
    telegram.user_sends(USER, "hi")
    update = {"update_id": 8_800_001, "message": {
        "message_id": 9, "date": 0, "chat": {"id": USER, "type": "private"},
        "from": {"id": USER, "is_bot": False, "first_name": "T"}, "text": "/imagine via the standby",
        "entities": [{"type": "bot_command", "offset": 0, "length": 8}]}}
    resp = requests.post(f"{passive.url}/telegram/webhook", data=json.dumps(update),
                         headers={"X-Telegram-Bot-Api-Secret-Token": secret}, timeout=5)
    assert resp.status_code == 200
    assert final_job(db).state == JobState.DELIVERED
