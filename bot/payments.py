"""Telegram Stars: the packages as invoices (/buy and every Top up button), the pre-checkout
answer, crediting a successful payment exactly once, and telling the user of a refund.

An invoice carries its package as the payload `stars:<package id>:<credits in minor units>`.
The pre-checkout answer (given by bot.checkout_desk) checks it against the price file in force
(checkout_problem: the package exists with the same Stars and credits, the currency is XTR) and
makes no database call on the way to an ok: Telegram cancels a checkout not confirmed within 10 s.
A successful_payment credits what its invoice promised, keyed on its telegram_payment_charge_id
(storage.ledger.credit_payment), so a redelivered payment is neither credited nor announced
twice; a deposed intake writes nothing and leaves the update to the next leader. After a payment,
a confirmation that was short of credits is shown again, so one tap on ✅ starts it.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from telegram import LabeledPrice, Update
from telegram.ext import ContextTypes

from bot import flood_control, prices, wizard
from bot.context import deps_of, who
from bot.telling import OnFailure, tell
from config.money import format_credits
from config.pricing import Pricing, StarsPackage
from config.texts import text
from faults import crashpoint
from storage import conversations, ledger
from storage.conversations import Step

log = logging.getLogger(__name__)

CURRENCY = "XTR"                # Telegram Stars
PAYLOAD_PREFIX = "stars"
PAYLOAD_MAX_BYTES = 128         # Telegram's limit on an invoice payload


@dataclass(frozen=True)
class Promise:
    """What an invoice promised: the package and the credits (minor units) it buys."""

    package_id: str
    credits: int


def invoice_payload(package: StarsPackage) -> str:
    """`stars:<package id>:<credits minor>`; ValueError when it would not fit Telegram's limit."""
    payload = f"{PAYLOAD_PREFIX}:{package.id}:{package.credits}"
    if len(payload.encode()) > PAYLOAD_MAX_BYTES:
        raise ValueError(f"the payload of package {package.id!r} is over {PAYLOAD_MAX_BYTES} bytes")
    return payload


def parse_payload(raw: str) -> Promise | None:
    """The promise in an invoice payload; None for anything we did not make."""
    parts = raw.split(":")
    if len(parts) != 3 or parts[0] != PAYLOAD_PREFIX or not parts[1] or not parts[2].isdigit():
        return None
    minor = int(parts[2])
    return Promise(parts[1], minor) if minor > 0 else None


def checkout_problem(pricing: Pricing, currency: str, total_amount: int, payload: str) -> str | None:
    """None when the checkout may go ahead; else the text key of the reason to give the user
    (the package is gone, or its Stars or credits are not what the invoice said)."""
    promise = parse_payload(payload)
    package = pricing.package(promise.package_id) if promise is not None else None
    if currency != CURRENCY or promise is None or package is None:
        return "checkout_changed"
    if package.credits != promise.credits or package.stars != total_amount:
        return "checkout_changed"
    return None


