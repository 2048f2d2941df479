"""Connections, transactions, named queries and error translation for Postgres.

The only module that imports psycopg2. Driver errors leave it as a small vocabulary that says
what to do: `DatabaseUnavailable` (connection lost or refused: go passive, retry later) and
`Conflict` (a unique constraint said no). Everything else is re-raised, chained.
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
from pathlib import Path
from typing import Any, Iterator

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import psycopg2.pool

log = logging.getLogger(__name__)

QUERIES_PATH = Path(__file__).with_name("queries.sql")
CONNECT_TIMEOUT_S = 3
# Client TCP keepalives: a dead peer is noticed in about idle + interval * count seconds.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 1, "keepalives_count": 3}
POOL_MAX = 32
POOL_WAIT_S = 30.0

psycopg2.extras.register_uuid()


class DatabaseError(Exception):
    """Base of the storage error vocabulary."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or the connection broke: go passive and retry."""


class Conflict(DatabaseError):
    """A unique or exclusion constraint refused the write."""

    def __init__(self, constraint: str | None, message: str) -> None:
        super().__init__(message)
        self.constraint = constraint


def load_queries(path: Path = QUERIES_PATH) -> dict[str, str]:
    """Parse `-- name: x` blocks into {name: sql}."""
    queries: dict[str, str] = {}
    for block in re.split(r"^-- name: ", path.read_text(encoding="utf-8"), flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        sql = "\n".join(line for line in body.splitlines() if not line.startswith("--")).strip()
        queries[name.strip()] = sql
    return queries


QUERIES = load_queries()


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map psycopg2's hierarchy to ours at the boundary."""
    try:
        yield
    except psycopg2.errors.UniqueViolation as exc:
        raise Conflict(getattr(exc.diag, "constraint_name", None), str(exc).strip()) from exc
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        raise DatabaseUnavailable(_first_line(exc)) from exc
    except psycopg2.errors.AdminShutdown as exc:
        raise DatabaseUnavailable(_first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(dsn: str, *, autocommit: bool = False, application_name: str = "kiebot") -> Any:
    """One new connection with keepalives and a short connect timeout."""
    with translate_errors():
        conn = psycopg2.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S,
                                application_name=application_name, **KEEPALIVE)
    conn.autocommit = autocommit
    return conn


class KeepingPool(psycopg2.pool.ThreadedConnectionPool):
    """psycopg2's pool closes every connection beyond `minconn` when it is returned (so with
    minconn=0 each transaction would open a new connection) and raises when all are in use.
    This one opens connections lazily, keeps every one it opened, and makes a caller wait for a
    free one (up to POOL_WAIT_S)."""

    def __init__(self, maxconn: int, dsn: str, **kwargs: Any) -> None:
        super().__init__(0, maxconn, dsn, **kwargs)
        self.minconn = maxconn
        self._free = threading.BoundedSemaphore(maxconn)

    def getconn(self, key: Any = None) -> Any:
        if not self._free.acquire(timeout=POOL_WAIT_S):
            raise psycopg2.pool.PoolError(f"no free connection within {POOL_WAIT_S:g}s")
        try:
            return super().getconn(key)
        except BaseException:
            self._free.release()
            raise

    def putconn(self, conn: Any = None, key: Any = None, close: bool = False) -> None:
        try:
            super().putconn(conn, key, close)
        finally:
            self._free.release()


class Database:
    """A thread-safe pool; `tx()` yields a dict cursor inside one transaction."""

    def __init__(self, dsn: str, *, max_connections: int = POOL_MAX, application_name: str = "kiebot") -> None:
        self.dsn = dsn
        self.application_name = application_name
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._max = max_connections
        self._lock = threading.Lock()

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                with translate_errors():
                    self._pool = KeepingPool(self._max, self.dsn, connect_timeout=CONNECT_TIMEOUT_S,
                                             application_name=self.application_name, **KEEPALIVE)
            return self._pool

    @contextlib.contextmanager
    def tx(self) -> Iterator[Any]:
        """One transaction: commit on success, roll back on error, drop broken connections."""
        pool = self._get_pool()
        with translate_errors():
            try:
                conn = pool.getconn()
            except psycopg2.pool.PoolError as exc:
                raise DatabaseUnavailable(f"connection pool: {exc}") from exc
        broken = False
        try:
            with translate_errors():
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    yield cur
                conn.commit()
        except BaseException:
            broken = conn.closed != 0
            if not broken:
                try:
                    conn.rollback()
                except psycopg2.Error:
                    broken = True
            raise
        finally:
            pool.putconn(conn, close=broken or conn.closed != 0)

    def one(self, name: str, **params: Any) -> dict[str, Any] | None:
        with self.tx() as cur:
            cur.execute(QUERIES[name], params)
            return cur.fetchone() if cur.description else None

    def all(self, name: str, **params: Any) -> list[dict[str, Any]]:
        with self.tx() as cur:
            cur.execute(QUERIES[name], params)
            return list(cur.fetchall()) if cur.description else []

    def run(self, name: str, **params: Any) -> int:
        """Execute a statement; return the number of rows it changed."""
        with self.tx() as cur:
            cur.execute(QUERIES[name], params)
            return int(cur.rowcount)

    def ping(self) -> bool:
        try:
            return self.one("ping") is not None
        except DatabaseUnavailable:
            return False

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None


def socket_of(conn: Any) -> int | None:
    """The connection's socket for select(), or None when it is closed or broken."""
    try:
        return int(conn.fileno()) if not conn.closed else None
    except psycopg2.Error:
        return None


def execute_script(conn: Any, sql: str) -> None:
    """Run a multi-statement SQL script (migrations) on `conn` in its current transaction."""
    with translate_errors(), conn.cursor() as cur:
        cur.execute(sql)


def json_param(value: Any) -> Any:
    """Wrap a Python value for a jsonb parameter."""
    return psycopg2.extras.Json(value)
