"""A start button's press handled a second time (#14: a repeated button is never answered with a
new message): the leader dies (SIGKILL) right after the press made its job, before it cleared
the draft, and the survivor handles the same stored callback update again. The user pressed
once, so they are told nothing more: the job runs once and its result arrives, and no "already
running" message joins the chat."""
from __future__ import annotations

from collections.abc import Callable

from actors.job_state import JobState
from sim.telegram import ChatMessage, TelegramSim
from storage import conversations, ledger
from storage.conversations import Step
from storage.db import Database
from storage.jobs import recent_jobs
from tests.support.harness import Process
from tests.support.waiting import wait_until

USER = 8701
PAID_MODEL = "google/nano-banana"


def bot_messages(telegram: TelegramSim) -> list[ChatMessage]:
    return [m for m in telegram.chat(USER) if m.from_bot]


def test_a_generate_press_handled_again_by_the_next_leader_adds_no_message(
        spawn: Callable[..., Process], telegram: TelegramSim, db: Database) -> None:
    ledger.grant(db, USER, 100_000, "test money")
    doomed = spawn("doomed", KIEBOT_CRASHPOINT="after_job_insert")
    wait_until(doomed.active, timeout=30, what="the doomed instance leads")
    survivor = spawn("survivor")
    wait_until(survivor.health, timeout=30, what="the survivor answers")
    telegram.user_sends(USER, f"/imagine a kite over the sea --model {PAID_MODEL}")
    telegram.wait_for_chat(USER, lambda c: any(b[0].startswith("✅ Generate") for m in c if m.from_bot
                                               for row in m.buttons for b in row), timeout=30)
    pressed = telegram.user_presses(USER, "✅ Generate")
    wait_until(lambda: doomed.proc.poll() is not None, timeout=30, what="the leader dies after making the job")
    assert telegram.callback_answer(pressed).text is None      # answered once, before the job was made
    wait_until(survivor.active, timeout=15, what="the survivor takes over")

    def delivered() -> bool:
        jobs = recent_jobs(db, USER)
        return len(jobs) == 1 and jobs[0].state is JobState.DELIVERED
    wait_until(delivered, timeout=60, what="the one job delivered")
    # The survivor handled the press again: it finished what the press began (the draft left,
    # the confirmation put away as started) and said nothing new.
    wait_until(lambda: conversations.load(db, USER, USER).step is Step.IDLE, timeout=15, what="the draft cleared")
    telegram.wait_for_chat(USER, lambda c: any((m.text or "").endswith("✅ Started.") and not m.buttons for m in c),
                           timeout=15)
    telegram.user_sends(USER, "/help")      # the chat's updates are handled in order
    telegram.wait_for_chat(USER, lambda c: "/history" in (c[-1].text or ""), timeout=15)
    said = [m.text or "" for m in bot_messages(telegram)]
    assert not [s for s in said if "already" in s.lower()], said
    assert [m.media for m in bot_messages(telegram) if m.media] == ["photo"]
    assert len(recent_jobs(db, USER)) == 1
