"""A failed generation is told in the user's language (#14), through a real instance and the
simulators: KIE's content-policy refusal reaches a Russian user as a Russian sentence; a message
the bot does not recognise reaches a Russian user as a plain Russian sentence with no English in
it, while the job keeps KIE's words and the log has them, for operators; an English user still
reads KIE's own words."""
from __future__ import annotations

import logging

import pytest

from actors.job_state import JobState
from actors.outcomes import Failure, FailureCode
from config.catalogue import load_catalogue
from config.texts import text
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, TelegramSim
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until
from tests.support.wording_check import WordingCheck

USER = 7421
CHECK = WordingCheck(load_catalogue())
FAILED = {"en": "the generation failed", "ru": "генерация не удалась"}
UNKNOWN_MESSAGE = "Upstream worker rejected the request for reasons unknown"


def failed_job(telegram: TelegramSim, db: Database, lang: str, prompt: str) -> tuple[ChatMessage, Job]:
    """The user (writing in `lang`) asks for `prompt`: the failure notice as the chat shows it, and
    the job once it is final."""
    telegram.user_sends(USER, f"/imagine {prompt}", language_code=lang)
    chat = telegram.wait_for_chat(USER, lambda c: any(m.from_bot and FAILED[lang] in (m.text or "") for m in c),
                                  timeout=30)
    [notice] = [m for m in chat if m.from_bot and FAILED[lang] in (m.text or "")]
    [job] = wait_until(lambda: [j for j in recent_jobs(db, USER) if j.terminal], timeout=30, what="the job final")
    assert (job.state, job.outcome, job.lang) == (JobState.DELIVERED, "failure", lang)
    return notice, job


def screens(notice: ChatMessage) -> list[str]:
    """What the user reads on the notice: its text and its buttons."""
    return [notice.text or "", *(label for row in notice.buttons for label, _ in row)]


def test_a_russian_user_reads_kies_content_policy_refusal_in_russian(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="fail", fail_code="400",
                         fail_msg="Your prompt was flagged by Website as violating content policies."))
    notice, job = failed_job(telegram, db, "ru", "запретная картина")
    assert text("ru", "reason_kie_content_policy") in (notice.text or "")
    assert text("ru", "money_not_charged") in (notice.text or "")
    assert [p for screen in screens(notice) for p in CHECK.problems("ru", screen)] == []
    assert job.failure == Failure(FailureCode.KIE_FAILED,
                                  "Your prompt was flagged by Website as violating content policies.")


def test_a_russian_user_never_reads_an_unrecognised_english_message_which_operators_keep(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="actors.job")
    kie.script_next(Fate(outcome="fail", fail_code="500", fail_msg=UNKNOWN_MESSAGE))
    notice, job = failed_job(telegram, db, "ru", "маяк на рассвете")
    assert text("ru", "reason_kie_unexplained") in (notice.text or "")
    assert text("ru", "money_not_charged") in (notice.text or "")
    assert [p for screen in screens(notice) for p in CHECK.problems("ru", screen)] == []
    assert job.failure == Failure(FailureCode.KIE_FAILED, UNKNOWN_MESSAGE)          # for `kiebot` operators
    assert any(getattr(r, "job_id", None) == job.id and UNKNOWN_MESSAGE in r.getMessage() for r in caplog.records)


def test_an_english_user_still_reads_kies_own_words_for_an_unrecognised_message(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="fail", fail_code="500", fail_msg=UNKNOWN_MESSAGE))
    notice, job = failed_job(telegram, db, "en", "a lighthouse at dawn")
    assert f"The service said: {UNKNOWN_MESSAGE}" in (notice.text or "")
    assert text("en", "money_not_charged") in (notice.text or "")
    assert job.failure == Failure(FailureCode.KIE_FAILED, UNKNOWN_MESSAGE)
