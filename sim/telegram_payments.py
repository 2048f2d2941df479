"""Telegram Stars in the Telegram simulator: invoices, the pre-checkout deadline, charges, refunds.

Owns: the invoices the bot sent (sendInvoice) or linked (createInvoiceLink), each press of Pay (a
pre_checkout_query the bot must answer within `pre_checkout_timeout_s`, or the payment fails),
the charges with their telegram_payment_charge_id, refunds, and the bot's Star transactions.
It shares the simulator's lock and condition and posts through World and UpdateFeed; it never
serves HTTP, and it simulates no fiat provider: every currency but XTR is refused.
"""
from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sim.telegram_chats import World, markup_content
from sim.telegram_spec import bad_request
from sim.telegram_updates import UpdateFeed

STARS = "XTR"
PRE_CHECKOUT_TIMEOUT_S = 10.0      # Telegram cancels a checkout the bot has not confirmed by then
SUBSCRIPTION_PERIOD_S = 30 * 24 * 3600   # the only period createInvoiceLink accepts
MAX_SUBSCRIPTION_STARS = 10_000
MAX_TRANSACTIONS = 100             # getStarTransactions' limit
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
# Bot API method -> the StarPayments method that answers it
PAYMENT_METHODS = {"sendInvoice": "send_invoice", "createInvoiceLink": "create_invoice_link",
           "answerPreCheckoutQuery": "answer_pre_checkout_query",
           "refundStarPayment": "refund_star_payment",
           "getStarTransactions": "get_star_transactions"}
_NOT_FOR_STARS = ("max_tip_amount", "suggested_tip_amounts", "is_flexible", "need_shipping_address")


class PaymentOutcome(StrEnum):
    """How a press of Pay ended, or that it has not ended yet."""

    PENDING = "pending"      # the pre_checkout_query waits for the bot's answer
    PAID = "paid"            # answered ok in time: charged, successful_payment sent to the bot
    DECLINED = "declined"    # answered ok=false in time: the user saw error_message, no charge
    EXPIRED = "expired"      # no answer by the deadline (a late one gets 400): no charge


@dataclass(frozen=True)
class PaymentAttempt:
    """One press of Pay as it stands: the pre_checkout_query sent to the bot and how it ended."""

    query_id: str
    user_id: int
    chat_id: int        # where successful_payment goes: the invoice's chat, or the payer's own
    currency: str
    total_amount: int
    invoice_payload: str
    invoice_message_id: int | None   # set when an invoice message was paid
    link: str | None                 # set when an invoice link was paid
    update_id: int                   # the pre_checkout_query update
    timeout_s: float
    outcome: PaymentOutcome = PaymentOutcome.PENDING
    error_message: str | None = None            # declined: what the bot told the user
    charge_id: str | None = None                # paid: telegram_payment_charge_id
    provider_charge_id: str | None = None       # paid: provider_payment_charge_id
    payment_update_id: int | None = None        # paid: the successful_payment message update
    answered_after_s: float | None = None       # paid or declined: the bot's answer time

    @property
    def settled(self) -> bool:
        """Whether the attempt has ended (paid, declined or expired)."""
        return self.outcome is not PaymentOutcome.PENDING


@dataclass(frozen=True)
class StarPayment:
    """One Stars charge: who paid how much for which payload, and whether it was refunded."""

    charge_id: str
    provider_charge_id: str
    user_id: int
    chat_id: int
    amount: int
    payload: str
    message_id: int        # the successful_payment message in chat_id
    date: int
    refunded: bool = False


@dataclass
class _Invoice:
    """What the bot asked for; `paid_by` holds the users who paid this invoice message."""

    title: str
    description: str
    payload: str
    currency: str
    amount: int
    start_parameter: str
    chat_id: int | None = None
    message_id: int | None = None
    link: str | None = None
    paid_by: set[int] = field(default_factory=set)

    def wire(self) -> dict[str, Any]:
        """The Invoice object of the message."""
        return {"title": self.title, "description": self.description,
                "start_parameter": self.start_parameter, "currency": self.currency,
                "total_amount": self.amount}


