"""The reconciler: the leader's periodic look at Postgres for work no JobActor is doing.

It finds unfinished jobs without an actor (stored by another instance, left by a crashed
leader, or whose actor gave up), jobs with unprocessed callbacks (stored by any instance),
and counts jobs past their deadline and delivery claims of older epochs past the grace period,
which the jobs' actors settle (fail with a message; apply DELIVERY_POLICY). The supervisor owns
it and acts on each result; it runs only while this instance leads.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from storage import inbox
from storage.db import Database
from storage.jobs import reconcile_counts, unfinished_job_ids

log = logging.getLogger(__name__)

INTERVAL_S = 1.0
GRACE_S = 30.0


@dataclass(frozen=True)
class ReconcilerConfig:
    interval_s: float = INTERVAL_S
    grace_s: float = GRACE_S

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError("reconciler interval_s must be positive")
        if self.grace_s < 0:
            raise ValueError("reconciler grace_s must be >= 0")


@dataclass(frozen=True)
class ReconcileResult:
    orphans: tuple[int, ...]            # unfinished jobs with no actor here
    callbacks: tuple[int, ...]          # jobs with callbacks waiting in the inbox
    past_deadline: int
    stale_claims: int

    @property
    def quiet(self) -> bool:
        return not (self.orphans or self.callbacks or self.past_deadline or self.stale_claims)


class Reconciler:
    def __init__(self, db: Database, epoch: int, config: ReconcilerConfig | None = None) -> None:
        self.db, self.epoch, self.config = db, epoch, config or ReconcilerConfig()

    def run_once(self, running: set[int]) -> ReconcileResult:
        orphans = tuple(j for j in unfinished_job_ids(self.db) if j not in running)
        callbacks = tuple(inbox.jobs_with_pending(self.db))
        past_deadline, stale_claims = reconcile_counts(self.db, self.epoch, self.config.grace_s)
        result = ReconcileResult(orphans, callbacks, past_deadline, stale_claims)
        if not result.quiet:
            log.info("reconcile: %d orphaned jobs, %d with callbacks, %d past deadline, %d stale claims",
                     len(orphans), len(callbacks), past_deadline, stale_claims,
                     extra={"action": "reconcile", "epoch": self.epoch})
        return result
