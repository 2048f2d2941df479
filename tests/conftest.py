"""Test fixtures: a real Postgres (embedded by default, DATABASE_URL when set), migrated once
into a template, and a fresh database per test cloned from it.

The environment is scrubbed of KIEBOT_*, TELEGRAM_* and KIE_* at import, so a developer's real
token can never reach a test.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

for _name in list(os.environ):
    if _name.startswith(("KIEBOT_", "TELEGRAM_", "KIE_")):
        del os.environ[_name]

from bot import media  # noqa: E402
from sim import cluster  # noqa: E402
from sim.cluster import drop_database, with_database  # noqa: E402,F401 - used by test modules
from storage.db import Database, connect  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# One template per test session, so that concurrent sessions on one server do not drop each other's.
TEMPLATE = f"kiebot_template_{os.getpid()}"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """A URL to a maintenance database on the server under test."""
    return os.environ.get("DATABASE_URL") or cluster.embedded_admin_url(ROOT / ".kiebot" / "test-pg")


def _admin(url: str, *statements: str) -> None:
    """Run statements of a test's own (not the product's queries) on the server."""
    conn = connect(url, autocommit=True, application_name="kiebot-tests")
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


@pytest.fixture(scope="session")
def template_url(pg_admin_url: str) -> Iterator[str]:
    url = cluster.fresh_database(pg_admin_url, TEMPLATE)
    yield url
    drop_database(pg_admin_url, TEMPLATE)


@pytest.fixture
def database_url(pg_admin_url: str, template_url: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    name = f"kiebot_t_{uuid.uuid4().hex[:12]}"
    url = cluster.create_database(pg_admin_url, name, template=TEMPLATE)
    yield url
    drop_database(pg_admin_url, name)


@pytest.fixture(autouse=True)
def fresh_result_hosts() -> Iterator[None]:
    """Each test starts with no allowed result-download hosts: instances started by earlier
    tests allowed their simulators' ports, which a later test's server may be given again."""
    media.forget_result_hosts()
    yield
    media.forget_result_hosts()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, application_name="kiebot-test")
    yield database
    database.close()


@pytest.fixture
def sql(database_url: str) -> Iterator[Any]:
    """An autocommit cursor on the test database, for a test's own setup (bulk rows, backdating:
    the test's clock is the database's, moved back by hand)."""
    conn = connect(database_url, autocommit=True, application_name="kiebot-tests")
    with conn.cursor() as cur:
        yield cur
    conn.close()


# pytest-xdist (`make test`): each test is its own unit of work, except the tests of a module that
# share one expensive module-scoped set-up, which go to one worker together. (xdist's own
# `xdist_group` mark does not take effect under pytest 9: it rewrites a node id pytest no longer reads.)
SHARED_SETUP = {"tests/integration/test_every_model.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "load":
        return None                 # another --dist asked for by name: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class ByTestOrSharedModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in SHARED_SETUP else nodeid

    return ByTestOrSharedModule(config, log)
