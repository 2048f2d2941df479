"""A simulated user that walks a model's wizard through the Telegram simulator, reading which
question is being asked from the conversations table (the UI is what it acts on)."""
from __future__ import annotations

from typing import Any

from actors.job_state import JobState
from bot import questions
from config.catalogue import InputField, ModelSpec
from config.texts import text
from sim.kie_media import png_bytes
from sim.telegram import ChatMessage, TelegramSim
from storage import conversations, ledger
from storage.conversations import Step
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.waiting import wait_until

STEP_TIMEOUT_S = 120.0
DRIVER_CREDITS = 10_000_000     # 100,000 credits: more than any model's price


class Driver:
    """One simulated user walking one model's wizard, reading the dialogue step from Postgres."""

    def __init__(self, telegram: TelegramSim, db: Database, spec: ModelSpec, user: int,
                 credits: int = DRIVER_CREDITS, lang: str = "en") -> None:
        """`credits` (minor units) are granted to the user first, as if they had bought them,
        so that any model can be walked to its result. The user speaks `lang` (as if set by
        /lang) and taps the buttons by their words in it."""
        self.tg, self.db, self.spec, self.user, self.lang = telegram, db, spec, user, lang
        if credits:
            ledger.grant(db, user, credits, "wizard driver")
        if lang != "en":
            conversations.set_lang(db, user, lang)

    def bot_messages(self) -> int:
        return sum(1 for m in self.tg.chat(self.user) if m.from_bot)

    def act(self, action: Any) -> None:
        """Do one thing and wait for the bot to answer it: a new message, or one changed in place
        (menus and pages are edited where they are)."""
        before = screen(self.tg.chat(self.user))
        action()
        self.tg.wait_for_chat(self.user, lambda c: screen(c) != before, STEP_TIMEOUT_S)

    def run(self) -> list[ChatMessage]:
        self.open_model()
        self.walk()
        [job] = wait_until(self.jobs_once_final, timeout=STEP_TIMEOUT_S, what=f"{self.spec.id} job final")
        assert job.state is JobState.DELIVERED and job.succeeded, (job.state, job.failure_code, job.failure_detail)
        return self.tg.chat(self.user)

    def jobs_once_final(self) -> list[Job]:
        """The user's jobs, newest first, once the newest is final (else none)."""
        jobs = recent_jobs(self.db, self.user)
        return jobs if jobs and jobs[0].terminal else []

    def open_model(self) -> None:
        """From /start through the category pages to the model's card."""
        self.act(lambda: self.tg.user_sends(self.user, "/start"))
        self.act(lambda: self.tg.user_presses(self.user, text(self.lang, f"cat_{self.spec.category}")))
        name = self.spec.name(self.lang)
        for _ in range(20):
            if any(b[0].startswith(f"{name} ·") for b in self.last_buttons()):
                break
            self.act(lambda: self.tg.user_presses(self.user, text(self.lang, "btn_next")))
        self.act(lambda: self.tg.user_presses(self.user, f"{name} ·"))

    def walk(self, stop_at_confirm: bool = False) -> None:
        """Answer every question with a valid value, then start (or stop at the confirmation)."""
        for _ in range(40):
            conv = conversations.load(self.db, self.user, self.user)
            if conv.step is Step.CONFIRM:
                if not stop_at_confirm:
                    self.confirm()
                return
            field = self.spec.field(conv.draft.asking or "")
            assert conv.step is Step.WIZARD and field is not None, f"unexpected step {conv.step}"
            self.answer(field, conv.draft.answers.get(field.name))

    def last_buttons(self) -> list[tuple[str, str]]:
        bot = [m for m in self.tg.chat(self.user) if m.from_bot]
        return [b for row in bot[-1].buttons for b in row] if bot else []

    def answer(self, f: InputField, current: Any) -> None:
        if f.type == "boolean" or f.enum:
            self.act(lambda: self.tg.user_presses(self.user, default_choice_label(f, self.lang)))
        elif f.media:
            count = len(current or [])
            if f.type == "array-of-url" and count >= max(1, f.min_items or 1):
                self.act(lambda: self.tg.user_presses(self.user, text(self.lang, "btn_done")))
            elif f.media.get("kind") == "image":
                self.act(lambda: self.tg.user_sends_photo(self.user, png_bytes(f"{self.spec.id}-{count}")))
            else:
                ext = {"video": "mp4", "audio": "mp3"}.get(str(f.media.get("kind")), "bin")
                self.act(lambda: self.tg.user_sends(self.user, f"https://example.com/input-{count}.{ext}"))
        else:
            self.act(lambda: self.tg.user_sends(self.user, typed_value(self.spec, f)))

    def confirm(self) -> None:
        last = self.spec.required_fields[-1] if self.spec.required_fields else None
        buttons = [b[0] for b in self.last_buttons()]
        # A paid start says its price after the label ("✅ Generate · 8 credits").
        if any(b.startswith(text(self.lang, "btn_generate")) for b in buttons) or last is None:
            self.act(lambda: self.tg.user_presses(self.user, text(self.lang, "btn_generate")))
            return
        # Every start button carries ✅ (design.md §5), free ones too.
        self.act(lambda: self.tg.user_presses(self.user, f"✅ {default_choice_label(last, self.lang)}"))


def screen(chat: list[ChatMessage]) -> tuple[int, tuple[int, str, list[list[tuple[str, str]]]] | None]:
    """How many messages the bot has in the chat, and what its newest one shows (an answered
    question put away afterwards, further up, is not an answer)."""
    bot = [m for m in chat if m.from_bot]
    last = bot[-1] if bot else None
    return len(bot), (last.message_id, last.text or last.caption or "", last.buttons) if last else None


def default_choice_label(f: InputField, lang: str = "en") -> str:
    """The button a user picks for an enum or boolean field, in its words: the default, else the
    first value offered."""
    offered = [v for _, v in questions.offered_choices(f)]
    pick = f.default if f.default in offered else offered[0]
    return questions.choice_label(lang, f, pick)


def typed_value(spec: ModelSpec, f: InputField) -> str:
    if f.type in ("integer", "number"):
        number = f.default if isinstance(f.default, (int, float)) else f.min if f.min is not None else 1
        return str(int(number) if f.type == "integer" else number)
    if f.type == "array-of-string":
        return "alpha, beta"
    if f.default not in (None, ""):
        return str(f.default)
    value = f"a small test of {spec.id}" if f.name in ("prompt", "text") else "test"
    return value.ljust(f.min_length or 0, ".")
