"""In a group a result answers the message that asked for it (#14, Groups), through a real
instance and the simulators: the job keeps its request message (the /imagine, the prompt typed
in the wizard, the /imagine of a confirmed paid draft); the result's first message and the
failure notice reply to it, so everyone sees whose request it was; a request deleted meanwhile
never stops the result; a private chat gets no replies."""
from __future__ import annotations

from actors.job_state import JobState
from config.catalogue import load_catalogue
from config.pricing import default_pricing
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, TelegramSim
from storage import conversations, ledger
from storage.conversations import Step
from storage.db import Database
from storage.jobs import Job, get_job, recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 7301
GROUP = -7300
SUPERGROUP = -1_001_000_007_300
PAID_MODEL = "google/nano-banana"


# --- helpers -------------------------------------------------------------------------------------
def asks(telegram: TelegramSim, chat: int, words: str) -> int:
    """The user writes `words` in `chat`: the id of that message."""
    telegram.user_sends(USER, words, chat_id=chat)
    return next(m.message_id for m in reversed(telegram.chat(chat)) if not m.from_bot and m.text == words)


def imagine(telegram: TelegramSim, chat: int, prompt: str) -> int:
    """/imagine addressed to the bot by name, as a group member writes it: the message's id."""
    return asks(telegram, chat, f"/imagine@{telegram.bot_username} {prompt}")


def bot_messages(telegram: TelegramSim, chat: int) -> list[ChatMessage]:
    return [m for m in telegram.chat(chat) if m.from_bot]


def results(telegram: TelegramSim, chat: int, count: int) -> list[ChatMessage]:
    """`count` photos in the chat, their progress messages gone."""
    def shown() -> list[ChatMessage]:
        bot = bot_messages(telegram, chat)
        photos = [m for m in bot if m.media == "photo"]
        busy = any((m.text or "").startswith("⏳") for m in bot)
        return photos if len(photos) == count and not busy else []
    return wait_until(shown, timeout=30, what=f"{count} result(s) in chat {chat}")


def jobs(db: Database, count: int, *states: JobState) -> list[Job]:
    """The user's `count` jobs, oldest first, once each is in one of `states`."""
    def ready() -> list[Job]:
        found = sorted(recent_jobs(db, USER, 50), key=lambda j: j.id)
        return found if len(found) == count and all(j.state in states for j in found) else []
    return wait_until(ready, timeout=30, what=f"{count} job(s) in {[s.value for s in states]}")


def settled(db: Database, job_id: int) -> Job:
    def done() -> Job | None:
        job = get_job(db, job_id)
        return job if job is not None and job.terminal else None
    job = wait_until(done, timeout=30, what=f"job {job_id} final")
    assert job is not None
    return job


def notice_in(telegram: TelegramSim, chat: int) -> ChatMessage:
    """The failure notice as the chat shows it."""
    def said() -> ChatMessage | None:
        return next((m for m in bot_messages(telegram, chat) if "the generation failed" in (m.text or "")), None)
    notice = wait_until(said, timeout=30, what="the failure notice")
    assert notice is not None
    return notice


def only_task(kie: KieSim) -> str:
    tasks = wait_until(lambda: list(kie.tasks()), timeout=30, what="the KIE task created")
    [task_id] = tasks
    return task_id


def at_step(db: Database, chat: int, step: Step, asking: str | None = None) -> None:
    """Wait until the user's conversation in `chat` is at `step` (asking that field)."""
    def there() -> bool:
        conv = conversations.load(db, chat, USER)
        return conv.step is step and conv.draft.asking == asking
    wait_until(there, timeout=15, what=f"the conversation at {step.value} {asking or ''}")


def start_confirmed(telegram: TelegramSim, db: Database, chat: int) -> None:
    """At the confirmation, once it is in the chat, press its ✅ start button."""
    at_step(db, chat, Step.CONFIRM)
    telegram.wait_for_chat(chat, lambda c: any("✅" in label for m in c if m.from_bot
                                               for row in m.buttons for label, _ in row), timeout=15)
    telegram.user_presses(USER, "✅", chat_id=chat)


def sends_with_a_reply(telegram: TelegramSim) -> list[str]:
    return [c.method for c in telegram.calls() if c.method.startswith("send") and "reply_parameters" in c.params]


# --- groups --------------------------------------------------------------------------------------
def test_in_a_group_the_result_replies_to_the_imagine_message_and_so_does_a_regenerated_one(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    request = imagine(telegram, GROUP, "a group portrait")
    [first] = results(telegram, GROUP, 1)
    [job] = jobs(db, 1, JobState.DELIVERED)
    assert job.request_message_id == request and job.succeeded
    assert first.reply_to == request and job.delivered_message_ids == [first.message_id]

    telegram.user_presses(USER, "Regenerate", chat_id=GROUP)    # the same request, asked again
    [_, again] = results(telegram, GROUP, 2)
    assert again.reply_to == request
    assert [j.request_message_id for j in jobs(db, 2, JobState.DELIVERED)] == [request, request]


def test_in_a_supergroup_a_failure_notice_replies_to_the_request(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="fail", fail_code="400", fail_msg="Content policy violation"))
    request = imagine(telegram, SUPERGROUP, "something refused")
    [job] = jobs(db, 1, JobState.DELIVERED)
    notice = notice_in(telegram, SUPERGROUP)
    assert not job.succeeded and notice.message_id == job.progress_message_id    # the progress message became it
    assert notice.reply_to == request


