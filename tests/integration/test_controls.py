"""Honest controls, the queue, honest progress and one message per job (#14), through a real
instance and the simulators, asserting on what the user sees in the simulated chat, on the
job rows and on the ledger:

- /cancel before createTask cancels (not charged); after it, the bot says plainly that KIE cannot
  stop the task and offers Stop waiting, which ends the job and throws its result away even when
  KIE calls back; /cancel with nothing running says so; the Cancel button does the same.
- More generations than may run at once wait their turn in Postgres, each with its own progress
  message showing its place, start by themselves in order, survive a change of leader, and
  beyond the queue's length are refused in plain words.
- The progress message shows the model's usual duration, measured from its recent deliveries,
  and says when a job takes longer than usual.
- The progress message is gone once the result is in the chat (or says "done" when Telegram
  will not delete it), so no "done in N s" stays above every result.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from actors.job_state import JobState
from config.catalogue import load_catalogue
from config.money import format_credits
from config.pricing import default_pricing
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, TelegramSim
from storage import inbox, ledger
from storage.db import Database
from storage.jobs import Job, get_job, recent_jobs
from tests.support.harness import Instance
from tests.support.pricing import roomy_pricing
from tests.support.waiting import the_job, wait_until

USER = 8401
PAID_MODEL = "google/nano-banana"
CATALOGUE = load_catalogue()


def paid_price() -> int:
    spec = CATALOGUE.get(PAID_MODEL)
    assert spec is not None
    quote = default_pricing().quote(spec, spec.with_defaults({"prompt": "p"}))
    assert quote is not None and quote.price > 0
    return quote.price


@pytest.fixture
def controls(bot: Instance) -> Instance:
    """One leading instance: /cancel and the progress message's buttons reach bot/job_controls
    through the dialogue's own routing (job_controls.handlers(), registered first)."""
    return bot


@pytest.fixture
def roomy(instance_factory: Callable[..., Instance], tmp_path: Path) -> Instance:
    """A leading instance whose free tier has room for many generations."""
    inst = instance_factory(KIEBOT_PRICING=roomy_pricing(tmp_path))
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="instance becomes leader")
    return inst


def complete_in_turn(kie: KieSim, count: int) -> None:
    """Finish `count` stuck tasks one after the other, each once it has been created."""
    for n in range(1, count + 1):
        wait_until(lambda n=n: len(kie.tasks()) >= n, timeout=30, what=f"task {n} created")  # type: ignore[misc]
        kie.complete_now(list(kie.tasks())[n - 1])


def bot_messages(telegram: TelegramSim, user: int = USER) -> list[ChatMessage]:
    return [m for m in telegram.chat(user) if m.from_bot]


def words_of(message: ChatMessage | None) -> str:
    return (message.text or message.caption or "") if message is not None else ""


def said(telegram: TelegramSim, words: str, user: int = USER) -> list[ChatMessage]:
    return [m for m in bot_messages(telegram, user) if words in words_of(m)]


def wait_said(telegram: TelegramSim, words: str, user: int = USER, timeout: float = 15.0) -> ChatMessage:
    telegram.wait_for_chat(user, lambda c: bool(said(telegram, words, user)), timeout=timeout)
    return said(telegram, words, user)[-1]


def buttons(message: ChatMessage) -> list[str]:
    return [b[0] for row in message.buttons for b in row]


def has_button(message: ChatMessage | None, label: str) -> bool:
    return message is not None and any(label in b for b in buttons(message))


def photos(telegram: TelegramSim, user: int = USER) -> list[ChatMessage]:
    return [m for m in bot_messages(telegram, user) if m.media == "photo"]


def progress_of(telegram: TelegramSim, job: Job) -> ChatMessage | None:
    """The job's progress message as the chat shows it now (None: gone)."""
    return next((m for m in telegram.chat(job.chat_id) if m.message_id == job.progress_message_id), None)


