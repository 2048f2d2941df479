"""A /metrics scrape costs O(unfinished jobs): on a table of 100,000 finished jobs the database
gauges read only the unfinished ones, and still report every unfinished state (0 when empty)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from actors.job_state import TERMINAL, JobState
from storage.db import QUERIES, Database
from storage.jobs import database_gauges
from tests.support.factories import make_job, take_epoch

FINISHED = 100_000
FINAL_STATES = sorted(s.value for s in TERMINAL)
PARTIAL_INDEXES = {"jobs_unfinished_by_state", "jobs_unfinished"}     # unfinished jobs only


@pytest.fixture
def many_finished_jobs(db: Database, database_url: str, sql: Any) -> dict[str, int]:
    """100,000 finished jobs spread over every final state, four unfinished ones, and the table
    vacuumed and analysed as autovacuum would leave it; returns the unfinished jobs by state."""
    # Their state history is beside the point here: skip the event trigger for the bulk insert.
    sql.execute("ALTER TABLE jobs DISABLE TRIGGER jobs_insert_event")
    sql.execute(
        """INSERT INTO jobs (request_key, chat_id, user_id, model, input, state, callback_token, deadline_at,
                             created_at, updated_at)
           SELECT 'bulk:' || i, 7, 7, 'z-image', '{}'::jsonb,
                  (%(states)s::job_state[])[1 + i %% %(n_states)s], 'token', now(),
                  now() - interval '1 hour', now() - interval '1 hour'
           FROM generate_series(1, %(count)s) AS i""",
        {"states": FINAL_STATES, "n_states": len(FINAL_STATES), "count": FINISHED})
    sql.execute("ALTER TABLE jobs ENABLE TRIGGER jobs_insert_event")
    epoch = take_epoch(database_url)
    unfinished = [JobState.CREATED, JobState.SUBMITTED, JobState.SUBMITTED, JobState.DELIVERING]
    for state in unfinished:
        make_job(db, epoch, state)
    sql.execute("VACUUM ANALYZE jobs")
    return {s.value: unfinished.count(s) for s in unfinished}


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def test_gauges_report_every_unfinished_state_and_no_final_one(
        db: Database, many_finished_jobs: dict[str, int]) -> None:
    by_state, callbacks, updates, oldest = database_gauges(db)
    expected = {s.value: many_finished_jobs.get(s.value, 0) for s in JobState if s not in TERMINAL}
    assert by_state == expected
    assert (callbacks, updates) == (0, 0)
    assert 0 <= oldest < 3600       # the unfinished jobs are new; the finished ones are an hour old


def test_the_gauge_query_reads_no_finished_job(db: Database, many_finished_jobs: dict[str, int], sql: Any) -> None:
    sql.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + QUERIES["database_gauges"])
    raw = sql.fetchone()[0]
    plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
    on_jobs = [n for n in plan_nodes(plan) if n.get("Relation Name") == "jobs"]
    assert on_jobs, "the gauges read the jobs table"
    unfinished = sum(many_finished_jobs.values())
    for node in on_jobs:
        assert node["Node Type"] != "Seq Scan", node
        touched = (node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
                   + node.get("Rows Removed by Index Recheck", 0))
        assert touched <= unfinished, (node["Node Type"], node.get("Index Name"), touched)
        # An index scan names its index; a bitmap heap scan's child does.
        indexes = {n["Index Name"] for n in plan_nodes(node) if "Index Name" in n}
        assert indexes and indexes <= PARTIAL_INDEXES, indexes
