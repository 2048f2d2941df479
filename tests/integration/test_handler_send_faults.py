"""A handler's Telegram send that fails after (or before) the durable change it made.

When a handler raises, bot/dialogue.py `on_error` sends "Sorry, something went wrong on our
side. Please try again." A send failing *after* the handler changed something durable (a job
cancelled, a referral recorded, a refund queued, a language switched, a payment credited)
must not leave the user with that apology: it says "nothing happened, do it again" when it
did happen, and doing it again then says something else (or nothing). A send failing *before*
the change must leave nothing done, so that the apology is true and trying again works once.

Faults are injected in the Telegram simulator: a 500 (not performed), an answer lost after
Telegram performed the call (drop_next_response), a TCP reset after it was performed. Every
assertion is on what the user sees in the simulated chat and on our own storage.
"""
from __future__ import annotations

from collections.abc import Callable

import pytest

import bot_gateway
from actors.job_state import JobState
from bot import chat_lanes, flood_control, referral
from config.catalogue import load_catalogue
from config.pricing import default_pricing
from sim.kie import KieSim
from sim.telegram import ChatMessage, PaymentOutcome, TelegramSim
from storage import conversations, ledger, updates
from storage.conversations import Step
from storage.db import Database
from storage.jobs import Job, recent_jobs
from storage.ledger import EntryKind
from tests.support.harness import Instance
from tests.support.waiting import the_job, wait_until
from tests.support.wizard_driver import Driver, default_choice_label

USER = 7301
FRIEND = 7302
ADMIN = 7399
PAID_MODEL = "google/nano-banana"       # a prompt is all it needs; it has no free tier
PRICING = default_pricing()
CATALOGUE = load_catalogue()
APOLOGY = "went wrong"                  # config/texts error_apology (en)

# How a send fails, and whether Telegram performed it before the failure.
FAULTS_AFTER = {"500": False, "answer lost": True, "reset after sending": True}


def inject(telegram: TelegramSim, method: str, fault: str) -> None:
    match fault:
        case "500":
            telegram.fail_next(method, 1, status=500, description="Internal Server Error")
        case "answer lost":
            telegram.drop_next_response(method)
        case "reset after sending":
            telegram.reset_next(method, performed=True)
        case "reset before sending":
            telegram.reset_next(method)
        case _:
            raise AssertionError(fault)


def words_of(message: ChatMessage | None) -> str:
    return (message.text or message.caption or "") if message is not None else ""


def bot_messages(telegram: TelegramSim, user: int = USER) -> list[ChatMessage]:
    return [m for m in telegram.chat(user) if m.from_bot]


def said(telegram: TelegramSim, words: str, user: int = USER) -> list[ChatMessage]:
    return [m for m in bot_messages(telegram, user) if words in words_of(m)]


def wait_said(telegram: TelegramSim, words: str, user: int = USER, timeout: float = 15.0) -> ChatMessage:
    telegram.wait_for_chat(user, lambda c: bool(said(telegram, words, user)), timeout=timeout)
    return said(telegram, words, user)[-1]


def apologies(telegram: TelegramSim, user: int = USER) -> list[str]:
    return [words_of(m) for m in bot_messages(telegram, user) if APOLOGY in words_of(m).lower()]


def buttons(message: ChatMessage) -> list[str]:
    return [b[0] for row in message.buttons for b in row]


def newest_id(telegram: TelegramSim, user: int = USER) -> int:
    return max((m.message_id for m in telegram.chat(user)), default=0)


def ask_and_wait(telegram: TelegramSim, words: str, user: int = USER) -> ChatMessage:
    """Send a message and wait for the bot's next message (one chat is handled in order)."""
    before = newest_id(telegram, user)
    telegram.user_sends(user, words)
    telegram.wait_for_chat(user, lambda c: any(m.message_id > before for m in bot_messages(telegram, user)),
                           timeout=15)
    return next(m for m in bot_messages(telegram, user) if m.message_id > before)


