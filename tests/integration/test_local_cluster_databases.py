"""The local cluster's databases (sim/cluster.py), on the server under test: what the demo,
the benchmarks and the tests build their clusters on."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from sim import cluster
from storage.db import Database, DatabaseUnavailable, connect


@pytest.fixture
def name(pg_admin_url: str) -> Iterator[str]:
    """A database name that needs quoting (a dash, a capital, a space); dropped afterwards."""
    db_name = f"kiebot-Cluster {uuid.uuid4().hex[:8]}"
    yield db_name
    cluster.drop_database(pg_admin_url, db_name)


def epoch(url: str) -> int:
    db = Database(url, application_name="kiebot-test")
    try:
        row = db.one("current_epoch")
        assert row is not None
        return int(row["epoch"])
    finally:
        db.close()


def bump(url: str) -> None:
    db = Database(url, application_name="kiebot-test")
    try:
        db.one("bump_epoch", holder="test")
    finally:
        db.close()


def test_fresh_database_is_migrated_and_replaces_one_of_the_same_name(pg_admin_url: str, name: str) -> None:
    url = cluster.fresh_database(pg_admin_url, name)
    start = epoch(url)
    bump(url)
    assert epoch(url) == start + 1

    again = cluster.fresh_database(pg_admin_url, name)

    assert again == url
    assert epoch(again) == start


def test_dropping_a_database_ends_the_sessions_still_connected_to_it(pg_admin_url: str, name: str) -> None:
    url = cluster.create_database(pg_admin_url, name)
    holder = connect(url, application_name="kiebot-test")
    try:
        cluster.drop_database(pg_admin_url, name)
    finally:
        holder.close()

    with pytest.raises(DatabaseUnavailable):
        connect(url, application_name="kiebot-test").close()


def test_a_database_created_from_a_template_holds_the_template_s_data(pg_admin_url: str, name: str) -> None:
    template = cluster.fresh_database(pg_admin_url, f"{name}-template")
    try:
        bump(template)
        copy = cluster.create_database(pg_admin_url, name, template=f"{name}-template")
        assert epoch(copy) == epoch(template)
    finally:
        cluster.drop_database(pg_admin_url, f"{name}-template")


def test_server_rows_runs_a_named_query_on_the_maintenance_database(pg_admin_url: str, name: str) -> None:
    cluster.create_database(pg_admin_url, name)

    [(commits,)] = cluster.server_rows(pg_admin_url, "database_commits", name=name)
    rows = cluster.server_rows(pg_admin_url, "server_settings", names=["max_connections", "fsync"])

    assert int(commits) >= 0
    assert sorted(r[0] for r in rows) == ["fsync", "max_connections"]
