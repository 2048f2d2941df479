"""The checkout desk: a pre-checkout answer that fails (each fault class) is given again from the
store before Telegram's 10 s deadline, and the payment is credited once; a chat busy with slow
sends does not hold up its own user's checkout."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from config.pricing import default_pricing
from sim.telegram import PaymentOutcome, TelegramSim
from storage import ledger
from storage.db import Database
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 6301
ANSWER = "answerPreCheckoutQuery"


def pay_an_invoice(telegram: TelegramSim) -> str:
    """/buy, then the user pays the newest invoice; the payment's charge id once it went through."""
    telegram.user_sends(USER, "/buy")
    telegram.wait_for_chat(USER, lambda chat: any(m.invoice is not None for m in chat if m.from_bot), timeout=15)
    attempt = telegram.user_pays(USER)
    ended = telegram.wait_for_payment(attempt.query_id)
    assert ended.outcome is PaymentOutcome.PAID, ended
    assert ended.charge_id is not None
    return ended.charge_id


FAULTS: dict[str, Callable[[TelegramSim], None]] = {
    "5xx": lambda t: t.fail_next(ANSWER, 1, 502),
    "429 short": lambda t: t.fail_next(ANSWER, 1, 429, retry_after=1),
    "reset before it was performed": lambda t: t.reset_next(ANSWER, 1),
    "reset after it was performed": lambda t: t.reset_next(ANSWER, 1, performed=True),
    "dropped response": lambda t: t.drop_next_response(ANSWER, 1),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failed_pre_checkout_answer_is_given_again_in_time_and_paid_once(
        fault: str, bot: Instance, telegram: TelegramSim, db: Database) -> None:
    FAULTS[fault](telegram)
    charge = pay_an_invoice(telegram)
    wait_until(lambda: ledger.star_payment(db, charge) is not None, timeout=15, what="credited")
    [payment] = ledger.user_payments(db, USER)
    assert payment.charge_id == charge
    assert payment.credits in {p.credits for p in default_pricing().packages}
    assert ledger.wallet(db, USER).available == payment.credits


def test_a_chat_busy_with_slow_sends_does_not_hold_up_its_users_checkout(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.user_sends(USER, "/buy")
    telegram.wait_for_chat(USER, lambda chat: any(m.invoice is not None for m in chat if m.from_bot), timeout=15)
    telegram.slow("sendMessage", 6)
    for words in ("/help", "/balance", "/help"):       # three replies, each 6 s on the wire, in order
        telegram.user_sends(USER, words)
    telegram.wait_for_arrival("sendMessage", timeout=10)
    attempt = telegram.user_pays(USER)
    ended = telegram.wait_for_payment(attempt.query_id)
    telegram.slow("sendMessage", 0)
    assert ended.outcome is PaymentOutcome.PAID, ended