def all_handled(db: Database) -> None:
    """Every stored update handled (processed or set aside): what the bot will do, it did."""
    wait_until(lambda: updates.unprocessed(db) == [], timeout=30, what="every update handled")


def settle_chat(telegram: TelegramSim, db: Database, user: int = USER) -> None:
    """Everything the bot had to say to `user` about earlier updates has been said: /help goes
    after them in the chat's lane, and its answer is the last word."""
    all_handled(db)
    wait_said_after = newest_id(telegram, user)
    telegram.user_sends(user, "/help")
    telegram.wait_for_chat(user, lambda c: any(m.message_id > wait_said_after and "/imagine" in words_of(m)
                                               for m in bot_messages(telegram, user)), timeout=30)
    all_handled(db)


def invoices(telegram: TelegramSim, user: int = USER) -> list[ChatMessage]:
    return [m for m in bot_messages(telegram, user) if m.invoice is not None]


def buy_and_pay(telegram: TelegramSim, user: int = USER) -> str:
    telegram.user_sends(user, "/buy")
    telegram.wait_for_chat(user, lambda c: len(invoices(telegram, user)) == len(PRICING.packages), timeout=15)
    attempt = telegram.user_pays(user)
    ended = telegram.wait_for_payment(attempt.query_id)
    assert ended.outcome is PaymentOutcome.PAID and ended.charge_id is not None, ended
    return ended.charge_id


def progress_of(telegram: TelegramSim, job: Job) -> ChatMessage | None:
    return next((m for m in telegram.chat(job.chat_id) if m.message_id == job.progress_message_id), None)


def price_of(model: str, **given: object) -> int:
    spec = CATALOGUE.get(model)
    assert spec is not None
    quote = PRICING.quote(spec, spec.with_defaults(given))
    assert quote is not None and quote.price > 0
    return quote.price


@pytest.fixture
def admin_bot(instance_factory: Callable[..., Instance]) -> Instance:
    inst = instance_factory(ADMIN_IDS=str(ADMIN))
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="instance becomes leader")
    return inst


# --- /cancel ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS_AFTER)
def test_cancel_whose_reply_fails_does_not_tell_the_user_to_try_again(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database, fault: str) -> None:
    """/cancel records the stop and tells the job's actor *before* its one-line reply: once the
    reply fails, the job is cancelled whatever the user reads. "Something went wrong, please
    try again" is then untrue, and trying again says "Nothing to cancel"."""
    kie.set_maintenance(True)               # createTask refused: the job waits in `created`
    telegram.user_sends(USER, "/imagine a lighthouse in fog")
    wait_until(lambda: kie.calls("createTask"), timeout=10, what="a refused createTask")
    [job] = wait_until(lambda: [j for j in recent_jobs(db, USER) if j.state is JobState.CREATED],
                       timeout=10, what="the job waits in created")
    all_handled(db)
    inject(telegram, "sendMessage", fault)
    telegram.user_sends(USER, "/cancel")
    job = the_job(db, job.id, JobState.CANCELLED)
    telegram.wait_for_chat(USER, lambda c: "not charged" in words_of(progress_of(telegram, job)))
    kie.set_maintenance(False)
    settle_chat(telegram, db)
    assert apologies(telegram) == [], "the cancel happened; the user was told to try again"


# --- /start ref_... -----------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["500", "answer lost"])
def test_a_referral_whose_welcome_fails_is_still_told_to_the_invited_user(
        bot: Instance, telegram: TelegramSim, db: Database, fault: str) -> None:
    """`/start ref_<code>` records the referral, then sends the welcome that says so. When that
    send fails the user reads the apology; doing as told (/start ref_<code> again) finds the
    referral recorded and shows a welcome without a word of the invitation, so the invited user
    never learns of the bonus they were promised."""
    ask_and_wait(telegram, "/help", USER)                    # the referrer exists
    link = f"/start {referral.PREFIX}{referral.code_for(USER)}"
    all_handled(db)
    inject(telegram, "sendMessage", fault)
    telegram.user_sends(FRIEND, link)
    all_handled(db)
    if not said(telegram, "friend's invitation", FRIEND):    # as the apology says: try again
        ask_and_wait(telegram, link, FRIEND)
    settle_chat(telegram, db, FRIEND)
    assert said(telegram, "friend's invitation", FRIEND), (
        f"the invited user was never told of the invitation: {[words_of(m) for m in bot_messages(telegram, FRIEND)]}")
    assert apologies(telegram, FRIEND) == []