def test_a_failure_notice_sent_anew_when_its_progress_message_is_gone_replies_too(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="fail", fail_code="400", fail_msg="Content policy violation", duration_s=600))
    request = imagine(telegram, GROUP, "refused later")
    [job] = jobs(db, 1, JobState.SUBMITTED)
    assert job.progress_message_id is not None
    telegram.user_deletes(GROUP, job.progress_message_id)      # a group admin tidies the chat
    kie.complete_now(only_task(kie))
    final = settled(db, job.id)
    notice = notice_in(telegram, GROUP)
    assert (final.state, final.outcome) == (JobState.DELIVERED, "failure")
    assert notice.message_id != job.progress_message_id and notice.reply_to == request


def test_a_deleted_request_does_not_stop_its_result(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(duration_s=600))
    request = imagine(telegram, GROUP, "a result nobody asked for any more")
    [job] = jobs(db, 1, JobState.SUBMITTED)
    telegram.user_deletes(GROUP, request)
    kie.complete_now(only_task(kie))
    [photo] = results(telegram, GROUP, 1)
    final = settled(db, job.id)
    assert (final.state, final.outcome) == (JobState.DELIVERED, "success")
    assert final.delivered_message_ids == [photo.message_id] and photo.reply_to is None
    assert "sendPhoto" in sends_with_a_reply(telegram)         # it was asked as a reply all the same


def test_a_result_for_a_group_that_became_a_supergroup_goes_there_without_a_reply(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    """The request's message id means nothing in the new chat: nothing may seem to answer it."""
    kie.script_next(Fate(duration_s=600))
    imagine(telegram, GROUP, "a portrait for the bigger group")
    [job] = jobs(db, 1, JobState.SUBMITTED)
    telegram.migrate_chat(GROUP, SUPERGROUP)
    kie.complete_now(only_task(kie))
    [photo] = results(telegram, SUPERGROUP, 1)
    assert settled(db, job.id).delivered_message_ids == [photo.message_id] and photo.reply_to is None
    refused, sent = telegram.calls("sendPhoto")
    assert refused.status == 400 and "reply_parameters" in refused.params
    assert sent.params["chat_id"] == SUPERGROUP and "reply_parameters" not in sent.params


def test_a_paid_imagine_confirmed_in_a_group_replies_to_the_imagine_message(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    spec = load_catalogue().get(PAID_MODEL)
    assert spec is not None
    quote = default_pricing().quote(spec, spec.with_defaults({"prompt": "p"}))
    assert quote is not None and quote.price > 0
    assert isinstance(ledger.grant(db, USER, quote.price, "test money"), ledger.Granted)
    request = imagine(telegram, GROUP, f"a paid owl --model {PAID_MODEL}")
    start_confirmed(telegram, db, GROUP)
    [photo] = results(telegram, GROUP, 1)
    [job] = jobs(db, 1, JobState.DELIVERED)
    assert job.price == quote.price and job.request_message_id == request
    assert photo.reply_to == request


def test_a_prompt_typed_in_the_wizard_is_the_request_its_result_replies_to(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    imagine(telegram, GROUP, "a first try")
    results(telegram, GROUP, 1)
    telegram.user_presses(USER, "Edit prompt", chat_id=GROUP)
    at_step(db, GROUP, Step.WIZARD, "prompt")
    prompt = asks(telegram, GROUP, "a second, better try")
    start_confirmed(telegram, db, GROUP)
    [_, second] = results(telegram, GROUP, 2)
    [_, job] = jobs(db, 2, JobState.DELIVERED)
    assert job.input["prompt"] == "a second, better try" and job.request_message_id == prompt
    assert second.reply_to == prompt


# --- private chats -------------------------------------------------------------------------------
def test_in_a_private_chat_nothing_replies(bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    request = asks(telegram, USER, "/imagine a quiet lake")
    [photo] = results(telegram, USER, 1)
    [job] = jobs(db, 1, JobState.DELIVERED)
    assert job.request_message_id == request and photo.reply_to is None
    kie.script_next(Fate(outcome="fail", fail_code="400", fail_msg="Content policy violation"))
    asks(telegram, USER, "/imagine a refused lake")
    notice = notice_in(telegram, USER)
    assert notice.reply_to is None
    assert sends_with_a_reply(telegram) == []
