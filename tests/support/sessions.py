"""Cutting a test database's server sessions by application_name: how tests make an instance's
pool (`kiebot-<INSTANCE_ID>`) or its lock session (`kiebot-leader-<INSTANCE_ID>`) lose the
database for a moment, without touching the server or any other session."""
from __future__ import annotations

from storage.db import connect


def terminate(database_url: str, application_name: str) -> int:
    """End every session of this database with exactly that application_name; how many."""
    conn = connect(database_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %s AND datname = current_database()", (application_name,))
            (count,) = cur.fetchone()
    finally:
        conn.close()
    return int(count)