# --- /lang --------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["command", "button"])
def test_a_language_switch_whose_answer_fails_is_not_answered_with_try_again(
        bot: Instance, telegram: TelegramSim, db: Database, how: str) -> None:
    """The language is stored before the menu in it is shown (a new message for /lang ru, an
    edit in place for the button). A 500 on that send gives the apology, in English, to a user
    whose language is now Russian, telling them to try what already took effect."""
    if how == "button":
        ask_and_wait(telegram, "/lang")
        all_handled(db)
        inject(telegram, "editMessageText", "500")
        telegram.user_presses(USER, "Русский")
    else:
        ask_and_wait(telegram, "/help")
        all_handled(db)
        inject(telegram, "sendMessage", "500")
        telegram.user_sends(USER, "/lang ru")
    wait_until(lambda: conversations.user_lang(db, USER, "en") == "ru", timeout=10, what="the language stored")
    settle_chat(telegram, db)
    assert apologies(telegram) == [], "the switch happened; the user was told (in English) to try again"
    assert said(telegram, "Язык: русский."), "the user was never told the language changed"


# --- /refund and refunded_payment ---------------------------------------------------------------
def test_a_refund_whose_reply_fails_does_not_tell_the_admin_to_try_again(
        admin_bot: Instance, telegram: TelegramSim, db: Database) -> None:
    """/refund takes the credits back and queues the refund before it replies. A 500 on the
    reply tells the operator "something went wrong, please try again" about a refund that was
    queued (and money taken from the user)."""
    charge = buy_and_pay(telegram)
    wait_said(telegram, "Payment received")
    ask_and_wait(telegram, "/help", ADMIN)
    all_handled(db)
    inject(telegram, "sendMessage", "500")
    telegram.user_sends(ADMIN, f"/refund {charge}")
    wait_until(lambda: ledger.wallet(db, USER).available == 0, timeout=10, what="the refund taken back")
    settle_chat(telegram, db, ADMIN)
    assert apologies(telegram, ADMIN) == [], "the refund was queued; the admin was told to try again"
    assert said(telegram, f"Refund of {charge} queued", ADMIN) or said(telegram, "refunded or queued before", ADMIN)


def test_a_refund_notice_that_meets_a_500_is_said_not_replaced_by_an_apology(
        admin_bot: Instance, telegram: TelegramSim, db: Database) -> None:
    """Telegram gave the Stars back (refunded_payment) and the credits were taken at /refund:
    the notice that says so is the user's only word of it. A 500 on it gives "something went
    wrong, please try again" instead, and the refund is never told (unlike "Payment received",
    which is said again at the next sweep)."""
    charge = buy_and_pay(telegram)
    wait_said(telegram, "Payment received")
    ask_and_wait(telegram, "/help", ADMIN)
    all_handled(db)
    telegram.spare_next("sendMessage", 1)      # the admin's reply goes out; the next one fails
    inject(telegram, "sendMessage", "500")
    telegram.user_sends(ADMIN, f"/refund {charge}")
    wait_said(telegram, f"Refund of {charge} queued", ADMIN)
    wait_until(lambda: any(p.refunded for p in telegram.star_payments()), timeout=20, what="the Stars refunded")
    failed = wait_until(lambda: [c for c in telegram.calls("sendMessage") if c.status == 500], timeout=20,
                        what="the faulted send")
    assert str(failed[0].params.get("chat_id")) == str(USER) and "refunded" in str(failed[0].params.get("text")), failed
    settle_chat(telegram, db)
    assert apologies(telegram) == [], "the user was told to try again instead of being told of the refund"
    assert said(telegram, "was refunded"), "the refund was never told"


