"""Answering a button press: best effort, never a reason to stop the handler.

Telegram answers a callback query once, and only for a short while ("query is too old and
response timeout expired or query ID is invalid"). An update handled late (a backlog, a new
leader taking over) or a second time (a leader deposed midway) meets that refusal. The answer
only stops the button's spinner, so a refusal is logged at DEBUG and the handler goes on to do
what the press asked for. Every button handler answers through `answer_button`.
"""
from __future__ import annotations

import logging

from telegram import CallbackQuery
from telegram.error import TelegramError

log = logging.getLogger(__name__)


async def answer_button(query: CallbackQuery, text: str | None = None) -> bool:
    """Answer `query` (with an optional toast); False when Telegram refused or did not answer."""
    try:
        return await query.answer(text)
    except TelegramError as exc:
        log.debug("button press not answered: %s", type(exc).__name__, extra={"action": "callback_answer"})
        return False
