"""The delivery promise under faults: every result reaches its chat once, in whole, and the job
row says so, whatever Telegram, the database or leadership do in the middle of a delivery.

Each test arranges its fault only once the job is where the fault must hit (a stuck KIE task
completed by hand, a job state in the database, a call the simulator recorded), and then waits
on conditions; the simulators and Postgres are real.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from actors.job_state import JobState
from actors.outcomes import FailureCode
from kie.uploads import TelegramFile
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, TelegramSim
from storage import inbox
from storage.db import Database, connect
from storage.jobs import Job, NewJob, create_job, created, get_job, job_events, recent_jobs
from tests.support.factories import make_job
from tests.support.harness import Instance, start_instance
from tests.support.log_events import ActionSeen
from tests.support.sessions import terminate
from tests.support.waiting import wait_until

USER = 7301
POLICIES = ("at_least_once", "at_most_once")


# --- helpers ---------------------------------------------------------------------------------
def photos(chat: list[ChatMessage]) -> list[ChatMessage]:
    return [m for m in chat if m.from_bot and m.media == "photo"]


def buttons_messages(chat: list[ChatMessage]) -> list[ChatMessage]:
    """The follow-up that carries an album's buttons ("⬆️ <title>")."""
    return [m for m in chat if m.from_bot and (m.text or "").startswith("⬆️") and m.buttons]


def job_of(db: Database, user: int, *states: JobState, timeout: float = 10.0) -> Job:
    """The user's newest job, once it is in one of `states`."""
    def reached() -> Job | None:
        jobs = recent_jobs(db, user)
        return jobs[0] if jobs and jobs[0].state in states else None
    return wait_until(reached, timeout=timeout, what=f"job of {user} in {[s.value for s in states]}")


def settled(db: Database, job_id: int, timeout: float = 20.0) -> Job:
    return wait_until(lambda: (j := get_job(db, job_id)) is not None and j.terminal and j, timeout=timeout,
                      what=f"job {job_id} final")


def at_kie(telegram: TelegramSim, db: Database, user: int) -> Job:
    """The user's newest job once KIE has it and its progress message says so: faults armed
    after this hit what comes next, never the "generating" edit."""
    job = job_of(db, user, JobState.SUBMITTED)
    wait_until(lambda: any((int(c.params["chat_id"]), int(c.params["message_id"]))
                           == (job.chat_id, job.progress_message_id) for c in telegram.calls("editMessageText")),
               what="the progress message shows generating")
    return job


def stuck_job(kie: KieSim, telegram: TelegramSim, db: Database, user: int, prompt: str = "a cat",
              results: int = 1, chat_id: int | None = None) -> Job:
    """A job past submission whose KIE task waits for `kie.complete_now`: faults armed now hit
    the delivery, never the progress message."""
    kie.script_next(Fate(outcome="stuck", result_count=results))
    telegram.user_sends(user, f"/imagine {prompt}", chat_id=chat_id)
    return at_kie(telegram, db, user)


def metric(inst: Instance, line_start: str) -> float:
    for line in inst.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
def limited(database_url: str, kie: KieSim) -> Iterator[tuple[Instance, TelegramSim]]:
    """A leading instance talking to a Telegram that enforces its flood limits (429s)."""
    with TelegramSim(enforce_limits=True) as sim:
        inst = start_instance(database_url, kie, sim, instance_id="limited")
        try:
            wait_until(lambda: inst.runtime.status.active, timeout=10, what="instance leads")
            yield inst, sim
        finally:
            inst.runtime.stop()


def leading(instance_factory: Callable[..., Instance], **env: str) -> Instance:
    inst = instance_factory(**env)
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="instance leads")
    return inst


# --- 1. a 429 on the buttons message after an album ----------------------------------------
@pytest.mark.parametrize("retry_after", [7, 1], ids=["long-429-back-to-the-actor", "short-429-waited-inline"])
@pytest.mark.parametrize("policy", POLICIES)
def test_a_429_on_the_buttons_message_sends_the_album_once(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        policy: str, retry_after: int) -> None:
    leading(instance_factory, DELIVERY_POLICY=policy)
    job = stuck_job(kie, telegram, db, USER, results=2)
    telegram.fail_next("sendMessage", 1, 429, retry_after=retry_after)
    kie.complete_now(job.kie_task_id or "")

    final = settled(db, job.id)
    assert final.state == JobState.DELIVERED
    chat = telegram.chat(USER)
    assert len(photos(chat)) == 2
    assert len(buttons_messages(chat)) == 1
    assert [c.status for c in telegram.calls("sendMediaGroup")] == [200]
    assert [c.status for c in telegram.calls("sendMessage")][-2:] == [429, 200]
    assert sorted(final.delivered_message_ids or []) == sorted(
        m.message_id for m in photos(chat) + buttons_messages(chat))


