"""Money in the conversation, through a real instance and the simulators: the free tier, prices
and confirmations, /balance, Telegram Stars top-ups (/buy, pre-checkout, successful_payment and
its redelivery), a kept draft started by one tap after paying, failures that return credits,
referrals and the operator's /refund. Assertions are on what the user sees in the simulated
chat and on the ledger (storage.ledger.wallet / movements)."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from actors.job_state import JobState
from bot.questions import choice_label
from config.catalogue import load_catalogue
from config.money import format_credits
from config.pricing import default_pricing
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import ChatMessage, PaymentOutcome, TelegramSim
from storage import ledger, updates
from storage.db import Database
from storage.jobs import Job, recent_jobs
from storage.ledger import EntryKind
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 6101
FRIEND = 6102
ADMIN = 6199
PAID_MODEL = "google/nano-banana"       # a prompt is all it needs; it has no free tier
CATALOGUE = load_catalogue()
PRICING = default_pricing()


def price_of(model: str, **given: Any) -> int:
    spec = CATALOGUE.get(model)
    assert spec is not None
    quote = PRICING.quote(spec, spec.with_defaults(given))
    assert quote is not None and quote.price > 0
    return quote.price


NANO = price_of(PAID_MODEL, prompt="p")
ZIMAGE = price_of("z-image", prompt="p", aspect_ratio="1:1")


def in_credits(minor: int) -> str:
    return f"{format_credits(minor)} credits"


def bot_messages(telegram: TelegramSim, user: int = USER) -> list[ChatMessage]:
    return [m for m in telegram.chat(user) if m.from_bot]


def said(telegram: TelegramSim, user: int, words: str) -> list[ChatMessage]:
    """Bot messages (as they read now) containing `words`."""
    return [m for m in bot_messages(telegram, user) if words in (m.text or m.caption or "")]


def wait_said(telegram: TelegramSim, words: str, user: int = USER, timeout: float = 15.0) -> ChatMessage:
    telegram.wait_for_chat(user, lambda c: bool(said(telegram, user, words)), timeout=timeout)
    return said(telegram, user, words)[-1]


def buttons(message: ChatMessage) -> list[str]:
    return [b[0] for row in message.buttons for b in row]


def photos(telegram: TelegramSim, user: int = USER) -> list[ChatMessage]:
    return [m for m in bot_messages(telegram, user) if m.media == "photo"]


def final_jobs(db: Database, count: int, user: int = USER) -> list[Job]:
    """The user's `count` jobs, newest first, once all of them are final."""
    def done() -> list[Job]:
        jobs = recent_jobs(db, user)
        return jobs if len(jobs) == count and all(j.terminal for j in jobs) else []

    return wait_until(done, timeout=30, what=f"{count} final job(s)")


def newest_id(telegram: TelegramSim, user: int = USER) -> int:
    """The id of the chat's newest message (ids only grow; a job's progress message is deleted
    once its result is in the chat, so counting messages would not tell what is new)."""
    return max((m.message_id for m in telegram.chat(user)), default=0)


def bot_messages_after(telegram: TelegramSim, message_id: int, user: int = USER) -> list[ChatMessage]:
    return [m for m in bot_messages(telegram, user) if m.message_id > message_id]


def ask_and_wait(telegram: TelegramSim, words: str, user: int = USER) -> ChatMessage:
    """Send a message and wait for the bot's next message (the chat is handled in order)."""
    before = newest_id(telegram, user)
    telegram.user_sends(user, words)
    telegram.wait_for_chat(user, lambda c: bool(bot_messages_after(telegram, before, user)), timeout=15)
    return bot_messages_after(telegram, before, user)[0]


def press_and_wait(telegram: TelegramSim, label: str, user: int = USER) -> None:
    """Press a button and wait for the answer: a new message, or the newest one edited in place
    (menus and pages are, #14)."""
    def newest_shown() -> tuple[str, list[list[tuple[str, str]]]] | None:
        bot = bot_messages(telegram, user)
        return (bot[-1].text or bot[-1].caption or "", bot[-1].buttons) if bot else None

    before, shown = newest_id(telegram, user), newest_shown()
    telegram.user_presses(user, label)
    telegram.wait_for_chat(user, lambda c: bool(bot_messages_after(telegram, before, user)) or newest_shown() != shown,
                           timeout=15)


def confirmation_for(telegram: TelegramSim, words: str, user: int = USER) -> ChatMessage:
    """The newest message with a ✅ start button, after `words` were sent."""
    ask_and_wait(telegram, words, user)
    message = bot_messages(telegram, user)[-1]
    assert any(b.startswith("✅") for b in buttons(message)), message
    return message


