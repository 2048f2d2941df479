"""The Telegram update inbox: every update is stored (unique update_id) before it is confirmed,
and marked processed only after its handler finished, fenced by the leader's epoch. An update
that cannot be decoded or handled is marked failed with a short reason, so it never blocks the
ones after it."""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from storage.db import Database, json_param
from storage.jsonb import storable


def store_update(db: Database, update_id: int, body: dict[str, Any], received_by: str, *, notify: bool) -> bool:
    """True when the update is new; False for a redelivery. With `notify` (a standby stored it)
    a new one notifies the leader in the same transaction (storage.notifications)."""
    return bool(store_updates(db, [(update_id, body)], received_by, notify=notify))


def store_updates(db: Database, batch: Collection[tuple[int, dict[str, Any]]], received_by: str, *,
                  notify: bool) -> set[int]:
    """Store a batch (a getUpdates answer) in one transaction; the update_ids that were new
    (the others were redeliveries). With `notify`, one notification for the batch when any was
    new; a leader storing them wakes its own intake in-process instead."""
    if not batch:
        return set()
    rows = db.all("insert_updates", update_ids=[u for u, _ in batch],
                  bodies=[json_param(storable(b)) for _, b in batch], received_by=received_by, notify=notify)
    return {int(r["update_id"]) for r in rows}


def unprocessed(db: Database, limit: int = 100, skip: Collection[int] = ()) -> list[tuple[int, dict[str, Any]]]:
    """Stored updates not handled yet, in update_id order, leaving out `skip` (those in flight)."""
    return [(r["update_id"], r["body"])
            for r in db.all("unprocessed_updates", limit=limit, skip=list(skip))]


def mark_processed(db: Database, update_ids: Collection[int], epoch: int) -> bool:
    """Mark handled updates processed, in one transaction; False (nothing marked) when `epoch` is
    no longer the current term. Updates marked already stay as they were."""
    row = db.one("mark_updates_processed", update_ids=list(update_ids), epoch=epoch)
    return bool(row and row["current"])


def mark_failed(db: Database, update_id: int, epoch: int, failure: str) -> bool:
    """Set an update aside as handled-with-failure (`failure` must hold no secret); fenced."""
    return db.one("mark_update_failed", update_id=update_id, epoch=epoch, failure=failure) is not None


def failed(db: Database) -> list[tuple[int, str]]:
    """Updates set aside as failed, with their reasons, in update_id order."""
    return [(r["update_id"], r["failure"]) for r in db.all("failed_updates")]


def backlog(db: Database) -> int:
    row = db.one("unprocessed_update_count")
    return int(row["n"]) if row else 0