# --- 2. ten images under Telegram's limits; twelve with a 500 on the second album ----------
def test_ten_images_under_telegrams_flood_limits_are_delivered_once(
        limited: tuple[Instance, TelegramSim], kie: KieSim, db: Database) -> None:
    _, telegram = limited
    kie.script_next(Fate(result_count=10))
    telegram.user_sends(USER, "/imagine ten foxes")
    job = job_of(db, USER, JobState.DELIVERED, JobState.DELIVERY_UNKNOWN, JobState.UNDELIVERABLE, timeout=40)
    assert job.state == JobState.DELIVERED
    chat = telegram.chat(USER)
    assert len(photos(chat)) == 10
    assert len(buttons_messages(chat)) == 1
    assert all(c.status == 200 for c in telegram.calls("sendMediaGroup"))


def test_a_500_on_the_second_album_resends_only_that_album(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    job = stuck_job(kie, telegram, db, USER, results=12)
    kie.complete_now(job.kie_task_id or "")
    telegram.wait_for_call("sendMediaGroup", 1, timeout=10)
    # The second album waits ~10 s for its slot (the first one counts as ten messages).
    telegram.fail_next("sendMediaGroup", 1, 500)

    final = settled(db, job.id, timeout=60)
    assert final.state == JobState.DELIVERED
    chat = telegram.chat(USER)
    shown = photos(chat)
    assert len(shown) == 12
    assert len({telegram.file_bytes(m.file_id or "") for m in shown}) == 12   # each image once
    assert len(buttons_messages(chat)) == 1
    assert [c.status for c in telegram.calls("sendMediaGroup")] == [200, 500, 200]


# --- 3. the database goes away while the result is on the wire ------------------------------
@pytest.mark.parametrize("policy", POLICIES)
def test_a_database_blip_on_the_delivered_write_is_retried_not_made_unknown(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        database_url: str, pg_admin_url: str, policy: str) -> None:
    inst = leading(instance_factory, DELIVERY_POLICY=policy)
    telegram.slow("sendPhoto", 2)
    telegram.user_sends(USER, "/imagine a lighthouse")
    job = job_of(db, USER, JobState.DELIVERING)
    name = urlsplit(database_url).path.lstrip("/")
    admin = connect(pg_admin_url, autocommit=True)    # a database may not lock itself out
    retried = ActionSeen("record_retry", job.id)
    logging.getLogger("actors.job").addHandler(retried)
    try:
        with admin.cursor() as cur:
            # Kill the instance's pooled sessions (not its leader lock session) and refuse new
            # ones until the JobActor has tried to record the send and failed.
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %s AND datname = %s",
                        (f"kiebot-{inst.runtime.settings.instance_id}", name))
            assert cur.fetchone()[0] >= 1
            assert retried.seen.wait(15), "the delivered write never met the outage"
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        logging.getLogger("actors.job").removeHandler(retried)
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()

    final = settled(db, job.id, timeout=30)
    assert final.state == JobState.DELIVERED
    [photo] = photos(telegram.chat(USER))
    assert final.delivered_message_ids == [photo.message_id]
    assert len(telegram.calls("sendPhoto")) == 1


# --- 4. a failure reason longer than a message ----------------------------------------------
def test_a_failure_notice_longer_than_a_message_is_cut_and_delivered(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="fail", fail_msg="x" * 4156))
    telegram.user_sends(USER, "/imagine too much to say")
    job = job_of(db, USER, JobState.DELIVERED, JobState.DELIVERY_UNKNOWN, JobState.UNDELIVERABLE, timeout=15)
    assert (job.state, job.outcome) == (JobState.DELIVERED, "failure")
    chat = telegram.chat(USER)
    [notice] = [m for m in chat if m.from_bot and "the generation failed" in (m.text or "")]
    assert notice.text is not None and notice.text.endswith("…") and "xxxx" in notice.text
    assert notice.message_id == job.progress_message_id     # the progress message became the notice
    assert not any("starting" in (m.text or "") for m in chat if m.from_bot)