class StarPayments:
    """Invoices, payment attempts, charges and transactions of one simulated bot.

    Every method takes the simulator's condition itself (it is re-entrant), so the Bot API
    handlers and the test API may call in from any thread.
    """

    def __init__(self, world: World, feed: UpdateFeed, changed: threading.Condition,
                 stop_event: threading.Event, timeout_s: Callable[[], float]) -> None:
        self._world, self._feed, self._changed = world, feed, changed
        self._stop_event, self._timeout_s = stop_event, timeout_s
        self._invoices: dict[tuple[int, int], _Invoice] = {}   # (chat, message) -> invoice
        self._links: dict[str, _Invoice] = {}
        self._attempts: dict[str, PaymentAttempt] = {}
        self._pending: dict[str, tuple[_Invoice, float, float]] = {}  # query: (invoice, asked, due)
        self._payments: dict[str, StarPayment] = {}
        self._messages: dict[str, dict[str, Any]] = {}    # charge id -> successful_payment message
        self._transactions: list[dict[str, Any]] = []     # StarTransaction JSON, oldest first

    # ------------------------------------------------------------ the Bot API

    def send_invoice(self, p: dict[str, Any]) -> dict[str, Any]:
        """sendInvoice: an invoice message with a Pay button first (added when none is given)."""
        invoice = _invoice(p)
        content = {"invoice": invoice.wire(), **_pay_markup(p, invoice.amount)}
        with self._changed:
            message = self._world.bot_sends(p["chat_id"], content)
            invoice.chat_id, invoice.message_id = p["chat_id"], message["message_id"]
            self._invoices[(p["chat_id"], message["message_id"])] = invoice
            return message

    def create_invoice_link(self, p: dict[str, Any]) -> str:
        """createInvoiceLink: a t.me/$slug URL anyone may pay, any number of times."""
        invoice = _invoice(p)
        period = p.get("subscription_period")
        if period is not None and (period != SUBSCRIPTION_PERIOD_S
                                   or invoice.amount > MAX_SUBSCRIPTION_STARS):
            raise bad_request("SUBSCRIPTION_PERIOD_INVALID")
        invoice.link = "https://t.me/$" + secrets.token_urlsafe(16)
        with self._changed:
            self._links[invoice.link] = invoice
        return invoice.link

    def answer_pre_checkout_query(self, p: dict[str, Any]) -> bool:
        """Within the deadline, ok charges the user and ok=false declines; later is 'too old'."""
        if not p["ok"] and not p.get("error_message"):
            raise bad_request('parameter "error_message" is required')
        with self._changed:
            self._settle()
            query_id = p["pre_checkout_query_id"]
            pending = self._pending.pop(query_id, None)
            if pending is None:
                raise bad_request(QUERY_TOO_OLD)
            invoice, asked_at, _ = pending
            took = time.monotonic() - asked_at
            attempt = self._attempts[query_id]
            if p["ok"]:
                attempt = self._charge(attempt, invoice, took)
            else:
                attempt = dataclasses.replace(attempt, outcome=PaymentOutcome.DECLINED,
                                              error_message=p["error_message"],
                                              answered_after_s=took)
            self._attempts[query_id] = attempt
            self._changed.notify_all()
        return True

    def refund_star_payment(self, p: dict[str, Any]) -> bool:
        """Refund a charge once: the Stars go back, and a refunded_payment message follows."""
        charge_id = p["telegram_payment_charge_id"]
        with self._changed:
            payment = self._payments.get(charge_id)
            if payment is None or payment.user_id != p["user_id"]:
                raise bad_request("CHARGE_NOT_FOUND")
            if payment.refunded:
                raise bad_request("CHARGE_ALREADY_REFUNDED")
            self._payments[charge_id] = dataclasses.replace(payment, refunded=True)
            user = self._world.users[payment.user_id]
            paid = self._messages[charge_id]["successful_payment"]
            notice = self._world.chat_of(user, payment.chat_id).add(user, {"refunded_payment": {
                key: paid[key] for key in ("currency", "total_amount", "invoice_payload",
                                           "telegram_payment_charge_id",
                                           "provider_payment_charge_id")}})
            self._transactions.append({"id": charge_id, "amount": payment.amount,
                                       "date": notice["date"],
                                       "receiver": _partner(user, payment.payload)})
            self._feed.queue("message", notice)
        return True

    def get_star_transactions(self, p: dict[str, Any]) -> dict[str, Any]:
        """StarTransactions, newest first: payments in (source), refunds out (receiver)."""
        offset, limit = p.get("offset", 0), p.get("limit", MAX_TRANSACTIONS)
        if not 1 <= limit <= MAX_TRANSACTIONS:
            raise bad_request(f"limit must be between 1 and {MAX_TRANSACTIONS}")
        if offset < 0:
            raise bad_request("offset must be non-negative")
        with self._changed:
            newest_first = self._transactions[::-1]
        return {"transactions": newest_first[offset:offset + limit]}

    # ------------------------------------------------------------ the user's side

    def pay(self, user_id: int, message_id: int | None, chat_id: int | None,
            link: str | None) -> PaymentAttempt:
        """The user presses Pay on an invoice message (the newest they have not paid, unless
        `message_id`) or opens an invoice link: the bot gets a pre_checkout_query."""
        if link is not None and (message_id is not None or chat_id is not None):
            raise ValueError("pay either an invoice link or an invoice message, not both")
        with self._changed:
            self._settle()
            user = self._world.users.get(user_id) or self._world.touch_user(user_id)
            if link is not None:
                invoice = self._links.get(link)
                if invoice is None:
                    raise LookupError(f"no invoice link {link!r}")
                chat_id = user_id
            else:
                chat_id = user_id if chat_id is None else chat_id
                invoice = self._invoice_message(user_id, chat_id, message_id)
            self._world.chat_of(user, chat_id)
            query_id = str(secrets.randbits(63) or 1)
            update_id = self._feed.queue("pre_checkout_query", {
                "id": query_id, "from": user, "currency": invoice.currency,
                "total_amount": invoice.amount, "invoice_payload": invoice.payload})
            timeout = self._timeout_s()
            asked_at = time.monotonic()
            self._pending[query_id] = (invoice, asked_at, asked_at + timeout)
            attempt = PaymentAttempt(query_id, user_id, chat_id, invoice.currency, invoice.amount,
                                     invoice.payload, invoice.message_id, invoice.link, update_id,
                                     timeout)
            self._attempts[query_id] = attempt
            return attempt

    def redeliver(self, charge_id: str) -> int:
        """The successful_payment message of `charge_id` again, as a new update; its update_id."""
        with self._changed:
            message = self._messages.get(charge_id)
            if message is None:
                raise LookupError(f"no Stars charge {charge_id!r}")
            return self._feed.queue("message", message)

    # ------------------------------------------------------------ observation

    def attempt(self, query_id: str) -> PaymentAttempt:
        """One attempt as it stands now (an unanswered one past its deadline has expired)."""
        with self._changed:
            self._settle()
            found = self._attempts.get(query_id)
        if found is None:
            raise LookupError(f"no payment attempt {query_id!r}")
        return found

    def attempts(self) -> list[PaymentAttempt]:
        """Every attempt since the last reset, oldest first."""
        with self._changed:
            self._settle()
            return list(self._attempts.values())

    def payments(self) -> list[StarPayment]:
        """Every charge since the last reset, oldest first, refunded ones flagged."""
        with self._changed:
            return list(self._payments.values())

    def wait_settled(self, query_id: str, timeout: float) -> PaymentAttempt:
        """Block until the attempt is paid, declined or expired; AssertionError after `timeout`."""
        give_up = time.monotonic() + timeout
        with self._changed:
            while True:
                attempt = self.attempt(query_id)
                if attempt.settled:
                    return attempt
                now = time.monotonic()
                if now >= give_up or self._stop_event.is_set():
                    raise AssertionError(f"timed out after {timeout:.1f}s waiting for payment "
                                         f"attempt {query_id} to end; it is {attempt.outcome}")
                due = self._pending[query_id][2]
                self._changed.wait(max(min(give_up, due) - now, 0.001))

    # ------------------------------------------------------------ inside

    def _settle(self) -> None:
        """Expire every unanswered query whose deadline has passed; caller holds the lock."""
        now = time.monotonic()
        expired = [query for query, (_, _, due) in self._pending.items() if now > due]
        for query_id in expired:
            del self._pending[query_id]
            self._attempts[query_id] = dataclasses.replace(self._attempts[query_id],
                                                           outcome=PaymentOutcome.EXPIRED)
        if expired:
            self._changed.notify_all()

    def _invoice_message(self, user_id: int, chat_id: int, message_id: int | None) -> _Invoice:
        """The invoice message the user pays: still in the chat, and not paid by them before."""
        chat = self._world.chats.get(chat_id)
        shown = [invoice for (chat_key, message_key), invoice in reversed(self._invoices.items())
                 if chat_key == chat_id and chat is not None and message_key in chat.messages
                 and (message_id is None or message_key == message_id)]
        unpaid = [invoice for invoice in shown if user_id not in invoice.paid_by]
        if message_id is not None and shown and not unpaid:
            raise ValueError(f"user {user_id} already paid invoice message {message_id} "
                             f"in chat {chat_id}")
        if not unpaid:
            which = f"invoice message {message_id}" if message_id is not None else "unpaid invoice"
            raise LookupError(f"no {which} in chat {chat_id}")
        return unpaid[0]

    def _charge(self, attempt: PaymentAttempt, invoice: _Invoice, took: float) -> PaymentAttempt:
        """Take the Stars: a charge, an incoming transaction, the successful_payment message."""
        charge_id = "stx" + secrets.token_urlsafe(30)
        provider_id = f"{attempt.user_id}_{secrets.randbits(48)}"
        user = self._world.users[attempt.user_id]
        message = self._world.chat_of(user, attempt.chat_id).add(user, {"successful_payment": {
            "currency": invoice.currency, "total_amount": invoice.amount,
            "invoice_payload": invoice.payload, "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": provider_id}})
        update_id = self._feed.queue("message", message)
        self._messages[charge_id] = message
        self._payments[charge_id] = StarPayment(charge_id, provider_id, attempt.user_id,
                                                attempt.chat_id, invoice.amount, invoice.payload,
                                                message["message_id"], message["date"])
        self._transactions.append({"id": charge_id, "amount": invoice.amount,
                                   "date": message["date"],
                                   "source": _partner(user, invoice.payload)})
        if invoice.message_id is not None:
            invoice.paid_by.add(attempt.user_id)
        return dataclasses.replace(attempt, outcome=PaymentOutcome.PAID, charge_id=charge_id,
                                   provider_charge_id=provider_id, payment_update_id=update_id,
                                   answered_after_s=took)