def jobs_in(db: Database, count: int, *states: JobState, user: int = USER) -> list[Job]:
    """The user's `count` jobs, oldest first, once each is in one of `states`."""
    seen: list[Job] = []

    def ready() -> list[Job]:
        seen[:] = sorted(recent_jobs(db, user, 50), key=lambda j: j.id)
        return list(seen) if len(seen) == count and all(j.state in states for j in seen) else []
    try:
        return wait_until(ready, timeout=30, what=f"{count} job(s) in {[s.value for s in states]}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the jobs are {[(j.id, j.state.value) for j in seen]}") from None


FINAL_DELIVERED = (JobState.DELIVERED,)
GENERATING = (JobState.SUBMITTED,)


# --- /cancel ------------------------------------------------------------------------------------
def test_cancel_with_nothing_running_says_there_is_nothing_to_cancel(controls: Instance, telegram: TelegramSim) -> None:
    telegram.user_sends(USER, "/cancel")
    message = wait_said(telegram, "Nothing to cancel")
    assert "Cancelled" not in words_of(message)


def test_cancel_before_create_task_cancels_the_job_and_says_it_was_not_charged(
        controls: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.set_maintenance(True)               # createTask refused: the job waits in `created` to retry
    telegram.user_sends(USER, "/imagine during maintenance")
    wait_until(lambda: kie.calls("createTask"), timeout=10, what="a refused createTask")
    [job] = jobs_in(db, 1, JobState.CREATED)
    telegram.user_sends(USER, "/cancel")
    [job] = jobs_in(db, 1, JobState.CANCELLED)
    telegram.wait_for_chat(USER, lambda c: "not charged" in words_of(progress_of(telegram, job)))
    progress = progress_of(telegram, job)
    assert progress is not None
    assert "cancelled" in words_of(progress) and "You were not charged." in words_of(progress)
    assert progress.buttons == []
    wait_said(telegram, "Stopping your generation")
    kie.set_maintenance(False)
    assert kie.tasks() == {}


def test_cancel_after_create_task_says_kie_cannot_stop_it_and_the_result_still_comes(
        controls: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    """Before: "Cancelled." while the job went on and its result arrived anyway."""
    kie.script_next(Fate(outcome="stuck"))
    telegram.user_sends(USER, "/imagine a slow owl")
    [job] = jobs_in(db, 1, *GENERATING)
    telegram.user_sends(USER, "/cancel")
    telegram.wait_for_chat(USER, lambda c: "cannot stop" in words_of(progress_of(telegram, job)))
    progress = progress_of(telegram, job)
    assert progress is not None
    assert buttons(progress) == ["⏹ Stop waiting"] and "You will not be charged." in words_of(progress)
    assert not said(telegram, "Cancelled")
    assert get_job(db, job.id).state is JobState.SUBMITTED
    [task_id] = kie.tasks()
    kie.complete_now(task_id)               # the user did not stop waiting: the result comes
    the_job(db, job.id, *FINAL_DELIVERED)
    telegram.wait_for_chat(USER, lambda c: len(photos(telegram)) == 1)


def test_stop_waiting_ends_the_job_and_a_result_kie_sends_later_is_never_delivered(
        controls: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="stuck"))
    telegram.user_sends(USER, "/imagine an owl nobody waits for")
    [job] = jobs_in(db, 1, *GENERATING)
    telegram.user_sends(USER, "/cancel")
    telegram.wait_for_chat(USER, lambda c: has_button(progress_of(telegram, job), "Stop waiting"))
    telegram.user_presses(USER, "Stop waiting", message_id=job.progress_message_id)
    job = the_job(db, job.id, JobState.ABANDONED)
    telegram.wait_for_chat(USER, lambda c: "stopped waiting" in words_of(progress_of(telegram, job)))
    progress = progress_of(telegram, job)
    assert progress is not None and "You were not charged." in words_of(progress) and progress.buttons == []
    toast = telegram.calls("answerCallbackQuery")[-1].params.get("text")
    assert toast == "OK, not waiting for it any more."
    [task_id] = kie.tasks()
    kie.complete_now(task_id)               # KIE finishes anyway and calls back
    kie.wait_for_callbacks(1, timeout=10, task_id=task_id)
    wait_until(lambda: not inbox.pending_for_job(db, job.id), timeout=10, what="the late callback handled")
    assert photos(telegram) == []
    assert get_job(db, job.id).state is JobState.ABANDONED


def test_stop_waiting_on_a_paid_job_gives_its_credits_back_and_says_how_many(
        controls: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    price = paid_price()
    assert isinstance(ledger.grant(db, USER, 3 * price, "test money"), ledger.Granted)
    kie.script_next(Fate(outcome="stuck"))
    telegram.user_sends(USER, f"/imagine a paid owl --model {PAID_MODEL}")
    confirm = wait_said(telegram, format_credits(price))
    [start] = [b for b in buttons(confirm) if b.startswith("✅")]
    telegram.user_presses(USER, start)
    [job] = jobs_in(db, 1, *GENERATING)
    assert ledger.wallet(db, USER).held == price
    telegram.user_presses(USER, "Cancel", message_id=job.progress_message_id)
    telegram.wait_for_chat(USER, lambda c: has_button(progress_of(telegram, job), "Stop waiting"))
    offer = words_of(progress_of(telegram, job))
    assert f"The {format_credits(price)} credits on hold will come back to your balance." in offer
    telegram.user_presses(USER, "Stop waiting", message_id=job.progress_message_id)
    job = the_job(db, job.id, JobState.ABANDONED)
    telegram.wait_for_chat(USER, lambda c: "returned" in words_of(progress_of(telegram, job)))
    assert f"{format_credits(price)} credits returned to your balance." in words_of(progress_of(telegram, job))
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 3 * price, 0)
    assert ledger.check(db).clean


def test_another_members_press_on_cancel_is_refused_with_a_toast(
        controls: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    group, other = -4401, USER + 1
    kie.script_next(Fate(outcome="stuck"))
    telegram.user_sends(USER, "/imagine a group owl", chat_id=group)
    [job] = jobs_in(db, 1, *GENERATING)
    telegram.user_presses(other, "Cancel", chat_id=group, message_id=job.progress_message_id)
    telegram.wait_for_call("answerCallbackQuery", 1, timeout=10)
    assert telegram.calls("answerCallbackQuery")[-1].params.get("text") == "Only the person who started it can stop it."
    assert get_job(db, job.id).user_stop is None


# --- the queue ----------------------------------------------------------------------------------
def test_three_imagines_in_a_row_wait_their_turn_each_with_its_own_message_and_place(
        controls: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    """Before: one image and two refusals ("tap the button again when it is done")."""
    kie.script_next(Fate(outcome="stuck"), 3)
    for n in (1, 2, 3):
        telegram.user_sends(USER, f"/imagine picture {n}")
    jobs = jobs_in(db, 3, JobState.QUEUED, JobState.SUBMITTED)
    assert [j.state for j in jobs] == [JobState.SUBMITTED, JobState.QUEUED, JobState.QUEUED]
    second, third = (progress_of(telegram, j) for j in jobs[1:])
    assert second is not None and "next in your queue" in words_of(second) and buttons(second) == ["✖ Cancel"]
    assert third is not None and "2nd in your queue" in words_of(third)
    assert len({j.progress_message_id for j in jobs}) == 3
    complete_in_turn(kie, 3)
    jobs_in(db, 3, *FINAL_DELIVERED)
    telegram.wait_for_chat(USER, lambda c: len(photos(telegram)) == 3, timeout=20)
    prompts = [c["body"]["input"]["prompt"] for c in kie.calls("createTask")]
    assert prompts == ["picture 1", "picture 2", "picture 3"]
    assert not said(telegram, "still running") and not said(telegram, "tap the button again")


def test_cancel_on_a_queued_job_cancels_it_and_moves_the_rest_up(
        controls: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="stuck"), 2)
    for n in (1, 2, 3):
        telegram.user_sends(USER, f"/imagine queued {n}")
    _, second, third = jobs_in(db, 3, JobState.QUEUED, JobState.SUBMITTED)
    telegram.wait_for_chat(USER, lambda c: "2nd in your queue" in words_of(progress_of(telegram, third)))
    telegram.user_presses(USER, "Cancel", message_id=second.progress_message_id)
    the_job(db, second.id, JobState.CANCELLED)
    telegram.wait_for_chat(USER, lambda c: "next in your queue" in words_of(progress_of(telegram, third)))
    assert "You were not charged." in words_of(progress_of(telegram, second))
    assert telegram.calls("answerCallbackQuery")[-1].params.get("text") == "Cancelling…"
    complete_in_turn(kie, 2)
    the_job(db, third.id, *FINAL_DELIVERED)
    prompts = [c["body"]["input"]["prompt"] for c in kie.calls("createTask")]
    assert prompts == ["queued 1", "queued 3"]


def test_a_queued_paid_job_holds_its_price_while_it_waits_and_cancel_returns_it(
        controls: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    price = paid_price()
    assert isinstance(ledger.grant(db, USER, price, "test money"), ledger.Granted)
    kie.script_next(Fate(outcome="stuck"))
    telegram.user_sends(USER, "/imagine a free one first")
    jobs_in(db, 1, *GENERATING)
    telegram.user_sends(USER, f"/imagine a paid one --model {PAID_MODEL}")
    confirm = wait_said(telegram, format_credits(price))
    [start] = [b for b in buttons(confirm) if b.startswith("✅")]
    telegram.user_presses(USER, start)
    _, paid = jobs_in(db, 2, JobState.SUBMITTED, JobState.QUEUED)
    assert paid.state is JobState.QUEUED and paid.price == price
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 0, price)
    telegram.user_sends(USER, "/cancel")
    the_job(db, paid.id, JobState.CANCELLED)
    telegram.wait_for_chat(USER, lambda c: "returned" in words_of(progress_of(telegram, paid)))
    wait_said(telegram, "Stopping your 2 generations")
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, price, 0)
    assert ledger.check(db).clean


def test_beyond_the_queue_length_a_plain_refusal(roomy: Instance, telegram: TelegramSim, kie: KieSim,
                                                 db: Database) -> None:
    kie.script_next(Fate(outcome="stuck"))
    for n in range(6):                      # one runs, five (the default queue length) wait
        telegram.user_sends(USER, f"/imagine number {n}")
    jobs_in(db, 6, JobState.SUBMITTED, JobState.QUEUED)
    telegram.user_sends(USER, "/imagine one too many")
    refusal = wait_said(telegram, "Your queue is full")
    assert "5 generations are already waiting" in words_of(refusal)
    assert len(recent_jobs(db, USER, 50)) == 6


def test_the_queue_survives_a_change_of_leader_in_order_and_starts_each_job_once(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        tmp_path: Path) -> None:
    pricing = roomy_pricing(tmp_path)
    a = instance_factory(KIEBOT_PRICING=pricing)
    wait_until(lambda: a.runtime.status.active, timeout=10, what="A leads")
    b = instance_factory(KIEBOT_PRICING=pricing)
    kie.script_next(Fate(outcome="stuck"), 4)
    for n in (1, 2, 3, 4):
        telegram.user_sends(USER, f"/imagine across leaders {n}")
    jobs = jobs_in(db, 4, JobState.SUBMITTED, JobState.QUEUED)
    assert [j.state for j in jobs] == [JobState.SUBMITTED] + [JobState.QUEUED] * 3
    stopper = threading.Thread(target=a.runtime.stop)      # a deploy: A resigns, B takes over
    stopper.start()
    wait_until(lambda: b.runtime.status.active, timeout=15, what="B leads")
    complete_in_turn(kie, 4)
    done = jobs_in(db, 4, *FINAL_DELIVERED)
    stopper.join(40)
    telegram.wait_for_chat(USER, lambda c: len(photos(telegram)) == 4, timeout=20)
    prompts = [c["body"]["input"]["prompt"] for c in kie.calls("createTask")]
    assert prompts == [f"across leaders {n}" for n in (1, 2, 3, 4)]
    starts = [j.started_at for j in done]
    assert all(s is not None for s in starts) and starts == sorted(starts)      # type: ignore[type-var]
    wait_until(lambda: all(progress_of(telegram, j) is None for j in done), timeout=15,
               what="every progress message gone once its result is in the chat")


# --- honest progress ----------------------------------------------------------------------------
def test_progress_shows_the_usual_duration_measured_from_recent_jobs_and_says_when_it_is_slow(
        roomy: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    """Before: elapsed seconds only, no estimate."""
    kie.script_next(Fate(duration_s=1.0), 3)
    for n in (1, 2, 3):
        telegram.user_sends(USER, f"/imagine measured {n}")
        jobs_in(db, n, *FINAL_DELIVERED)
    measured = recent_jobs(db, USER)
    durations = sorted((j.delivered_at - j.generating_since).total_seconds() for j in measured)  # type: ignore[operator]
    kie.script_next(Fate(outcome="stuck"))
    telegram.user_sends(USER, "/imagine measured 4")
    job = jobs_in(db, 4, *FINAL_DELIVERED, *GENERATING)[-1]
    assert job.expected_s is not None and abs(job.expected_s - durations[1]) < 0.01
    progress = progress_of(telegram, job)
    assert progress is not None
    usual = re.search(r"usually about (\d+) s", words_of(progress))
    assert usual is not None and int(usual.group(1)) == max(1, round(job.expected_s)), words_of(progress)
    telegram.wait_for_chat(USER, lambda c: "taking longer than usual" in words_of(progress_of(telegram, job)),
                           timeout=20)


def test_before_any_measurement_the_catalogue_says_about_how_long(
        controls: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    spec = CATALOGUE.get("z-image")
    assert spec is not None
    kie.script_next(Fate(outcome="stuck"))
    telegram.user_sends(USER, "/imagine the first ever")
    [job] = jobs_in(db, 1, *GENERATING)
    assert job.expected_s is None
    assert f"about {spec.typical_time_s} s" in words_of(progress_of(telegram, job))


# --- one message per job ------------------------------------------------------------------------
def test_the_progress_message_is_gone_once_the_result_is_in_the_chat(
        controls: Instance, telegram: TelegramSim, db: Database) -> None:
    """Before: a "✅ done in N s" message stayed above every result."""
    telegram.user_sends(USER, "/imagine a tidy chat")
    [job] = jobs_in(db, 1, *FINAL_DELIVERED)
    telegram.wait_for_chat(USER, lambda c: progress_of(telegram, job) is None)
    assert [m.media for m in bot_messages(telegram)] == ["photo"]
    assert not said(telegram, "done in")
    assert [c.params["message_id"] for c in telegram.calls("deleteMessage")] == [job.progress_message_id]


def test_a_progress_message_telegram_will_not_delete_says_done_and_the_result_stays(
        controls: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.fail_next("deleteMessage", 1, 400, description="Bad Request: message can't be deleted for everyone")
    telegram.user_sends(USER, "/imagine an old message")
    [job] = jobs_in(db, 1, *FINAL_DELIVERED)
    telegram.wait_for_chat(USER, lambda c: "done in" in words_of(progress_of(telegram, job)))
    assert len(photos(telegram)) == 1