# --- 5. at_most_once: the notice's fallback message has an unknown outcome ------------------
def test_at_most_once_a_notice_whose_answer_is_lost_is_parked_never_sent_twice(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    leading(instance_factory, DELIVERY_POLICY="at_most_once")
    kie.script_next(Fate(outcome="fail", fail_msg="content policy", duration_s=3))
    telegram.user_sends(USER, "/imagine refused")
    job = at_kie(telegram, db, USER)                # the progress message is out; KIE fails at 3 s
    telegram.fail_next("editMessageText", 1, 400, description="Bad Request: message to edit not found")
    telegram.drop_next_response("sendMessage")

    final = settled(db, job.id)
    assert final.state == JobState.DELIVERY_UNKNOWN
    chat = telegram.chat(USER)
    assert len([m for m in chat if m.from_bot and "the generation failed" in (m.text or "")]) == 1
    assert len([c for c in telegram.calls("sendMessage") if c.params.get("text", "").startswith("❌")]) == 1


# --- 6. a prompt that looks like an old upload reference -----------------------------------
def test_a_prompt_starting_with_tg_is_a_prompt_not_an_upload(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    telegram.user_sends(USER, "/imagine tg:abc a cat")
    job = job_of(db, USER, JobState.DELIVERED, JobState.DELIVERY_UNKNOWN, JobState.UNDELIVERABLE, timeout=15)
    assert (job.state, job.outcome) == (JobState.DELIVERED, "success")
    assert len(photos(telegram.chat(USER))) == 1
    [task] = kie.tasks().values()
    assert task["input"]["prompt"] == "tg:abc a cat"
    assert telegram.calls("getFile") == []


# --- 7. Telegram refuses a file the user sent ------------------------------------------------
def test_a_refused_upload_fails_the_job_at_once_with_a_plain_message(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    telegram.user_sends(USER, "hi")     # the chat exists
    job = created(create_job(db, NewJob(
        request_key="upload-refused", chat_id=USER, user_id=USER, lang="en", model="google/nano-banana-edit",
        input={"prompt": "a cat in a hat", "image_urls": [TelegramFile("nope").to_json()]}, deadline_s=900)))
    # Nobody tells the supervisor: its sweep adopts the job.
    final = settled(db, job.id, timeout=15)
    assert (final.state, final.outcome) == (JobState.DELIVERED, "failure")
    assert final.failure is not None and final.failure.code == FailureCode.UPLOAD_REFUSED
    telegram.wait_for_chat(USER, lambda c: any("would not give me the file" in (m.text or "") for m in c))
    assert [c.status for c in telegram.calls("getFile")] == [400]      # refused for good: not asked again
    assert kie.calls("createTask") == []


# --- 8. the group became a supergroup ---------------------------------------------------------
def test_a_result_for_a_migrated_group_arrives_once_in_the_supergroup(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    group, supergroup = -7308, -1_000_000_007_308
    job = stuck_job(kie, telegram, db, USER, chat_id=group)
    telegram.migrate_chat(group, supergroup)
    kie.complete_now(job.kie_task_id or "")

    final = settled(db, job.id, timeout=20)
    assert final.state == JobState.DELIVERED
    assert photos(telegram.chat(group)) == []
    [photo] = photos(telegram.chat(supergroup))
    assert final.delivered_message_ids == [photo.message_id]
    assert [c.status for c in telegram.calls("sendPhoto")] == [400, 200]
    assert telegram.calls("sendPhoto")[0].response["parameters"] == {"migrate_to_chat_id": supergroup}


# --- 9. a delivery that crashes its actor every time ----------------------------------------
def test_a_delivery_that_always_crashes_ends_undeliverable_and_is_not_respawned(
        bot: Instance, telegram: TelegramSim, db: Database, database_url: str) -> None:
    telegram.user_sends(USER, "hi")
    conn = connect(database_url, autocommit=True)
    with conn.cursor() as cur:      # a known success whose input our code cannot read: not an object
        cur.execute("INSERT INTO jobs (request_key, chat_id, user_id, model, input, state, outcome, result_urls, "
                    "callback_token, deadline_at) VALUES ('poison-delivery', %s, %s, 'z-image', "
                    "'[\"not an object\"]', 'succeeded', 'success', '[\"http://127.0.0.1:9/x.png\"]', 't', "
                    "now() + interval '1 hour') RETURNING id", (USER, USER))
        (job_id,) = cur.fetchone()
    conn.close()
    bot.runtime._to_supervisor_job(job_id)

    final = settled(db, job_id, timeout=40)
    assert final.state == JobState.UNDELIVERABLE
    events = job_events(db, job_id)
    restarts = metric(bot, "kiebot_job_actor_restarts_total")
    assert restarts == 3.0
    # A later job that only the sweep can find proves sweeps ran after the poison job ended.
    epoch = bot.runtime.status.epoch
    assert epoch is not None
    witness = make_job(db, epoch, JobState.CREATED, chat_id=USER)
    assert settled(db, witness.id).state == JobState.DELIVERED
    assert job_events(db, job_id) == events
    assert metric(bot, "kiebot_job_actor_restarts_total") == restarts


# --- 10. a callback for a `submitting` job names a task KIE does not know ------------------
def test_a_callback_naming_an_unknown_task_is_not_adopted_and_stays_in_the_inbox(
        bot: Instance, kie: KieSim, db: Database) -> None:
    epoch = bot.runtime.status.epoch
    assert epoch is not None
    job = make_job(db, epoch, JobState.SUBMITTING, chat_id=USER)   # createTask's answer was lost
    unknown = "f" * 32
    body = {"code": 200, "msg": "success", "data": {"taskId": unknown, "state": "success",
                                                    "resultJson": json.dumps({"resultUrls": ["http://x/y.png"]})}}
    resp = requests.post(f"{bot.url}/kie/callback/{job.id}", params={"token": job.callback_token},
                         json=body, timeout=5)
    assert resp.status_code == 200

    def asked_about_it() -> list[dict[str, Any]]:
        return [c for c in kie.calls("recordInfo") if c["query"].get("taskId") == unknown]
    # Asked twice: the first check ended (kept the callback) and the recheck found it still there.
    wait_until(lambda: len(asked_about_it()) >= 2, timeout=15, what="two confirmations of the unknown task")
    row = get_job(db, job.id)
    assert row is not None
    assert (row.state, row.kie_task_id) == (JobState.SUBMITTING, None)
    [pending] = inbox.pending_for_job(db, job.id)
    assert pending.body["data"]["taskId"] == unknown


# --- 12. leadership lost while a send waits out a 429 ----------------------------------------
def lose_leadership_while_a_send_waits(instance_factory: Callable[..., Instance], telegram: TelegramSim,
                                       kie: KieSim, db: Database, database_url: str, **env: str) -> tuple[Job, int]:
    """A leads, B stands by; A's result send meets a 429 that FloodControl waits out inline (3 s),
    and A loses its lock session meanwhile. Returns the job and A's old epoch."""
    a = leading(instance_factory, **env)
    instance_factory(**env)
    old_epoch = a.runtime.status.epoch
    assert old_epoch is not None
    job = stuck_job(kie, telegram, db, USER)
    telegram.fail_next("sendPhoto", 1, 429, retry_after=3)
    kie.complete_now(job.kie_task_id or "")
    telegram.wait_for_call("sendPhoto", 1, timeout=10)          # A's send now waits in FloodControl
    assert terminate(database_url, f"kiebot-leader-{a.runtime.settings.instance_id}") == 1
    return job, old_epoch


def test_a_send_queued_when_leadership_is_lost_is_not_sent_and_the_result_arrives_once(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        database_url: str) -> None:
    job, old_epoch = lose_leadership_while_a_send_waits(instance_factory, telegram, kie, db, database_url)
    final = settled(db, job.id, timeout=20)
    assert final.state == JobState.DELIVERED
    assert len(photos(telegram.chat(USER))) == 1
    assert [c.status for c in telegram.calls("sendPhoto")] == [429, 200]
    assert final.claim_epoch is not None and final.claim_epoch > old_epoch    # not A's deposed send


def test_a_claim_handed_back_after_the_next_leader_adopted_the_job_is_taken_at_once(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        database_url: str) -> None:
    # The standby leads (and adopts the job) within a second; A hands its claim back only when
    # its inline wait ends, ~3 s later. With a 60 s grace period the job is delivered in time
    # only if the new leader notices the release rather than waiting out the grace period.
    job, old_epoch = lose_leadership_while_a_send_waits(instance_factory, telegram, kie, db, database_url,
                                                        KIEBOT_DELIVERY_GRACE_S="60")
    final = settled(db, job.id, timeout=15)
    assert final.state == JobState.DELIVERED
    assert len(photos(telegram.chat(USER))) == 1
    assert final.claim_epoch is not None and final.claim_epoch > old_epoch
