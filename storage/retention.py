"""Retention: deleting rows nobody needs any more, a bounded batch per statement.

Owns the three deletions: Telegram updates and KIE callbacks processed long ago, and the state
history of jobs that finished long ago. It never deletes a job (/history reads them), an
unprocessed inbox row, or any event of an unfinished job; the queries hold those rules.
"""
from __future__ import annotations

import enum

from storage.db import Database


class Prunable(str, enum.Enum):
    """The tables retention deletes from; values are the table names (the metric's label)."""

    UPDATES = "telegram_updates"
    CALLBACKS = "callback_inbox"
    EVENTS = "job_events"


_QUERY = {
    Prunable.UPDATES: "delete_old_processed_updates",
    Prunable.CALLBACKS: "delete_old_processed_callbacks",
    Prunable.EVENTS: "delete_old_job_events",
}


def delete_old_batch(db: Database, table: Prunable, age_s: float, batch: int) -> int:
    """Delete at most `batch` of `table`'s rows that are past `age_s`, oldest first, in one
    statement (committed); return how many went. Fewer than `batch` means none are left."""
    return db.run(_QUERY[table], age_s=age_s, batch=batch)
