"""The treasurer's duties against the simulators and a running leader: the refund outbox (sent
once, retried when Telegram fails, CHARGE_ALREADY_REFUNDED counted as done, a refusal kept for the
operator) and the reconciliation of Stars payments with getStarTransactions."""
from __future__ import annotations

from typing import Any

from actors.ports import OperatorAlert
from actors.treasurer import KieBalance, Treasury, TreasuryConfig, page
from bot.operator_pager import TelegramOperatorPager
from bot.stars_account import TelegramStarsAccount
from config.pricing import default_pricing
from sim.telegram import PaymentOutcome, TelegramSim
from storage import ledger
from storage.db import Database
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER, ADMIN = 6701, 6799


def paid(telegram: TelegramSim, db: Database, user: int = USER) -> str:
    """The user buys the largest package through the bot; its charge id once credited."""
    telegram.user_sends(user, "/buy")
    telegram.wait_for_chat(user, lambda c: sum(1 for m in c if m.from_bot and m.invoice) == len(
        default_pricing().packages), timeout=15)
    attempt = telegram.wait_for_payment(telegram.user_pays(user).query_id)
    assert attempt.outcome is PaymentOutcome.PAID and attempt.charge_id
    wait_until(lambda: ledger.star_payment(db, attempt.charge_id or ""), what="the payment credited")
    return attempt.charge_id


def treasury(inst: Instance, db: Database, **config: Any) -> Treasury:
    """The running leader's own treasury parts, driven by the test instead of its timer."""
    epoch = inst.runtime.status.epoch
    assert epoch is not None
    sender = inst.runtime.bot.sender.for_epoch(epoch)
    return Treasury(db, None, TelegramStarsAccount(sender),
                    TelegramOperatorPager(sender, frozenset({ADMIN}), db), inst.runtime.metrics, KieBalance(),
                    TreasuryConfig(**config))


def test_a_queued_refund_is_sent_once_and_the_user_told(bot: Instance, telegram: TelegramSim, db: Database) -> None:
    charge = paid(telegram, db)
    request = ledger.request_refund(db, charge, "the user asked")
    assert request.status == "requested" and request.taken == default_pricing().packages[-1].credits
    # The leader's own treasurer sends it (its outbox is read every 2 s).
    wait_until(lambda: (p := ledger.star_payment(db, charge)) and p.state is ledger.PaymentState.REFUNDED,
               timeout=15, what="the refund sent")
    assert [p.refunded for p in telegram.star_payments()] == [True]
    assert len(telegram.calls("refundStarPayment")) == 1
    telegram.wait_for_chat(USER, lambda c: any("refund" in (m.text or "").lower() for m in c if m.from_bot))
    assert ledger.wallet(db, USER).available == 0
    assert ledger.check(db).clean


def test_a_failed_refund_call_is_retried_and_already_refunded_counts_as_done(
        bot: Instance, telegram: TelegramSim, db: Database, sql: Any) -> None:
    charge = paid(telegram, db)
    duty = treasury(bot, db)
    telegram.fail_next("refundStarPayment", 1, status=500, description="Internal Server Error")
    ledger.request_refund(db, charge, "retry test")
    # The leader's treasurer and this one race for the outbox; either way the first call fails.
    wait_until(lambda: (p := ledger.star_payment(db, charge)) and (p.refund_attempts > 0 or
                                                                   p.state is not ledger.PaymentState.REFUND_REQUESTED),
               timeout=15, what="the first refund attempt")
    sql.execute("UPDATE star_payments SET refund_next_at = now() WHERE charge_id = %s", (charge,))
    duty.send_refunds()
    final = ledger.star_payment(db, charge)
    assert final is not None and final.state is ledger.PaymentState.REFUNDED
    assert [p.refunded for p in telegram.star_payments()] == [True]
    metrics = bot.runtime.metrics.render().decode()
    assert 'kiebot_star_refunds_total{result="retry"} 1.0' in metrics


