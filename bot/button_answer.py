"""Answering a button press: best effort, never a reason to stop the handler; and `Tap`, a
press with who made it and on which message.

Telegram answers a callback query once, and only for a short while ("query is too old and
response timeout expired or query ID is invalid"). An update handled late (a backlog, a new
leader taking over) or a second time (a leader deposed midway) meets that refusal. The answer
only stops the button's spinner (or shows a short toast), so a refusal is logged at DEBUG and
the handler goes on to do what the press asked for. Every button handler answers through
`answer_button` or `Tap.answer`, once: a stale, repeated or someone else's button is answered
with a toast and nothing is sent to the chat.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram import CallbackQuery
from telegram.error import TelegramError

from config.texts import text

log = logging.getLogger(__name__)


async def answer_button(query: CallbackQuery, text: str | None = None) -> bool:
    """Answer `query` (with an optional toast); False when Telegram refused or did not answer."""
    try:
        return await query.answer(text)
    except TelegramError as exc:
        log.debug("button press not answered: %s", type(exc).__name__, extra={"action": "callback_answer"})
        return False


@dataclass(frozen=True)
class Tap:
    """One press of an inline button: the query, who pressed it, where, and the message it is on
    (None when Telegram no longer shows it to the bot); `text` is that message's text, if any."""

    query: CallbackQuery
    chat_id: int
    user_id: int
    lang: str

    @property
    def message_id(self) -> int | None:
        message = self.query.message
        return message.message_id if message is not None else None

    @property
    def text(self) -> str | None:
        """The text of the message the button is on (None for a photo, a video, a gone message)."""
        message = self.query.message
        return getattr(message, "text", None) if message is not None else None

    async def answer(self, toast: str | None = None) -> bool:
        """Answer the press; `toast` is a texts key for a short note instead of a silent answer."""
        return await answer_button(self.query, text(self.lang, toast) if toast else None)
