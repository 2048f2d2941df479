"""Where each user is in the dialogue (`Step`) and what they chose so far (`Draft`), kept in
Postgres so that a restart or a change of leader continues the conversation; plus each user's
language. The row's shape lives here because storage owns what is written; the bot gives it
meaning. Reading is tolerant of rows written by older releases (missing keys take defaults,
unknown keys and steps are dropped), so a conversation in progress during a deploy continues.
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import Any

from storage.db import Database, json_param

log = logging.getLogger(__name__)


class Step(str, enum.Enum):
    """conversations.step: the values are the strings stored since the catalogue wizard."""

    IDLE = "idle"           # no draft: commands and the menus only (also: no row at all)
    WIZARD = "wizard"       # a question is asked: Draft.asking names the field
    CONFIRM = "confirm"     # the confirmation is shown: Generate, a final choice or More options

    @classmethod
    def from_stored(cls, value: str) -> Step:
        """The stored step; one this release does not know (an older dialogue's "prompt" or
        "ratio") is IDLE, as if the user had sent /cancel: their next tap is a stale button."""
        try:
            return cls(value)
        except ValueError:
            log.warning("conversation in an unknown step starts over",
                        extra={"action": "conversation_unknown_step", "step": value})
            return cls.IDLE


@dataclass
class Draft:
    """The wizard's pending request: one model, the answers given so far, what is being asked.

    The JSON keys are the ones older releases wrote (`draft` for the id, `input` for the
    answers), so rows stay readable in both directions across a deploy."""

    model: str = ""                 # the catalogue id of the model
    id: str = ""                    # a short random id the draft's buttons carry (idempotency key)
    answers: dict[str, Any] = field(default_factory=dict)   # field name -> value, as in a job's input
    asking: str | None = None       # the field whose answer the wizard waits for
    optional: bool = False          # that field came from More options: back to the confirmation after it
    request_message: int | None = None  # the user's message the job will answer (its prompt, an /imagine)

    def to_json(self) -> dict[str, Any]:
        data = {"model": self.model, "draft": self.id, "input": self.answers, "asking": self.asking,
                "optional": self.optional}
        return data if self.request_message is None else {**data, "request_message": self.request_message}

    @classmethod
    def from_json(cls, data: Any) -> Draft:
        """The draft in a stored `data` column; a key that is missing or of the wrong type
        takes its default and unknown keys are ignored."""
        if not isinstance(data, dict):
            return cls()
        answers, asking, request = data.get("input"), data.get("asking"), data.get("request_message")
        return cls(model=_text(data.get("model")), id=_text(data.get("draft")),
                   answers=dict(answers) if isinstance(answers, dict) else {},
                   asking=asking if isinstance(asking, str) and asking else None,
                   optional=data.get("optional") is True,
                   request_message=request if isinstance(request, int) and not isinstance(request, bool) else None)


@dataclass
class Conversation:
    step: Step = Step.IDLE
    draft: Draft = field(default_factory=Draft)


def load(db: Database, chat_id: int, user_id: int) -> Conversation:
    row = db.one("get_conversation", chat_id=chat_id, user_id=user_id)
    if row is None:
        return Conversation()
    return Conversation(Step.from_stored(row["step"]), Draft.from_json(row["data"]))


def save(db: Database, chat_id: int, user_id: int, conv: Conversation) -> None:
    db.run("save_conversation", chat_id=chat_id, user_id=user_id, step=conv.step.value,
           data=json_param(conv.draft.to_json()))


def clear(db: Database, chat_id: int, user_id: int) -> None:
    db.run("clear_conversation", chat_id=chat_id, user_id=user_id)


def user_lang(db: Database, user_id: int, telegram_lang: str | None) -> str:
    """The user's language: remembered, else from Telegram (ru or en)."""
    guess = "ru" if (telegram_lang or "").lower().startswith("ru") else "en"
    row = db.one("remember_user_lang", user_id=user_id, lang=guess)
    return row["lang"] if row else guess


def set_lang(db: Database, user_id: int, lang: str) -> None:
    db.run("set_user_lang", user_id=user_id, lang=lang)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
