"""Conversation rows in Postgres: the typed draft round-trips through the table, and a
conversation the previous release saved (its JSON written by hand, as that code wrote it) is
continued by this one after a deploy, down to the job its draft id keys."""
from __future__ import annotations

import json
from typing import Any

from actors.job_state import JobState
from config.catalogue import load_catalogue
from config.texts import text
from sim.telegram import TelegramSim
from storage import conversations
from storage.conversations import Conversation, Draft, Step
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until
from tests.support.wizard_driver import Driver

USER = 4701
CATALOGUE = load_catalogue()


def test_a_conversation_round_trips_through_the_table(db: Database) -> None:
    saved = Conversation(Step.CONFIRM, Draft(model="z-image", id="f00dfeed00",
                                             answers={"prompt": "a fox", "aspect_ratio": "16:9"},
                                             asking="nsfw_checker", optional=True))
    conversations.save(db, USER, USER, saved)
    assert conversations.load(db, USER, USER) == saved
    conversations.clear(db, USER, USER)
    assert conversations.load(db, USER, USER) == Conversation()


def test_a_row_in_a_step_this_release_does_not_know_reads_as_idle(db: Database, sql: Any) -> None:
    sql.execute("INSERT INTO conversations (chat_id, user_id, step) VALUES (%s, %s, 'ratio')", (USER, USER))
    assert conversations.load(db, USER, USER) == Conversation(Step.IDLE, Draft())


def test_a_conversation_saved_by_the_previous_release_is_continued(
        bot: Instance, telegram: TelegramSim, db: Database, sql: Any) -> None:
    """The user chose More options → Prompt before the deploy; after it, their answer brings the
    confirmation back with the earlier ratio kept, and Generate starts the job under the old draft id."""
    spec = CATALOGUE.get("z-image")
    assert spec is not None
    old_row = {"model": "z-image", "draft": "0123456789", "input": {"prompt": "old", "aspect_ratio": "4:3"},
               "asking": "prompt", "optional": True, "retired_key": "ignored"}
    sql.execute("INSERT INTO conversations (chat_id, user_id, step, data) VALUES (%s, %s, 'wizard', %s)",
                (USER, USER, json.dumps(old_row)))
    driver = Driver(telegram, db, spec, USER)
    driver.act(lambda: telegram.user_sends(USER, "a fox in the snow"))
    first_button, _ = driver.last_buttons()[0]
    assert first_button == text("en", "btn_generate")
    driver.act(lambda: telegram.user_presses(USER, text("en", "btn_generate")))
    job = wait_until(lambda: final_job(db), timeout=60, what="the continued draft's job is final")
    assert job.request_key == "draft:0123456789"
    assert job.state is JobState.DELIVERED and job.succeeded
    assert (job.input["prompt"], job.input["aspect_ratio"]) == ("a fox in the snow", "4:3")
    assert conversations.load(db, USER, USER) == Conversation()


def final_job(db: Database) -> Job | None:
    jobs = recent_jobs(db, USER)
    return jobs[0] if len(jobs) == 1 and jobs[0].terminal else None
