"""The reconciler's run_once against a real Postgres."""
from __future__ import annotations

import pytest

from actors.job_state import JobState
from actors.reconciler import Reconciler, ReconcilerConfig
from storage import inbox
from storage.db import Database
from tests.support.factories import make_job, take_epoch


def test_it_finds_orphans_callbacks_deadlines_and_stale_claims(db: Database, database_url: str) -> None:
    old = take_epoch(database_url)
    running = make_job(db, old, JobState.SUBMITTED)
    orphan = make_job(db, old, JobState.SUBMITTED)
    late = make_job(db, old, JobState.CREATED, deadline_s=0)
    claimed = make_job(db, old, JobState.DELIVERING)
    make_job(db, old, JobState.DELIVERED)
    inbox.store_callback(db, orphan.id, {"data": {}}, None, "test", notify=False)
    new = take_epoch(database_url)
    result = Reconciler(db, new, ReconcilerConfig(grace_s=0)).run_once({running.id})
    assert set(result.orphans) == {orphan.id, late.id, claimed.id}
    assert result.callbacks == (orphan.id,)
    assert (result.past_deadline, result.stale_claims) == (1, 1)


def test_a_claim_inside_its_grace_period_is_not_stale(db: Database, database_url: str) -> None:
    old = take_epoch(database_url)
    make_job(db, old, JobState.DELIVERING)
    result = Reconciler(db, take_epoch(database_url), ReconcilerConfig(grace_s=3600)).run_once(set())
    assert result.stale_claims == 0


def test_bad_configuration_fails_at_start() -> None:
    with pytest.raises(ValueError):
        ReconcilerConfig(interval_s=0)