def pay_newest_invoice(telegram: TelegramSim, user: int = USER) -> str:
    """The user pays the newest invoice they have not paid; the bot must accept it in time."""
    attempt = telegram.user_pays(user)
    ended = telegram.wait_for_payment(attempt.query_id)
    assert ended.outcome is PaymentOutcome.PAID, ended
    assert ended.charge_id is not None
    return ended.charge_id


def invoices(telegram: TelegramSim, user: int = USER) -> list[ChatMessage]:
    return [m for m in bot_messages(telegram, user) if m.invoice is not None]


def grant(db: Database, user: int, minor: int) -> None:
    assert isinstance(ledger.grant(db, user, minor, "test money"), ledger.Granted)


def kinds(db: Database, user: int = USER) -> list[EntryKind]:
    return [m.kind for m in ledger.movements(db, user, 100)]


# --- the free tier ------------------------------------------------------------------------------
def test_a_new_users_imagine_is_free_at_once_and_says_how_many_free_ones_are_left(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.user_sends(USER, "/imagine a red fox")
    telegram.wait_for_chat(USER, lambda c: len(photos(telegram)) == 1, timeout=15)
    [job] = final_jobs(db, 1)
    assert job.state is JobState.DELIVERED and job.free and job.price == 0
    shown = [c.params["text"] for c in telegram.calls("sendMessage") if c.params.get("chat_id") == USER]
    assert any("free: 2 of 3 left today" in t for t in shown)
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 0, 0)
    assert ledger.movements(db, USER) == []


