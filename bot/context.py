"""What every handler needs, kept in `application.bot_data['deps']` (PTB's typed-context idea)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from telegram import Update
from telegram.ext import ContextTypes

from config.catalogue import Catalogue
from storage import conversations
from storage.db import Database
from telemetry.metrics import Metrics


@dataclass(frozen=True)
class Deps:
    db: Database
    catalogue: Catalogue
    metrics: Metrics
    notify_job: Callable[[int], None]
    cancel_job: Callable[[int], None]
    max_active_jobs: int = 1
    admin_ids: frozenset[int] = frozenset()


def deps_of(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    return context.bot_data["deps"]  # type: ignore[no-any-return]


def who(update: Update, deps: Deps) -> tuple[int, int, str]:
    """(chat id, user id, language) of an update."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None
    assert chat is not None
    return chat.id, user.id, conversations.user_lang(deps.db, user.id, user.language_code)
