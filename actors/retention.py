"""The retention duty: the leader's periodic deletion of rows nobody needs any more.

Processed Telegram updates and KIE callbacks older than their retention age, and the state
history of jobs that finished longer ago than theirs, go in batches of at most `batch_size`
rows per statement; jobs themselves, unprocessed rows and unfinished jobs' events are never
touched (storage/retention.py). The supervisor owns it and runs it while this instance leads.
The deletes are not fenced by the epoch: a deposed leader finishing a batch removes only rows
that every leader would remove, so two of them at once do no harm.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.db import Database
from storage.retention import Prunable, delete_old_batch

log = logging.getLogger(__name__)

DAY_S = 86_400.0
UPDATES_DAYS = 7.0
CALLBACKS_DAYS = 7.0
EVENTS_DAYS = 30.0
# Telegram redelivers an update it has not had confirmed for up to 24 hours, and the stored
# update_id is what ignores a redelivery: keeping processed updates a shorter time would let
# a late redelivery be handled twice.
MIN_UPDATES_DAYS = 1.0
BATCH_SIZE = 1_000            # rows per DELETE statement: short locks, short transactions
MAX_BATCHES = 10              # per table per run: bounds how long one run holds the supervisor
INTERVAL_S = 60.0             # between runs that found everything deleted


@dataclass(frozen=True)
class RetentionConfig:
    updates_days: float = UPDATES_DAYS
    callbacks_days: float = CALLBACKS_DAYS
    events_days: float = EVENTS_DAYS
    batch_size: int = BATCH_SIZE
    max_batches: int = MAX_BATCHES
    interval_s: float = INTERVAL_S

    def __post_init__(self) -> None:
        if not self.updates_days >= MIN_UPDATES_DAYS:
            raise ValueError(f"retention updates_days must be >= {MIN_UPDATES_DAYS:g} "
                             "(Telegram may redeliver an update for a day)")
        if not (self.callbacks_days > 0 and self.events_days > 0):
            raise ValueError("retention callbacks_days and events_days must be positive")
        if self.batch_size < 1 or self.max_batches < 1:
            raise ValueError("retention batch_size and max_batches must be at least 1")
        if not self.interval_s > 0:
            raise ValueError("retention interval_s must be positive")

    def age_s(self, table: Prunable) -> float:
        days = {Prunable.UPDATES: self.updates_days, Prunable.CALLBACKS: self.callbacks_days,
                Prunable.EVENTS: self.events_days}[table]
        return days * DAY_S


@dataclass(frozen=True)
class RetentionResult:
    updates: int                # processed Telegram updates deleted
    callbacks: int              # processed KIE callbacks deleted
    events: int                 # job_events rows of long-finished jobs deleted
    capped: bool                # a table still had rows due after max_batches: run again soon

    @property
    def quiet(self) -> bool:
        return not (self.updates or self.callbacks or self.events)


RemovedCallback = Callable[[str, int], None]


def _ignore(table: str, n: int) -> None:
    """The default `on_removed`: no metric."""


class Retention:
    """`run_once` deletes what is due now; `run_when_due` does so at most every `interval_s`,
    or at the next call while a backlog remains (a run stopped at max_batches)."""

    def __init__(self, db: Database, config: RetentionConfig | None = None, *,
                 on_removed: RemovedCallback = _ignore, clock: Callable[[], float] = time.monotonic) -> None:
        self.db, self.config = db, config or RetentionConfig()
        self._on_removed, self._clock = on_removed, clock
        # The first run waits one interval: a new leader first adopts its jobs.
        self._next_at = clock() + self.config.interval_s

    def run_when_due(self) -> RetentionResult | None:
        """Run if the interval has passed (or a backlog remains); None when it was not due."""
        if self._clock() < self._next_at:
            return None
        result = self.run_once()
        self._next_at = self._clock() + (0.0 if result.capped else self.config.interval_s)
        return result

    def run_once(self) -> RetentionResult:
        """Delete every table's due rows, up to max_batches statements each. Each batch commits
        on its own and is reported to `on_removed` at once, so a database error midway loses no
        count; the error itself propagates (DatabaseUnavailable) for the caller to handle."""
        removed: dict[Prunable, int] = {}
        capped = False
        for table in Prunable:
            removed[table], table_capped = self._prune(table)
            capped = capped or table_capped
        result = RetentionResult(removed[Prunable.UPDATES], removed[Prunable.CALLBACKS],
                                 removed[Prunable.EVENTS], capped)
        if not result.quiet:
            log.info("retention: deleted %d updates, %d callbacks, %d job events%s",
                     result.updates, result.callbacks, result.events, " (more remain)" if capped else "",
                     extra={"action": "retention"})
        return result

    def _prune(self, table: Prunable) -> tuple[int, bool]:
        """(rows deleted, whether rows may remain) for one table."""
        total = 0
        for _ in range(self.config.max_batches):
            n = delete_old_batch(self.db, table, self.config.age_s(table), self.config.batch_size)
            if n:
                total += n
                self._on_removed(table.value, n)
            if n < self.config.batch_size:
                return total, False
        return total, True