# --- a payment that re-shows a kept confirmation ------------------------------------------------
def test_a_paid_user_whose_kept_confirmation_fails_to_show_is_not_told_to_try_again(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    """After "Payment received" (credited, announced), the confirmation that was short of credits
    is shown again. A 500 on that second send gives the apology right under the receipt: "something
    went wrong, please try again" to someone who just paid reads as "pay again"."""
    ask_and_wait(telegram, f"/imagine a harbour at night --model {PAID_MODEL}")
    all_handled(db)
    telegram.spare_next("sendMessage", 1)      # "Payment received" goes out; the confirmation fails
    inject(telegram, "sendMessage", "500")
    charge = buy_and_pay(telegram)
    wait_said(telegram, "Payment received")
    settle_chat(telegram, db)
    failed = [c for c in telegram.calls("sendMessage") if c.status == 500]
    assert len(failed) == 1 and "a harbour at night" in str(failed[0].params.get("text")), failed
    assert [p.charge_id for p in ledger.user_payments(db, USER)] == [charge]
    assert len(said(telegram, "Payment received")) == 1
    assert apologies(telegram) == [], "a user who just paid was told something went wrong, try again"


# --- starting a job -----------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["answer lost", "reset after sending"])
def test_a_progress_message_telegram_showed_announces_a_job_that_runs(
        bot: Instance, telegram: TelegramSim, db: Database, fault: str) -> None:
    """start_job sends "⏳ …: starting…" (with Cancel) before it creates the job. When Telegram
    shows that message but its answer is lost, the job is created all the same (once), runs and
    delivers, and nobody is told to try again. (Before: no job and an apology under a "starting…"
    for a generation that did not exist.) Its id never came back, so that message cannot be
    edited later; the result comes as a new message."""
    ask_and_wait(telegram, "/help")
    all_handled(db)
    inject(telegram, "sendMessage", fault)
    telegram.user_sends(USER, "/imagine a red kite over hills")
    telegram.wait_for_chat(USER, lambda c: bool(said(telegram, "starting…")))
    [job] = wait_until(lambda: [j for j in recent_jobs(db, USER) if j.terminal], timeout=30, what="the job final")
    settle_chat(telegram, db)
    assert job.state is JobState.DELIVERED and job.succeeded and job.input["prompt"] == "a red kite over hills"
    assert job.progress_message_id is None
    assert any((m.media or "").startswith("photo") for m in bot_messages(telegram))
    assert apologies(telegram) == []


def test_a_progress_message_refused_before_the_job_leaves_nothing_and_generate_again_starts_one(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    """Pin: a send that fails *before* the durable change (the progress message, 500: not shown)
    leaves nothing done and the confirmation's ✅ Generate working; the apology is then true, and
    one more tap starts exactly one job, charged once."""
    price = price_of(PAID_MODEL, prompt="p")
    assert isinstance(ledger.grant(db, USER, price * 3, "test money"), ledger.Granted)
    ask_and_wait(telegram, f"/imagine a quiet pier --model {PAID_MODEL}")
    confirmation = bot_messages(telegram)[-1]
    start = next(b for b in buttons(confirmation) if b.startswith("✅"))
    all_handled(db)
    inject(telegram, "sendMessage", "500")
    telegram.user_presses(USER, start)
    telegram.wait_for_chat(USER, lambda c: bool(apologies(telegram)))
    all_handled(db)
    assert recent_jobs(db, USER) == []
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, price * 3, 0)
    assert start in buttons(next(m for m in bot_messages(telegram) if m.message_id == confirmation.message_id))

    telegram.user_presses(USER, start, message_id=confirmation.message_id)
    [job] = wait_until(lambda: [j for j in recent_jobs(db, USER) if j.terminal], timeout=30, what="the job final")
    assert job.succeeded and job.input["prompt"] == "a quiet pier"
    assert ledger.wallet(db, USER).available == price * 2
    assert [m.kind for m in ledger.movements(db, USER, 10)].count(EntryKind.GRANT) == 1


# --- the progress message's Cancel --------------------------------------------------------------
def test_cancel_pressed_whose_answer_fails_cancels_the_job_and_apologises_for_nothing(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    """Pin: the Cancel button records the stop, then answers the press best effort (a toast): a
    500 on that answer loses only the toast; the job is cancelled, its progress message says so,
    and the chat gets no apology."""
    kie.set_maintenance(True)
    telegram.user_sends(USER, "/imagine a lantern on a boat")
    wait_until(lambda: kie.calls("createTask"), timeout=10, what="a refused createTask")
    [job] = wait_until(lambda: [j for j in recent_jobs(db, USER) if j.state is JobState.CREATED],
                       timeout=10, what="the job waits in created")
    all_handled(db)
    inject(telegram, "answerCallbackQuery", "500")
    telegram.user_presses(USER, "Cancel", message_id=job.progress_message_id)
    job = the_job(db, job.id, JobState.CANCELLED)
    telegram.wait_for_chat(USER, lambda c: "not charged" in words_of(progress_of(telegram, job)))
    kie.set_maintenance(False)
    settle_chat(telegram, db)
    assert [c.status for c in telegram.calls("answerCallbackQuery")] == [500]
    assert apologies(telegram) == []


# --- a wizard answer whose next screen fails ----------------------------------------------------
def test_a_wizard_choice_whose_confirmation_fails_can_be_tried_again_as_the_apology_says(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    """Tapping an answer stores it and moves the conversation to the confirmation *before* the
    confirmation is sent. A 500 on that send gives "please try again"; but the question's button
    is now out of date (a toast, and its keyboard goes), no confirmation is on screen, and typed
    words are not understood: the user cannot go on except by starting over."""
    spec = CATALOGUE.get("flux-2/pro-text-to-image")   # prompt, aspect ratio (buttons), then resolution
    assert spec is not None
    driver = Driver(telegram, db, spec, USER)
    driver.open_model()
    prompt, ratio = spec.field("prompt"), spec.field("aspect_ratio")
    assert prompt is not None and ratio is not None
    driver.answer(prompt, None)
    wait_until(lambda: conversations.load(db, USER, USER).draft.asking == "aspect_ratio", timeout=10,
               what="the ratio asked")
    label = default_choice_label(ratio)
    question = next(m for m in reversed(bot_messages(telegram)) if label in buttons(m))
    all_handled(db)
    inject(telegram, "sendMessage", "500")
    telegram.user_presses(USER, label, message_id=question.message_id)
    telegram.wait_for_chat(USER, lambda c: bool(apologies(telegram)) or any(
        b.startswith("✅") for m in bot_messages(telegram) for b in buttons(m)))
    all_handled(db)
    if apologies(telegram):                     # as the apology says: try again
        telegram.user_presses(USER, label, message_id=question.message_id)
    settle_chat(telegram, db)
    assert conversations.load(db, USER, USER).step is Step.CONFIRM
    confirmations = [m for m in bot_messages(telegram) if any(b.startswith("✅") for b in buttons(m))]
    assert confirmations, (
        "no confirmation to start from: " + repr([(words_of(m)[-60:], buttons(m)) for m in bot_messages(telegram)][-4:]))


# --- a long 429 on a reply ----------------------------------------------------------------------
@pytest.mark.parametrize("words", ["/start", "/help", "/balance"])
def test_a_reply_held_back_by_a_long_429_is_given_once_telegram_allows(
        bot: Instance, telegram: TelegramSim, db: Database, words: str) -> None:
    """Telegram asks the chat to wait longer than FloodControl waits inline: the reply (and any
    apology) cannot go now. The update stays in the store and is answered, once, when Telegram
    allows; it is never set aside unanswered."""
    ask_and_wait(telegram, "/help")
    all_handled(db)
    before = newest_id(telegram)
    telegram.fail_next("sendMessage", 1, status=429, retry_after=7)
    telegram.user_sends(USER, words)
    telegram.wait_for_chat(USER, lambda c: any(m.message_id > before for m in bot_messages(telegram)), timeout=30)
    settle_chat(telegram, db)
    answers = [m for m in bot_messages(telegram) if m.message_id > before]
    assert len(answers) == 2, [words_of(m) for m in answers]      # the reply, then /help's
    assert apologies(telegram) == []


# --- an update left for later: its order in the chat, its waits, its limits ----------------------
QUICK_WAITS = (0.2, 0.2, 0.2, 0.2, 0.2)
LANG_RU, LANG_EN = "Язык: русский.", "Language: English."


def test_a_left_update_is_handled_again_before_the_chats_later_ones(
        bot: Instance, telegram: TelegramSim, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """/lang ru whose answer meets a 500 is left for later; /lang en sent right after it must not
    be undone by /lang ru handled again after it (the chat's updates keep their order)."""
    monkeypatch.setattr(bot_gateway, "AGAIN_WAITS_S", QUICK_WAITS)
    ask_and_wait(telegram, "/help")
    all_handled(db)
    inject(telegram, "sendMessage", "500")
    telegram.user_sends(USER, "/lang ru")
    telegram.user_sends(USER, "/lang en")
    settle_chat(telegram, db)
    assert conversations.user_lang(db, USER, "ru") == "en", "the earlier /lang ru undid the later /lang en"
    spoken = [LANG_RU if LANG_RU in words_of(m) else LANG_EN for m in bot_messages(telegram)
              if LANG_RU in words_of(m) or LANG_EN in words_of(m)]
    assert spoken == [LANG_RU, LANG_EN], spoken
    assert apologies(telegram) == []


def test_words_of_unknown_fate_are_repeated_once_at_most(
        bot: Instance, telegram: TelegramSim, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer to /lang ru is lost twice (Telegram showed it both times): said again once,
    because a repeat is truer than silence, but not a third time; the update is set aside."""
    monkeypatch.setattr(bot_gateway, "AGAIN_WAITS_S", QUICK_WAITS)
    ask_and_wait(telegram, "/help")
    all_handled(db)
    telegram.drop_next_response("sendMessage", 2)
    telegram.user_sends(USER, "/lang ru")
    settle_chat(telegram, db)
    assert len(said(telegram, LANG_RU)) == 2, [words_of(m) for m in bot_messages(telegram)]
    assert any("unknown fate" in why for _, why in updates.failed(db)), updates.failed(db)


def test_an_update_telegram_keeps_refusing_is_set_aside_after_its_waits(
        bot: Instance, telegram: TelegramSim, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Telegram asks the chat to wait before every answer to /lang ru (a 429 longer than
    FloodControl waits inline, made short here): the update is handled again after each wait,
    at least what Telegram asked, then set aside, not retried for ever."""
    monkeypatch.setattr(bot_gateway, "AGAIN_WAITS_S", waits := (0.2, 0.2, 0.2))
    monkeypatch.setattr(flood_control, "MAX_INLINE_WAIT_S", 1.5)   # above the chat's pacing
    ask_and_wait(telegram, "/help")
    all_handled(db)
    before = len(telegram.calls("sendMessage"))
    telegram.fail_next("sendMessage", len(waits) + 1, status=429, retry_after=2)
    telegram.user_sends(USER, "/lang ru")
    wait_until(lambda: updates.failed(db) != [], timeout=30, what="the update set aside")
    settle_chat(telegram, db)
    refused = [c for c in telegram.calls("sendMessage")[before:] if c.status == 429]
    assert len(refused) == len(waits) + 1
    [(_, why)] = updates.failed(db)
    assert f"left for later {len(waits) + 1} times" in why, why


def test_a_reply_held_back_longer_than_every_wait_of_the_lane_is_still_given(
        bot: Instance, telegram: TelegramSim, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane waits what Telegram asked (retry_after), not only its own short waits: a 429
    longer than all of them together is waited out once, and the reply is given, not set aside."""
    monkeypatch.setattr(bot_gateway, "AGAIN_WAITS_S", QUICK_WAITS)     # 1 s in all, retry_after 7 s
    ask_and_wait(telegram, "/help")
    all_handled(db)
    before = newest_id(telegram)
    telegram.fail_next("sendMessage", 1, status=429, retry_after=7)
    telegram.user_sends(USER, "/help")
    telegram.wait_for_chat(USER, lambda c: any(m.message_id > before for m in bot_messages(telegram)), timeout=30)
    settle_chat(telegram, db)
    assert updates.failed(db) == []
    assert apologies(telegram) == []


def test_the_apology_speaks_the_language_the_user_chose(bot: Instance, telegram: TelegramSim, db: Database) -> None:
    """A user whose Telegram is English switched to Russian with /lang ru: when a reply fails
    and the error handler apologises, it does so in Russian (it used to read Telegram's)."""
    ask_and_wait(telegram, "/lang ru")
    all_handled(db)
    assert conversations.user_lang(db, USER, "en") == "ru"
    inject(telegram, "sendMessage", "500")
    telegram.user_sends(USER, "/help")
    settle_chat(telegram, db)
    assert said(telegram, "что-то пошло не так"), [words_of(m) for m in bot_messages(telegram)]
    assert apologies(telegram) == []                    # no English apology


def test_invoices_sent_before_a_long_429_are_not_sent_again(
        bot: Instance, telegram: TelegramSim, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """/buy sends one invoice per package; Telegram asks the chat to wait (longer than
    FloodControl waits inline) before the third. The update is handled again once it may, and
    sends only the invoices still missing: each package once."""
    monkeypatch.setattr(bot_gateway, "AGAIN_WAITS_S", QUICK_WAITS)
    ask_and_wait(telegram, "/help")
    all_handled(db)
    telegram.spare_next("sendInvoice", 2)
    telegram.fail_next("sendInvoice", 1, status=429, retry_after=6)
    telegram.user_sends(USER, "/buy")
    telegram.wait_for_chat(USER, lambda c: len(invoices(telegram)) >= len(PRICING.packages), timeout=30)
    settle_chat(telegram, db)
    titles = [(m.invoice or {}).get("title") for m in invoices(telegram)]
    assert len(invoices(telegram)) == len(PRICING.packages), titles
    assert updates.failed(db) == []


def test_a_chat_waiting_out_a_long_429_with_a_backlog_does_not_hold_up_another_chat(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One chat must wait (a long 429) while its user keeps sending: its backlog may not take
    every place in flight, so another user's /help is answered while the first chat still waits.
    (The places are made few here; in production they are 2,000, and 50 per chat.)"""
    monkeypatch.setattr(chat_lanes, "MAX_IN_FLIGHT", 5)
    monkeypatch.setattr(chat_lanes, "MAX_PER_CHAT", 3)
    inst = instance_factory()
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="instance becomes leader")
    ask_and_wait(telegram, "/help")
    all_handled(db)
    before = newest_id(telegram)
    telegram.fail_next("sendMessage", 1, status=429, retry_after=6)
    telegram.user_sends(USER, "/help")
    telegram.wait_for_call("sendMessage", predicate=lambda c: c.status == 429)
    for _ in range(6):
        telegram.user_sends(USER, "/balance")
    # Once a third user's /help, sent after that backlog, is answered, a sweep has taken it.
    ask_and_wait(telegram, "/help", user=USER + 100)
    quiet = ask_and_wait(telegram, "/help", user=FRIEND)
    assert "/imagine" in words_of(quiet)
    assert [m for m in bot_messages(telegram) if m.message_id > before] == [], (
        "the other chat was answered only after the waiting one")
    settle_chat(telegram, db)
