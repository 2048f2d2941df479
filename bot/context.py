"""What every handler needs, kept in `application.bot_data['deps']` (PTB's typed-context idea),
and `who` wrote: chat, user, language, with the welcome credit on a user's first sight."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from telegram import Update
from telegram.ext import ContextTypes

from config.catalogue import Catalogue
from config.pricing import Pricing
from config.settings import DEFAULT_QUEUE_LENGTH
from storage import conversations, ledger
from storage.db import Database
from telemetry.metrics import Metrics

WELCOMED_REMEMBERED = 100_000     # users this process knows were offered the welcome credit


class Welcomed:
    """The users this process has already offered the welcome credit (ledger.welcome grants it
    once per user whatever the calls, so forgetting one costs only a query): one query per user
    and process, none for users seen since, whatever the number of updates."""

    def __init__(self, limit: int = WELCOMED_REMEMBERED) -> None:
        self._seen: set[int] = set()
        self._limit = limit
        self._lock = threading.Lock()

    def knows(self, user_id: int) -> bool:
        with self._lock:
            return user_id in self._seen

    def remember(self, user_id: int) -> None:
        """Remember a user offered the credit (past `limit` users the memory starts over)."""
        with self._lock:
            if len(self._seen) >= self._limit:
                self._seen.clear()
            self._seen.add(user_id)


@dataclass(frozen=True)
class Deps:
    db: Database
    catalogue: Catalogue
    metrics: Metrics
    notify_job: Callable[[int], None]
    cancel_job: Callable[[int], None]
    pricing: Pricing
    max_active_jobs: int = 1
    queue_length: int = DEFAULT_QUEUE_LENGTH      # a user's generations that may wait their turn
    admin_ids: frozenset[int] = frozenset()
    welcomed: Welcomed = field(default_factory=Welcomed)


def deps_of(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    return context.bot_data["deps"]  # type: ignore[no-any-return]


def who(update: Update, deps: Deps) -> tuple[int, int, str]:
    """(chat id, user id, language) of an update; a user seen for the first time by this process
    is offered the welcome credit (granted once per user, by the ledger)."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None
    assert chat is not None
    lang = conversations.user_lang(deps.db, user.id, user.language_code)
    if deps.pricing.welcome_credit > 0 and not deps.welcomed.knows(user.id):
        ledger.welcome(deps.db, user.id, deps.pricing.welcome_credit)
        deps.welcomed.remember(user.id)     # only once it is granted (or was before)
    return chat.id, user.id, lang
