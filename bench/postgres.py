"""The benchmarks' own embedded Postgres (in bench/.pgdata, started on first use), a fresh
migrated database per scenario, and what the server says about itself.

Databases are made through `sim.cluster`, and every statement is a named query in
storage/queries.sql.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from sim import cluster

PGDATA = cluster.ROOT / "bench" / ".pgdata"     # ignored by git
SETTINGS = ("server_version", "max_connections", "shared_buffers", "fsync", "synchronous_commit", "wal_level")

_admin_url: str | None = None


def admin_url() -> str:
    """The maintenance database of the benchmarks' embedded Postgres (started on first use)."""
    global _admin_url
    if _admin_url is None:
        _admin_url = cluster.embedded_admin_url(PGDATA)
    return _admin_url


def fresh_database(scenario: str) -> str:
    """Drop and create `bench_<scenario>`, migrate it, return its URL."""
    return cluster.fresh_database(admin_url(), f"bench_{scenario}")


def committed_transactions(url: str) -> int:
    """xact_commit of the database in `url` (cumulative statistics, flushed about every second;
    each read is its own transaction, so it never sees a cached snapshot)."""
    name = urlsplit(url).path.lstrip("/")
    [(commits,)] = cluster.server_rows(admin_url(), "database_commits", name=name)
    return int(commits)


def postgres_settings() -> dict[str, str]:
    """The server's version and the settings that shape its speed, with their units."""
    rows = cluster.server_rows(admin_url(), "server_settings", names=list(SETTINGS))
    return {name: f"{setting}{'×' + unit if unit and unit != 'ms' else ''}" for name, setting, unit in rows}


def postmaster_pid() -> int | None:
    """The benchmarks' Postgres server process, if it runs."""
    try:
        return int((PGDATA / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None
