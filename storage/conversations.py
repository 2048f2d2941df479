"""Where each user is in the dialogue and what they chose so far, kept in Postgres so that a
restart or a change of leader continues the conversation; plus each user's language."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.db import Database, json_param


@dataclass
class Conversation:
    step: str = "idle"
    data: dict[str, Any] = field(default_factory=dict)


def load(db: Database, chat_id: int, user_id: int) -> Conversation:
    row = db.one("get_conversation", chat_id=chat_id, user_id=user_id)
    return Conversation(row["step"], dict(row["data"])) if row else Conversation()


def save(db: Database, chat_id: int, user_id: int, conv: Conversation) -> None:
    db.run("save_conversation", chat_id=chat_id, user_id=user_id, step=conv.step,
           data=json_param(conv.data))


def clear(db: Database, chat_id: int, user_id: int) -> None:
    db.run("clear_conversation", chat_id=chat_id, user_id=user_id)


def user_lang(db: Database, user_id: int, telegram_lang: str | None) -> str:
    """The user's language: remembered, else from Telegram (ru or en)."""
    guess = "ru" if (telegram_lang or "").lower().startswith("ru") else "en"
    db.run("remember_user", user_id=user_id, lang=guess)
    row = db.one("user_lang", user_id=user_id)
    return row["lang"] if row else guess


def set_lang(db: Database, user_id: int, lang: str) -> None:
    db.run("set_user_lang", user_id=user_id, lang=lang)