# --- handlers ---------------------------------------------------------------------------------
async def buy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/buy: the Stars packages as invoices."""
    chat_id, _, lang = who(update, deps_of(context))
    await offer_packages(context, chat_id, lang)


async def offer_packages(context: ContextTypes.DEFAULT_TYPE, chat_id: int, lang: str) -> None:
    """One invoice per package of the price file: Stars (XTR), one price, no provider token."""
    pricing = deps_of(context).pricing
    if not pricing.packages:
        await context.bot.send_message(chat_id, text(lang, "buy_none"))
        return
    for package in pricing.packages:
        step = f"invoice:{package.id}"
        if flood_control.step_done(step):      # sent before Telegram asked the chat to wait
            continue
        words = format_credits(package.credits)
        title = text(lang, "invoice_title", credits=words)
        await context.bot.send_invoice(chat_id, title, text(lang, "invoice_description", credits=words),
                                       invoice_payload(package), CURRENCY, [LabeledPrice(title, package.stars)],
                                       provider_token="")
        flood_control.finish_step(step)


async def paid(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """successful_payment: credit it once, say so, and show a confirmation that waited for it."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    assert update.message is not None
    assert update.message.successful_payment is not None
    payment = update.message.successful_payment
    promise = parse_payload(payment.invoice_payload)
    if promise is None or payment.currency != CURRENCY:
        log.error("a payment that matches no package: charge %s", payment.telegram_payment_charge_id,
                  extra={"action": "payment_unmatched"})
        await context.bot.send_message(chat_id, text(lang, "payment_unmatched"))
        return
    charge_id = payment.telegram_payment_charge_id
    crashpoint("before_payment_credit")     # stored (the intake has the update), not credited yet
    # The database calls run off the bot loop: a burst of payments must not hold up the
    # pre-checkout answers that share it (Telegram cancels a checkout after 10 s).
    credit = await asyncio.to_thread(
        ledger.credit_payment, deps.db,
        ledger.Payment(charge_id=charge_id, provider_charge_id=payment.provider_payment_charge_id or None,
                       user_id=user_id, package_id=promise.package_id, stars=payment.total_amount,
                       credits=promise.credits),
        referrer_bonus=deps.pricing.referrer_bonus, referred_bonus=deps.pricing.referred_bonus,
        epoch=flood_control.send_epoch.get())
    if credit is ledger.Credit.DEPOSED:
        flood_control.leave_update(flood_control.Leave.DEPOSED, "the payment was not credited: this term ended")
        return
    deps.metrics.payments.labels(credit.value).inc()
    if credit is ledger.Credit.DUPLICATE:
        log.info("payment %s credited before; nothing more", charge_id, extra={"action": "payment_duplicate"})
        if await asyncio.to_thread(ledger.payment_announced, deps.db, charge_id):
            return
        # Credited by an earlier handling whose message never went out (e.g. refused as its
        # leader stepped down): the user is still told, once.
    crashpoint("after_payment_credit")
    log.info("payment %s credited", charge_id, extra={"action": "payment_credited"})
    available = (await asyncio.to_thread(ledger.wallet, deps.db, user_id)).available
    # Credited is credited: a message not sent, or of unknown fate, is said when the update is handled again,
    # which finds the payment credited and not announced (a repeat is truer than silence).
    receipt = context.bot.send_message(chat_id, text(lang, "paid", credits=prices.amount(lang, promise.credits),
                                                     balance=prices.amount(lang, available)))
    if not (await tell(receipt, f"payment {charge_id} message", OnFailure.AGAIN)).done:
        return
    await asyncio.to_thread(ledger.mark_payment_announced, deps.db, charge_id)
    conv = conversations.load(deps.db, chat_id, user_id)
    spec = deps.catalogue.get(conv.draft.model) if conv.step is Step.CONFIRM else None
    if spec is not None and deps.pricing.offered(spec):
        # The confirmation that waited for credits, shown again: its old ✅ works all the same.
        await tell(wizard.confirm(context, chat_id, user_id, lang, spec, conv), "the confirmation after a payment",
                   OnFailure.BEST_EFFORT)


async def refunded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """refunded_payment (Telegram gave the Stars back): say so, with what the refund took back
    from the balance (taken when the refund was requested; see storage.ledger.request_refund)."""
    deps = deps_of(context)
    chat_id, user_id, lang = who(update, deps)
    assert update.message is not None
    assert update.message.refunded_payment is not None
    refund = update.message.refunded_payment
    payment = ledger.star_payment(deps.db, refund.telegram_payment_charge_id)
    words = text(lang, "refunded", stars=refund.total_amount)
    if payment is not None and payment.refund_taken:
        words += " " + text(lang, "refunded_taken", taken=prices.amount(lang, payment.refund_taken),
                            balance=prices.amount(lang, ledger.wallet(deps.db, user_id).available))
    # The refund is made; the notice is said again until Telegram takes it.
    await tell(context.bot.send_message(chat_id, words), "the refund notice", OnFailure.AGAIN)
