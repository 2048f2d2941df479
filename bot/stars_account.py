"""The bot's Telegram Stars account, for the treasurer (actors.ports.StarsAccount): refund a
payment, list the transactions. Calls go through the epoch-fenced TelegramSender, so a deposed
leader neither refunds nor reads."""
from __future__ import annotations

import datetime as dt

from telegram import StarTransaction as TgStarTransaction
from telegram import TransactionPartnerUser

from actors.ports import SendError, StarTransaction
from bot.sender import TelegramSender

ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"


class TelegramStarsAccount:
    def __init__(self, sender: TelegramSender) -> None:
        self._sender = sender

    def refund(self, user_id: int, charge_id: str) -> bool:
        """True: refunded now; False: Telegram says it was refunded already (that counts as
        done: it says so even for a refund that went through a moment ago)."""
        try:
            self._sender.call("refundStarPayment", lambda: self._sender.bot.refund_star_payment(
                user_id=user_id, telegram_payment_charge_id=charge_id))
        except SendError as exc:
            if ALREADY_REFUNDED in exc.detail.upper():
                return False
            raise
        return True

    def transactions(self, offset: int, limit: int) -> list[StarTransaction]:
        page = self._sender.call("getStarTransactions", lambda: self._sender.bot.get_star_transactions(
            offset=offset, limit=limit))
        return [_transaction(t) for t in page.transactions]


def _transaction(t: TgStarTransaction) -> StarTransaction:
    partner = t.source if t.source is not None else t.receiver
    user = partner.user if isinstance(partner, TransactionPartnerUser) else None
    payload = partner.invoice_payload if isinstance(partner, TransactionPartnerUser) else None
    at = t.date if t.date.tzinfo else t.date.replace(tzinfo=dt.UTC)
    return StarTransaction(id=t.id, amount=int(t.amount), at=at, incoming=t.source is not None,
                           user_id=user.id if user else None, payload=payload)
