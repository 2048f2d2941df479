"""The callback inbox: KIE callbacks stored before they are answered, consumed by JobActors.

Storing one notifies the leader in the same transaction (storage.notifications); the
supervisor's sweep remains the safety net. A callback is marked processed only after its
JobActor handled it, with the epoch checked in the same statement, so a crash between the two
handles it again (handling is idempotent).
Bodies are stored with NUL and lone surrogates replaced (storage.jsonb), never refused for them.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from storage.db import Database, json_param
from storage.jsonb import storable


@dataclass(frozen=True)
class StoredCallback:
    id: int
    body: Any
    signature_ok: bool | None
    received_at: dt.datetime


def store_callback(db: Database, job_id: int, body: Any, signature_ok: bool | None,
                   received_by: str, *, notify: bool) -> int:
    """Store one callback body as received, made storable; its inbox row id. With `notify` (a
    standby stored it) the same statement notifies the leader with the job id once it commits
    (storage.notifications); a leader tells its own supervisor in-process instead."""
    row = db.one("insert_callback", job_id=job_id, body=json_param(storable(body)),
                 signature_ok=signature_ok, received_by=received_by, notify=notify)
    assert row is not None
    return int(row["id"])


def pending_for_job(db: Database, job_id: int) -> list[StoredCallback]:
    return [StoredCallback(r["id"], r["body"], r["signature_ok"], r["received_at"])
            for r in db.all("unprocessed_callbacks_for_job", job_id=job_id)]


def jobs_with_pending(db: Database) -> list[int]:
    return [r["job_id"] for r in db.all("jobs_with_unprocessed_callbacks")]


def mark_processed(db: Database, callback_id: int, epoch: int) -> bool:
    """False when the epoch is stale (or it was already processed)."""
    return db.one("mark_callback_processed", id=callback_id, epoch=epoch) is not None