def test_the_fourth_imagine_of_the_day_asks_to_confirm_with_the_price(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    for n in range(3):
        telegram.user_sends(USER, f"/imagine picture {n}")
        final_jobs(db, n + 1)
    assert all(j.free for j in recent_jobs(db, USER))
    confirmation = confirmation_for(telegram, "/imagine picture 3")
    assert in_credits(ZIMAGE) in (confirmation.text or "")
    assert f"✅ Generate · {in_credits(ZIMAGE)}" in buttons(confirmation)
    assert len(recent_jobs(db, USER)) == 3 and len(kie.tasks()) == 3     # nothing starts without the tap


# --- paid jobs ----------------------------------------------------------------------------------
def test_a_paid_job_is_delivered_and_charged_exactly_its_price_and_balance_shows_it(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    grant(db, USER, 10_000)
    confirmation = confirmation_for(telegram, f"/imagine a lighthouse --model {PAID_MODEL}")
    assert f"balance: {in_credits(10_000)}" in (confirmation.text or "")
    telegram.user_presses(USER, "✅ Generate")
    [job] = final_jobs(db, 1)
    assert job.state is JobState.DELIVERED and job.succeeded and job.price == NANO and not job.free
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 10_000 - NANO, 0)
    photo = wait_said(telegram, "a lighthouse")
    assert photo.caption is not None and photo.caption.endswith(f"· {in_credits(NANO)}")

    shown = ask_and_wait(telegram, "/balance").text or ""
    assert f"Balance: {in_credits(10_000 - NANO)}" in shown
    assert f"−{format_credits(NANO)} · job #{job.id} Nano Banana · on hold" in shown
    assert f"✓ {format_credits(NANO)} paid · job #{job.id} Nano Banana" in shown
    assert "+100 · from the operator (test money)" in shown
    assert "Z-Image 3 of 3 left" in shown


def test_regenerate_on_a_paid_model_asks_to_confirm_with_the_price(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    grant(db, USER, 10_000)
    confirmation_for(telegram, f"/imagine a windmill --model {PAID_MODEL}")
    telegram.user_presses(USER, "✅ Generate")
    [first] = final_jobs(db, 1)
    telegram.wait_for_chat(USER, lambda c: len(photos(telegram)) == 1, timeout=15)
    press_and_wait(telegram, "Regenerate")
    confirmation = bot_messages(telegram)[-1]
    assert f"✅ Generate · {in_credits(NANO)}" in buttons(confirmation)
    assert len(recent_jobs(db, USER)) == 1          # asked, not started
    telegram.user_presses(USER, "✅ Generate")
    jobs = final_jobs(db, 2)
    assert jobs[0].input == first.input and jobs[0].price == NANO
    assert ledger.wallet(db, USER).available == 10_000 - 2 * NANO


def test_a_paid_wizard_choice_that_changes_the_price_carries_its_own(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    spec = CATALOGUE.get("flux-2/pro-text-to-image")
    assert spec is not None and spec.required_fields[-1].name == "resolution"
    grant(db, USER, 10_000)
    ask_and_wait(telegram, "/imagine a bridge --model flux-2/pro-text-to-image --ar 1:1")
    confirmation = bot_messages(telegram)[-1]
    labels = buttons(confirmation)
    for value in spec.required_fields[-1].enum or []:
        price = price_of(spec.id, prompt="a bridge", aspect_ratio="1:1", resolution=value)
        assert f"✅ {choice_label('en', spec.required_fields[-1], value)} · {in_credits(price)}" in labels
    chosen = str((spec.required_fields[-1].enum or [])[-1])
    telegram.user_presses(USER, f"✅ {chosen} ·")
    [job] = final_jobs(db, 1)
    expected = price_of(spec.id, prompt="a bridge", aspect_ratio="1:1", resolution=chosen)
    assert job.input["resolution"] == chosen and job.price == expected
    assert ledger.wallet(db, USER).available == 10_000 - expected


def test_kie_failing_a_paid_job_says_the_credits_were_returned_and_the_wallet_is_whole(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    grant(db, USER, 5_000)
    confirmation_for(telegram, f"/imagine a storm --model {PAID_MODEL}")
    kie.script_next(Fate(outcome="fail", fail_code="400", fail_msg="Content policy violation"))
    telegram.user_presses(USER, "✅ Generate")
    [job] = final_jobs(db, 1)
    assert not job.succeeded
    notice = wait_said(telegram, "the generation failed")
    assert f"{format_credits(NANO)} credits returned to your balance." in (notice.text or "")
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 5_000, 0)
    assert kinds(db) == [EntryKind.RELEASE, EntryKind.HOLD, EntryKind.GRANT]


def test_an_empty_kie_account_tells_the_user_plainly_and_charges_nothing(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    grant(db, USER, 5_000)
    kie.set_balance(0)
    confirmation_for(telegram, f"/imagine a comet --model {PAID_MODEL}")
    telegram.user_presses(USER, "✅ Generate")
    final_jobs(db, 1)
    notice = wait_said(telegram, "cannot take new work right now")
    assert "credits returned to your balance" in (notice.text or "")
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 5_000, 0)


def test_a_free_job_that_fails_says_the_user_was_not_charged(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="fail", fail_code="500", fail_msg="Internal error"))
    telegram.user_sends(USER, "/imagine a doomed sketch")
    final_jobs(db, 1)
    notice = wait_said(telegram, "the generation failed")
    assert "You were not charged." in (notice.text or "")


# --- Telegram Stars -----------------------------------------------------------------------------
def test_short_of_credits_keeps_the_choices_and_one_tap_after_paying_starts_them(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    confirmation = confirmation_for(telegram, f"/imagine a harbour at night --model {PAID_MODEL}")
    assert "Top up" in " ".join(buttons(confirmation))
    press_and_wait(telegram, "✅ Generate")
    refusal = bot_messages(telegram)[-1]
    assert f"this costs {in_credits(NANO)}, your balance is {in_credits(0)}" in (refusal.text or "")
    assert not any("starting" in (m.text or "") for m in bot_messages(telegram))
    assert recent_jobs(db, USER) == []

    telegram.user_presses(USER, "Top up")
    telegram.wait_for_chat(USER, lambda c: len(invoices(telegram)) == len(PRICING.packages), timeout=15)
    [call, *_] = telegram.calls("sendInvoice")
    assert call.params["currency"] == "XTR" and call.params["provider_token"] == ""
    assert len(call.params["prices"]) == 1
    newest = PRICING.packages[-1]
    pay_newest_invoice(telegram)
    receipt = wait_said(telegram, f"Payment received: +{in_credits(newest.credits)}")
    assert ledger.wallet(db, USER).available == newest.credits
    telegram.wait_for_chat(USER, lambda c: bot_messages(telegram)[-1].message_id > receipt.message_id)
    again = bot_messages(telegram)[-1]
    assert "a harbour at night" in (again.text or "") and in_credits(newest.credits) in (again.text or "")
    assert f"✅ Generate · {in_credits(NANO)}" in buttons(again)

    telegram.user_presses(USER, "✅ Generate")
    [job] = final_jobs(db, 1)
    assert job.input["prompt"] == "a harbour at night" and job.succeeded
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, newest.credits - NANO, 0)
    assert [p.credits for p in ledger.user_payments(db, USER)] == [newest.credits]


def test_a_redelivered_successful_payment_is_credited_and_announced_once(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.user_sends(USER, "/buy")
    telegram.wait_for_chat(USER, lambda c: len(invoices(telegram)) == len(PRICING.packages), timeout=15)
    charge = pay_newest_invoice(telegram)
    wait_said(telegram, "Payment received")
    telegram.redeliver_successful_payment(charge)
    telegram.redeliver_successful_payment(charge)
    ask_and_wait(telegram, "/help")           # handled after both redeliveries (one chat, in order)
    assert len(said(telegram, USER, "Payment received")) == 1
    credited = PRICING.packages[-1].credits
    assert ledger.wallet(db, USER).available == credited
    assert kinds(db) == [EntryKind.PURCHASE]
    assert ledger.star_payment(db, charge) is not None


def test_a_payment_message_held_back_by_a_long_429_is_said_once_when_telegram_allows(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.user_sends(USER, "/buy")
    telegram.wait_for_chat(USER, lambda c: len(invoices(telegram)) == len(PRICING.packages), timeout=15)
    telegram.fail_next("sendMessage", 1, status=429, retry_after=7)
    charge = pay_newest_invoice(telegram)
    wait_said(telegram, "Payment received", timeout=30)
    ask_and_wait(telegram, "/help")
    assert len(said(telegram, USER, "Payment received")) == 1
    assert [p.charge_id for p in ledger.user_payments(db, USER)] == [charge]
    assert kinds(db) == [EntryKind.PURCHASE]


# How the "Payment received" send fails, and whether Telegram performed it first.
RECEIPT_FAULTS = {"500": False, "reset before sending": False, "answer lost": True, "reset after sending": True}


@pytest.mark.parametrize("fault", RECEIPT_FAULTS)
def test_a_payment_message_that_meets_a_fault_is_said_and_the_payment_credited_once(
        bot: Instance, telegram: TelegramSim, db: Database, fault: str) -> None:
    """The payment is credited before its message: a failed send must not leave the user who
    paid with silence or an apology. A send Telegram did not perform is made again at the next
    sweep; one whose outcome is unknown is made again too (a repeat is truer than silence)."""
    telegram.user_sends(USER, "/buy")
    telegram.wait_for_chat(USER, lambda c: len(invoices(telegram)) == len(PRICING.packages), timeout=15)
    match fault:
        case "500":
            telegram.fail_next("sendMessage", 1, status=500, description="Internal Server Error")
        case "reset before sending":
            telegram.reset_next("sendMessage")
        case "answer lost":
            telegram.drop_next_response("sendMessage")
        case "reset after sending":
            telegram.reset_next("sendMessage", performed=True)
    charge = pay_newest_invoice(telegram)
    expected = 2 if RECEIPT_FAULTS[fault] else 1
    telegram.wait_for_chat(USER, lambda c: len(said(telegram, USER, "Payment received")) >= expected, timeout=30)
    wait_until(lambda: updates.unprocessed(db) == [], timeout=30, what="the payment's update handled")
    ask_and_wait(telegram, "/help")
    receipts = said(telegram, USER, "Payment received")
    assert len(receipts) == expected
    assert len({r.text for r in receipts}) == 1, "a repeat says the same, balance included"
    assert not any("went wrong" in (m.text or "").lower() for m in bot_messages(telegram, USER))
    assert [p.charge_id for p in ledger.user_payments(db, USER)] == [charge]
    assert kinds(db) == [EntryKind.PURCHASE]


def test_a_checkout_whose_invoice_does_not_match_a_package_is_declined_with_a_reason(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    package = PRICING.packages[0]
    ask_and_wait(telegram, "/help")                          # the chat exists

    def invoice_then_pay(payload: str, stars: int) -> Any:
        sent = requests.post(f"{telegram.url}/bot{telegram.token}/sendInvoice", timeout=10, json={
            "chat_id": USER, "title": "credits", "description": "credits", "payload": payload,
            "currency": "XTR", "prices": [{"label": "credits", "amount": stars}]})
        assert sent.json()["ok"], sent.text
        attempt = telegram.user_pays(USER)
        return telegram.wait_for_payment(attempt.query_id)

    tampered = invoice_then_pay(f"stars:{package.id}:{package.credits * 10}", package.stars)
    cheaper = invoice_then_pay(f"stars:{package.id}:{package.credits}", package.stars - 1)
    unknown = invoice_then_pay("stars:gone:100", package.stars)
    for ended in (tampered, cheaper, unknown):
        assert ended.outcome is PaymentOutcome.DECLINED
        assert "This offer has changed" in (ended.error_message or "")
    assert telegram.star_payments() == []
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 0, 0)


def test_referral_bonus_goes_to_both_sides_once_after_the_first_purchase(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    shown = ask_and_wait(telegram, "/balance").text or ""
    found = re.search(r"https://t\.me/(\w+)\?start=(ref_\w+)", shown)
    assert found is not None and found.group(1) == telegram.bot_username
    welcome = ask_and_wait(telegram, f"/start {found.group(2)}", FRIEND).text or ""
    assert "friend's invitation" in welcome
    bonus_referrer, bonus_referred = PRICING.referrer_bonus, PRICING.referred_bonus
    assert bonus_referrer > 0 and bonus_referred > 0

    telegram.user_sends(FRIEND, "/buy")
    telegram.wait_for_chat(FRIEND, lambda c: len(invoices(telegram, FRIEND)) == len(PRICING.packages), timeout=15)
    pay_newest_invoice(telegram, FRIEND)
    pay_newest_invoice(telegram, FRIEND)
    wait_until(lambda: len(said(telegram, FRIEND, "Payment received")) == 2, timeout=15, what="two payments")
    paid = PRICING.packages[-1].credits + PRICING.packages[-2].credits
    assert ledger.wallet(db, FRIEND).available == paid + bonus_referred
    assert ledger.wallet(db, USER).available == bonus_referrer
    assert kinds(db, USER) == [EntryKind.REFERRAL]
    assert "+5 · referral bonus" in (ask_and_wait(telegram, "/balance").text or "")


def test_a_bad_or_self_referral_code_is_ignored_and_the_menu_shown(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    ask_and_wait(telegram, "/balance")
    own = re.search(r"start=(ref_\w+)", bot_messages(telegram)[-1].text or "")
    assert own is not None
    for code in (own.group(1), "ref_", "ref_!!", "ref_zzzzzzzzzzzzzzzzzz", "nonsense"):
        answer = ask_and_wait(telegram, f"/start {code}")
        assert "Create image" in " ".join(buttons(answer)) and "invitation" not in (answer.text or "")


def test_a_welcome_credit_in_the_price_file_is_granted_once_per_user(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database, tmp_path: Path) -> None:
    raw = json.loads(PRICING.path.read_text(encoding="utf-8"))
    raw["welcome_credit"] = "3"
    price_file = tmp_path / "pricing.json"
    price_file.write_text(json.dumps(raw), encoding="utf-8")
    for _ in range(2):                  # a second instance (a restart) grants nothing more
        inst = instance_factory(KIEBOT_PRICING=str(price_file))
        wait_until(lambda: inst.runtime.status.active, timeout=10, what="leader")
        shown = ask_and_wait(telegram, "/balance").text or ""
        assert f"Balance: {in_credits(300)}" in shown and "+3 · welcome credit" in shown
        inst.runtime.stop()
    assert kinds(db) == [EntryKind.WELCOME]


# --- the operator -------------------------------------------------------------------------------
def test_refund_is_for_admins_and_takes_back_what_is_available(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, db: Database) -> None:
    inst = instance_factory(ADMIN_IDS=str(ADMIN))
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="leader")
    telegram.user_sends(USER, "/buy")
    telegram.wait_for_chat(USER, lambda c: len(invoices(telegram)) == len(PRICING.packages), timeout=15)
    charge = pay_newest_invoice(telegram)
    wait_said(telegram, "Payment received")
    assert "did not understand" in (ask_and_wait(telegram, f"/refund {charge}").text or "")
    assert ledger.wallet(db, USER).available == PRICING.packages[-1].credits

    reply = ask_and_wait(telegram, f"/refund {charge}", ADMIN).text or ""
    assert f"{in_credits(PRICING.packages[-1].credits)} taken back from user {USER}" in reply
    assert ledger.wallet(db, USER).available == 0
    again = ask_and_wait(telegram, f"/refund {charge}", ADMIN).text or ""
    assert "refunded or queued before" in again
    assert "no payment" in (ask_and_wait(telegram, "/refund nope", ADMIN).text or "").lower()


def test_help_lists_balance_and_buy(bot: Instance, telegram: TelegramSim) -> None:
    shown = ask_and_wait(telegram, "/help").text or ""
    assert "/balance" in shown and "/buy" in shown


def test_prices_are_shown_on_the_model_list_and_the_card(bot: Instance, telegram: TelegramSim) -> None:
    ask_and_wait(telegram, "/start")
    press_and_wait(telegram, "Create image")
    labels = buttons(bot_messages(telegram)[-1])
    assert "Z-Image · free 3/day" in labels
    lowest = PRICING.from_price(CATALOGUE.get(PAID_MODEL))  # type: ignore[arg-type]
    assert lowest is not None
    assert f"Nano Banana · from {in_credits(lowest)}" in labels
    press_and_wait(telegram, "Nano Banana ·")
    assert f"💰 from {in_credits(lowest)}" in (bot_messages(telegram)[-1].text or "")

