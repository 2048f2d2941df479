"""A start button pressed again is answered with a toast that tells the truth about its job
(#14): "already started" while the job waits or runs, "done, see the result above" once its
result is in the chat, "finished" once it failed. Never a new message, and never "already
started" for a job delivered long ago.

The button can be pressed again because putting the confirmation away is cosmetic: when
Telegram refuses that edit (or the user's client missed it), ✅ Generate is still shown."""
from __future__ import annotations

import pytest

from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, TelegramSim
from storage import conversations, ledger
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import the_job, wait_until

USER = 7401
PAID_MODEL = "google/nano-banana"
# The words of each language, written here so that a toast saying the wrong thing fails.
WORDS = {
    "en": {"prompt": "a red kite", "generate": "✅ Generate", "help": "/history",
           "running": "Already started: the result will arrive here.",
           "done": "This one is done: see the result above.",
           "ended": "This generation has finished already."},
    "ru": {"prompt": "красный воздушный змей", "generate": "✅ Создать", "help": "/history",
           "running": "Уже запущено: результат придёт сюда.",
           "done": "Эта генерация готова: результат выше.",
           "ended": "Эта генерация уже закончилась."},
}


def bot_messages(telegram: TelegramSim) -> list[ChatMessage]:
    return [m for m in telegram.chat(USER) if m.from_bot]


def start_paid_job(telegram: TelegramSim, db: Database, lang: str) -> Job:
    """A paid /imagine confirmed with ✅ Generate, whose confirmation Telegram would not put away."""
    ledger.grant(db, USER, 100_000, "test money")
    conversations.set_lang(db, USER, lang)
    telegram.user_sends(USER, f"/imagine {WORDS[lang]['prompt']} --model {PAID_MODEL}")
    telegram.wait_for_chat(USER, lambda c: any(b[0].startswith(WORDS[lang]["generate"]) for m in c if m.from_bot
                                               for row in m.buttons for b in row), timeout=15)
    telegram.fail_next("editMessageText", 1, status=500, description="Internal Server Error")
    telegram.user_presses(USER, WORDS[lang]["generate"])
    [job] = wait_until(lambda: recent_jobs(db, USER), timeout=15, what="the job made")
    return job


def press_again(telegram: TelegramSim, lang: str) -> str | None:
    """Press ✅ Generate once more: the toast it got. Nothing else may reach the chat: the /help
    sent after it (the chat's updates are handled in order) is the one new message. Telegram
    refuses to take the button away this time too, so that it can be pressed once more."""
    before = len(bot_messages(telegram))
    telegram.fail_next("editMessageReplyMarkup", 1, status=500, description="Internal Server Error")
    answer = telegram.callback_answer(telegram.user_presses(USER, WORDS[lang]["generate"]), timeout=15)
    telegram.user_sends(USER, "/help")
    chat = telegram.wait_for_chat(USER, lambda c: WORDS[lang]["help"] in (c[-1].text or ""), timeout=15)
    new = [m.text for m in chat if m.from_bot][before:]
    assert len(new) == 1, f"the press added a message: {new}"
    assert not answer.show_alert
    return answer.text


@pytest.mark.parametrize("lang", list(WORDS))
def test_a_start_button_pressed_again_says_started_while_the_job_runs_and_done_once_delivered(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database, lang: str) -> None:
    kie.script_next(Fate(outcome="stuck"))
    job = start_paid_job(telegram, db, lang)
    the_job(db, job.id, JobState.SUBMITTED)
    assert press_again(telegram, lang) == WORDS[lang]["running"]
    kie.complete_now(next(iter(kie.tasks())))
    the_job(db, job.id, JobState.DELIVERED)
    telegram.wait_for_chat(USER, lambda c: any(m.from_bot and m.media == "photo" for m in c), timeout=15)
    assert press_again(telegram, lang) == WORDS[lang]["done"]
    assert len(recent_jobs(db, USER)) == 1


@pytest.mark.parametrize("lang", list(WORDS))
def test_a_start_button_pressed_again_after_its_job_failed_says_it_has_finished(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database, lang: str) -> None:
    kie.script_next(Fate(outcome="fail", fail_code="500", fail_msg="Internal error"))
    job = start_paid_job(telegram, db, lang)
    failed = the_job(db, job.id, JobState.DELIVERED)
    assert not failed.succeeded
    assert press_again(telegram, lang) == WORDS[lang]["ended"]
    assert len(recent_jobs(db, USER)) == 1