def test_a_refund_telegram_refuses_is_given_up_and_kept_for_the_operator(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    charge = paid(telegram, db)
    telegram.fail_next("refundStarPayment", 5, status=400, description="Bad Request: REFUND_NOT_ALLOWED")
    ledger.request_refund(db, charge, "refused")
    wait_until(lambda: (p := ledger.star_payment(db, charge)) and p.state is ledger.PaymentState.REFUND_FAILED,
               timeout=15, what="the refund given up")
    payment = ledger.star_payment(db, charge)
    assert payment is not None and "REFUND_NOT_ALLOWED" in (payment.refund_error or "").upper()
    assert ledger.check(db).clean       # the credits taken back stay taken, and that is recorded


def test_reconciliation_finds_a_payment_on_one_side_only_and_pages_the_admins(
        bot: Instance, telegram: TelegramSim, db: Database, sql: Any) -> None:
    telegram.user_sends(ADMIN, "/start")
    charge = paid(telegram, db)
    duty = treasury(bot, db, reconcile_grace_s=0)
    assert duty.reconcile() == []                       # both sides agree
    # A credit Telegram never heard of (ledger only), and a payment whose record was lost.
    ledger.credit_payment(db, ledger.Payment("ch-phantom", None, USER + 1, "s50", 50, 5000))
    sql.execute("DELETE FROM star_payments WHERE charge_id = %s", (charge,))
    found = {d.charge_id: d.side for d in duty.reconcile()}
    assert found == {charge: "telegram_only", "ch-phantom": "ledger_only"}
    report = ledger.check(db)
    assert any(charge in v and "telegram only" in v for v in report.violations)
    assert any("ch-phantom" in v and "ledger only" in v for v in report.violations)
    assert "kiebot_payment_discrepancies 2.0" in bot.runtime.metrics.render().decode()
    telegram.wait_for_chat(ADMIN, lambda c: sum(1 for m in c if m.from_bot and "payment" in (m.text or "").lower())
                           >= 1)
    duty.reconcile()                                    # the same findings: no second page
    pages = [m for m in telegram.chat(ADMIN) if m.from_bot and "kiebot ledger check" in (m.text or "")]
    assert len(pages) == 1


def test_charge_already_refunded_counts_as_done(bot: Instance, telegram: TelegramSim, db: Database) -> None:
    """Telegram answers CHARGE_ALREADY_REFUNDED even for a refund that went through a moment ago
    (tdlib/telegram-bot-api #690): the outbox entry is done, not retried for ever."""
    charge = paid(telegram, db)
    assert treasury(bot, db).stars is not None
    assert TelegramStarsAccount(bot.runtime.bot.sender.for_epoch(bot.runtime.status.epoch or 0)).refund(
        USER, charge) is True                   # refunded at Telegram, behind the ledger's back
    ledger.request_refund(db, charge, "asked twice")
    wait_until(lambda: (p := ledger.star_payment(db, charge)) and p.state is ledger.PaymentState.REFUNDED,
               timeout=15, what="the outbox entry done")
    assert 'kiebot_star_refunds_total{result="already_refunded"} 1.0' in bot.runtime.metrics.render().decode()
    assert len(telegram.calls("refundStarPayment")) == 2


def test_a_page_that_reached_no_admin_is_sent_at_the_next_occurrence(
        bot: Instance, telegram: TelegramSim, db: Database) -> None:
    telegram.user_sends(ADMIN, "/start")
    telegram.wait_for_chat(ADMIN, lambda c: any(m.from_bot for m in c))
    duty = treasury(bot, db)
    alert, metrics = OperatorAlert.PAYMENT_DISCREPANCY, bot.runtime.metrics
    telegram.fail_next("sendMessage", 1, status=502, description="Bad Gateway")
    assert not page(db, duty.pager, metrics, alert, "first")            # lost on the way: claim given back
    assert page(db, duty.pager, metrics, alert, "second")               # the next occurrence is heard
    assert not page(db, duty.pager, metrics, alert, "third")            # then once an hour, as before
    pages = [m.text or "" for m in telegram.chat(ADMIN) if m.from_bot and "second" in (m.text or "")]
    assert len(pages) == 1
    assert not any("first" in (m.text or "") or "third" in (m.text or "") for m in telegram.chat(ADMIN) if m.from_bot)