def _invoice(p: dict[str, Any]) -> _Invoice:
    """Check an invoice's fields the way Telegram does for Stars; fiat is refused."""
    if not 1 <= len(p["title"]) <= 32:
        raise bad_request("TITLE_INVALID: the invoice title must be 1-32 characters")
    if not 1 <= len(p["description"]) <= 255:
        raise bad_request("DESCRIPTION_INVALID: the invoice description must be 1-255 characters")
    if not 1 <= len(p["payload"].encode("utf-8")) <= 128:
        raise bad_request("INVOICE_PAYLOAD_INVALID")
    if p["currency"] != STARS or p.get("provider_token"):
        raise bad_request("PAYMENT_PROVIDER_INVALID")   # the simulator knows Telegram Stars only
    prices = p["prices"]
    if len(prices) != 1 or any(p.get(name) for name in _NOT_FOR_STARS):
        raise bad_request("STARS_INVOICE_INVALID")
    amount = prices[0]["amount"]
    if amount <= 0:
        raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
    return _Invoice(p["title"], p["description"], p["payload"], STARS, amount,
                    p.get("start_parameter", ""))


def _pay_markup(p: dict[str, Any], amount: int) -> dict[str, Any]:
    """An invoice's keyboard starts with its Pay button; without a keyboard Telegram adds one."""
    markup = markup_content(p)
    if not markup:
        return {"reply_markup": {"inline_keyboard": [[{"text": f"Pay ⭐{amount}", "pay": True}]]}}
    rows = markup["reply_markup"]["inline_keyboard"]
    if not rows[0] or not rows[0][0].get("pay"):
        raise bad_request("REPLY_MARKUP_BUY_EMPTY")
    return markup


def _partner(user: dict[str, Any], payload: str) -> dict[str, Any]:
    """TransactionPartnerUser for an invoice payment or its refund."""
    return {"type": "user", "transaction_type": "invoice_payment", "user": user,
            "invoice_payload": payload}
