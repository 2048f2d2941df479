"""How a screen reaches the chat: in place of the message the user tapped, or as a new one;
and how a finished step is put away (its keyboard removed, or its question replaced by the
answer given).

Menus, model lists, pages and options are edited in place, so browsing leaves one message, not
one per page. A wizard question that was answered keeps what was chosen ("Aspect ratio: 16:9")
and loses its buttons, so no finished step can be tapped again. An edit Telegram refuses (the
message is gone, or it is a photo whose text cannot be edited) falls back to a new message;
putting a step away is best effort and never stops the handler.

A question answered by typing (or by sending a file) is put away too: the question on screen
with buttons is remembered per chat and user (`OpenQuestion`, in PTB's chat_data). That memory
is this process's only: after a restart or a change of leader an old question keeps its buttons,
and a tap on one is answered "out of date" and puts it away then.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, TelegramError

log = logging.getLogger(__name__)

Rows = list[list[tuple[str, str]]]
_OPEN = "open_questions"        # chat_data key: user id -> OpenQuestion


@dataclass(frozen=True)
class OpenQuestion:
    """A question on screen with buttons, waiting for its answer: the field, the message, all it
    says, and the question part of it (the rest is the model card)."""

    field: str
    message_id: int
    body: str
    question: str


def remember(chat_data: dict[Any, Any] | None, user_id: int, question: OpenQuestion | None) -> None:
    """`question` is the user's open question in this chat now (None: there is none)."""
    if chat_data is None:
        return
    questions: dict[int, OpenQuestion] = chat_data.setdefault(_OPEN, {})
    if question is None:
        questions.pop(user_id, None)
    else:
        questions[user_id] = question


def take(chat_data: dict[Any, Any] | None, user_id: int) -> OpenQuestion | None:
    """The user's open question in this chat, forgotten from now on."""
    if chat_data is None:
        return None
    questions: dict[int, OpenQuestion] = chat_data.get(_OPEN, {})
    return questions.pop(user_id, None)


def markup(rows: Rows) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in row] for row in rows])


def _unchanged(exc: BadRequest) -> bool:
    return "not modified" in exc.message.lower()


async def show(bot: Bot, chat_id: int, body: str, rows: Rows | None = None, *, replace: int | None = None) -> int:
    """Show `body` with `rows` of buttons: by editing message `replace` in place when given (and
    Telegram allows it), else as a new message. Returns the message id that shows it."""
    keyboard = markup(rows) if rows else None
    if replace is not None:
        try:
            await bot.edit_message_text(body, chat_id=chat_id, message_id=replace, reply_markup=keyboard)
            return replace
        except BadRequest as exc:
            if _unchanged(exc):
                return replace
            log.debug("screen not edited in place: %s", exc.message, extra={"action": "screen_new_message"})
    sent = await bot.send_message(chat_id, body, reply_markup=keyboard)
    return sent.message_id


async def settle(bot: Bot, chat_id: int, message_id: int | None, body: str | None = None) -> None:
    """Put a finished step away: message `message_id` loses its keyboard and, given `body`,
    shows that instead of its question. Best effort: a message that is gone stays gone."""
    if message_id is None:
        return
    try:
        if body is None:
            await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id, reply_markup=None)
        else:
            await bot.edit_message_text(body, chat_id=chat_id, message_id=message_id)
    except BadRequest as exc:
        if not _unchanged(exc):
            log.debug("finished step not put away: %s", exc.message, extra={"action": "screen_settle"})
    except TelegramError as exc:
        # 429, 5xx, a lost answer: the step stays as it was. What the tap did stands; an error
        # here would reach the apology ("try again"), which would be untrue after a start.
        log.info("finished step not put away: %s", type(exc).__name__, extra={"action": "screen_settle"})


def answered(shown: str, question: str, answer: str) -> str:
    """The text of a question message once answered: what came before the question (the model
    card) is kept, the question gives way to the answer."""
    if question and shown.endswith(question):
        before = shown[: -len(question)].rstrip()
        return f"{before}\n\n{answer}" if before else answer
    return answer
