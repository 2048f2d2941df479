"""KIE callbacks: stored before 200, authenticated, and never a second delivery."""
from __future__ import annotations

import json

import requests

from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, TelegramSim
from storage import inbox
from storage.db import Database
from storage.jobs import Job, get_job, recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 6001


def photos(chat: list[ChatMessage]) -> list[ChatMessage]:
    return [m for m in chat if m.from_bot and m.media == "photo"]


def submitted_job(telegram: TelegramSim, db: Database) -> Job:
    telegram.user_sends(USER, "/imagine a slow sunrise")
    return wait_until(lambda: next((j for j in recent_jobs(db, USER) if j.state == JobState.SUBMITTED), None),
                      timeout=10, what="job submitted")


def post_callback(bot: Instance, job_id: int, token: str, body: bytes) -> requests.Response:
    return requests.post(f"{bot.url}/kie/callback/{job_id}", params={"token": token}, data=body,
                         headers={"Content-Type": "application/json"}, timeout=5)


def test_a_callback_with_a_wrong_token_is_refused_and_changes_nothing(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="stuck"))
    job = submitted_job(telegram, db)
    body = json.dumps({"code": 200, "data": {"taskId": job.kie_task_id, "state": "success"}}).encode()
    for token in ("wrong", ""):
        resp = post_callback(bot, job.id, token, body)
        assert resp.status_code == 403 and resp.json()["error"] == "token does not match"
    assert post_callback(bot, 999_999, "x", body).status_code == 404
    assert inbox.pending_for_job(db, job.id) == []
    assert get_job(db, job.id).state == JobState.SUBMITTED  # type: ignore[union-attr]


def test_a_callback_that_is_not_json_gets_400_and_changes_nothing(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="stuck"))
    job = submitted_job(telegram, db)
    resp = post_callback(bot, job.id, job.callback_token, b"{not json")
    assert resp.status_code == 400 and "JSON" in resp.json()["error"]
    assert inbox.pending_for_job(db, job.id) == []
    assert get_job(db, job.id).state == JobState.SUBMITTED  # type: ignore[union-attr]


def test_a_forged_success_body_with_the_right_token_delivers_nothing(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="stuck"))
    job = submitted_job(telegram, db)
    forged = {"code": 200, "data": {"taskId": job.kie_task_id, "state": "success",
                                    "resultJson": json.dumps({"resultUrls": ["http://127.0.0.1:1/evil.png"]})}}
    assert post_callback(bot, job.id, job.callback_token, json.dumps(forged).encode()).status_code == 200
    wait_until(lambda: inbox.pending_for_job(db, job.id) == [], what="callback handled")
    assert get_job(db, job.id).state == JobState.SUBMITTED  # type: ignore[union-attr]
    assert telegram.calls("sendPhoto") == []


def test_duplicated_callbacks_racing_the_poll_deliver_once(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(callback="duplicate", duration_s=0.3))
    telegram.user_sends(USER, "/imagine twins")
    wait_until(lambda: [j for j in recent_jobs(db, USER) if j.terminal], timeout=10)
    kie.wait_for_callbacks(2)
    wait_until(lambda: all(a.get("status") == 200 for a in kie.callback_attempts()) and
               inbox.jobs_with_pending(db) == [], what="every callback handled")
    assert len(telegram.calls("sendPhoto")) == 1
    assert len(photos(telegram.chat(USER))) == 1


def test_a_callback_before_create_task_returns_is_delivered_once(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(callback="early"))
    telegram.user_sends(USER, "/imagine in a hurry")
    [job] = wait_until(lambda: [j for j in recent_jobs(db, USER) if j.terminal], timeout=10)
    assert job.state == JobState.DELIVERED
    wait_until(lambda: inbox.jobs_with_pending(db) == [], what="early callback handled")
    assert len(telegram.calls("sendPhoto")) == 1


def test_a_late_callback_after_the_poll_delivered_sends_nothing_more(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(callback="late", callback_delay_s=0.8))
    telegram.user_sends(USER, "/imagine late")
    wait_until(lambda: [j for j in recent_jobs(db, USER) if j.terminal], timeout=10)
    kie.wait_for_callbacks(1, timeout=5)
    wait_until(lambda: inbox.jobs_with_pending(db) == [], what="late callback handled")
    assert len(telegram.calls("sendPhoto")) == 1


def test_a_failed_generation_tells_the_user_why(bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="fail", fail_code="400", fail_msg="Content policy violation"))
    telegram.user_sends(USER, "/imagine something")
    chat = telegram.wait_for_chat(USER, lambda c: any("failed" in (m.text or "") for m in c), timeout=10)
    notice = next(m for m in chat if "failed" in (m.text or ""))
    assert "Content policy violation" in (notice.text or "")
    [job] = wait_until(lambda: [j for j in recent_jobs(db, USER) if j.terminal], what="job final")
    assert (job.state, job.outcome) == (JobState.DELIVERED, "failure")
    assert photos(chat) == []
