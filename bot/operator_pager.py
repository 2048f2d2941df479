"""Messages to the operator (ADMIN_IDS), for actors.ports.OperatorPager: each admin gets the
alert in their language, through the epoch-fenced TelegramSender. How often is decided by the
caller (actors.treasurer.page: once an hour per alert, across instances)."""
from __future__ import annotations

import logging

from actors.ports import OperatorAlert, SendError, SendOutcome
from bot.sender import TelegramSender
from config.texts import text
from storage import conversations
from storage.db import Database

log = logging.getLogger(__name__)


class TelegramOperatorPager:
    def __init__(self, sender: TelegramSender, admin_ids: frozenset[int], db: Database) -> None:
        self._sender, self._admins, self._db = sender, admin_ids, db

    def page(self, alert: OperatorAlert, detail: str) -> int:
        """Best effort per admin; only DEPOSED is raised (this instance must stop sending). The
        number of admins the message reached."""
        reached = 0
        for admin in sorted(self._admins):
            lang = conversations.user_lang(self._db, admin, None)
            try:
                self._sender.send_text(admin, text(lang, f"page_{alert.value}", detail=detail))
            except SendError as exc:
                if exc.outcome == SendOutcome.DEPOSED:
                    raise
                log.warning("could not page admin %s: %s", admin, exc, extra={"action": "page_failed"})
                continue
            reached += 1
        return reached
