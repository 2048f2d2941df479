"""Forward-only, tracked migrations, applied under the migrator's own advisory lock.

Files in `storage/migrations/` are named `NNNN_description.sql`; each runs once, in order, in
its own transaction, and is recorded in `schema_migrations`. Running `migrate` twice changes
nothing. This lock serialises migrators only; leadership has its own lock in actors/leader.py.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from storage.db import connect, execute_script, translate_errors

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK_KEY = 7_246_001_002  # int64 constant, distinct from the leadership key
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name not of the form NNNN_name.sql: {path.name}")
        found.append(Migration(int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    return found


def migrate(dsn: str, up_to: int | None = None) -> list[str]:
    """Apply every pending migration (up to version `up_to`); return the names applied now."""
    conn = connect(dsn, autocommit=True, application_name="kiebot-migrate")
    try:
        with translate_errors(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())")
            cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
        applied = []
        for migration in available():
            if migration.version in done or (up_to is not None and migration.version > up_to):
                continue
            conn.autocommit = False
            execute_script(conn, migration.sql)
            with translate_errors(), conn.cursor() as cur:
                cur.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                            (migration.version, migration.name))
            conn.commit()
            conn.autocommit = True
            log.info("applied migration %s", migration.name, extra={"action": "migrate"})
            applied.append(migration.name)
        with translate_errors(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
        return applied
    finally:
        conn.close()
