"""Connections, transactions, named queries and error translation for Postgres.

The only module that imports psycopg2. Driver errors leave it as a small vocabulary that says
what to do: `DatabaseUnavailable` (connection lost or refused, or a statement that ran out of
time: go passive, retry later) and `Conflict` (a unique constraint said no). Everything else is
re-raised, chained. Messages that leave it never carry the connection URL or its password.

Every wait on the server is bounded: pooled sessions carry statement, lock and idle-transaction
timeouts, and a wait callback (`_wait_bounded`) gives up on a connection that stays silent, so a
query on a partitioned network errors out instead of hanging (a proxy or a hung peer can keep
the TCP connection looking healthy forever, so kernel timeouts alone are not enough).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import re
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import psycopg2.pool

log = logging.getLogger(__name__)

QUERIES_PATH = Path(__file__).with_name("queries.sql")
CONNECT_TIMEOUT_S = 3
# Client TCP: keepalives notice a dead peer in about idle + interval * count seconds, and
# tcp_user_timeout fails a write nobody acknowledges within 10 s (not the kernel's ~15 min).
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 1, "keepalives_count": 3,
             "tcp_user_timeout": 10_000}
POOL_MAX = 32
POOL_WAIT_S = 30.0
# Pooled sessions: the server cancels a statement, a lock wait or a forgotten transaction after these.
STATEMENT_TIMEOUT_S = 30.0
LOCK_TIMEOUT_S = 10.0
IDLE_IN_TRANSACTION_TIMEOUT_S = 60.0
# The client stops waiting this long after the server's own statement_timeout would have answered.
ANSWER_MARGIN_S = 5.0
# A pooled connection unused this long is pinged before it is handed out (it may have died meanwhile).
IDLE_CHECK_S = 5.0

psycopg2.extras.register_uuid()  # type: ignore[no-untyped-call]  # untyped in types-psycopg2


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
    for block in re.split(r"^-- name: ", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]:
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
        raise Conflict(getattr(exc.diag, "constraint_name", None), scrub(str(exc).strip())) from exc
    # Timeouts (statement, lock wait, idle transaction) mean "not now": the same as unreachable.
    except (psycopg2.errors.QueryCanceled, psycopg2.errors.LockNotAvailable,
            psycopg2.errors.IdleInTransactionSessionTimeout) as exc:
        raise DatabaseUnavailable(_first_line(exc)) from exc
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        raise DatabaseUnavailable(_first_line(exc)) from exc


def _first_line(exc: BaseException) -> str:
    text = scrub(str(exc).strip())
    return text.splitlines()[0] if text else type(exc).__name__


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_PARAM_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def scrub(text: str) -> str:
    """`text` with any URL password or password=... parameter masked (libpq errors can echo them)."""
    return _PARAM_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def session_options(**settings: float | int | str) -> str:
    """libpq's `options` value that sets these server parameters for the session."""
    return " ".join(f"-c {name}={value}" for name, value in settings.items())


def connect(dsn: str, *, autocommit: bool = False, application_name: str = "kiebot",
            options: str = "", answer_timeout_s: float | None = None) -> Any:
    """One new connection with keepalives and a short connect timeout.

    `options` sets server parameters for the session (see `session_options`); with
    `answer_timeout_s` each wait on the server gives up after that long (None: wait as long as
    the server takes, for migrations and admin work)."""
    with translate_errors():
        conn = psycopg2.connect(dsn, **connection_params(dsn, application_name, options, answer_timeout_s))
    conn.autocommit = autocommit
    return conn


def connection_params(dsn: str, application_name: str, options: str,
                      answer_timeout_s: float | None) -> dict[str, Any]:
    """psycopg2.connect keywords: ours, plus any `options` the URL already has."""
    existing = _dsn_options(dsn)
    if existing is None:
        # libpq's message quotes the offending text, which may be the password: never show it,
        # nor chain it (hence raised outside the except block).
        raise DatabaseUnavailable("the database URL cannot be parsed (is a % in the password "
                                  "written as %25?)")
    params: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": application_name,
                              "connection_factory": functools.partial(BoundedConnection,
                                                                      answer_timeout_s=answer_timeout_s),
                              **KEEPALIVE}
    merged = f"{existing} {options}".strip()
    if merged:
        params["options"] = merged
    return params


def _dsn_options(dsn: str) -> str | None:
    """The `options` the URL already sets ("" if none), or None if libpq cannot parse it."""
    try:
        return str(psycopg2.extensions.parse_dsn(dsn).get("options", ""))
    except psycopg2.ProgrammingError:
        return None


class BoundedConnection(psycopg2.extensions.connection):
    """A connection whose waits on the server `_wait_bounded` cuts short: CONNECT_TIMEOUT_S
    while connecting, then `answer_timeout_s` per statement (None: unbounded)."""

    def __init__(self, dsn: str, *args: Any, answer_timeout_s: float | None = None, **kwargs: Any) -> None:
        self.wait_bound_s: float | None = float(CONNECT_TIMEOUT_S)
        super().__init__(dsn, *args, **kwargs)
        self.wait_bound_s = answer_timeout_s


def _wait_bounded(conn: Any) -> None:
    """psycopg2's wait callback: drive the connection until it answers, or raise once the
    connection's bound passes (psycopg2 then closes it, so the pool drops it)."""
    bound: float | None = getattr(conn, "wait_bound_s", None)
    deadline = None if bound is None else time.monotonic() + bound
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        events = select.POLLIN if state == psycopg2.extensions.POLL_READ else select.POLLOUT
        poller = select.poll()
        poller.register(conn.fileno(), events | select.POLLERR | select.POLLHUP)
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise psycopg2.OperationalError(f"no answer from the database within {bound:g}s")
        poller.poll(None if remaining is None else remaining * 1000)


# Process-wide (psycopg2 has no per-connection hook); connections without a bound wait as before.
psycopg2.extensions.set_wait_callback(_wait_bounded)


class KeepingPool(psycopg2.pool.ThreadedConnectionPool):
    """psycopg2's pool closes every connection beyond `minconn` when it is returned (so with
    minconn=0 each transaction would open a new connection) and raises when all are in use.
    This one opens connections lazily, keeps every one it opened, and makes a caller wait for a
    free one (up to POOL_WAIT_S). A connection that sat unused for `idle_check_s` is pinged
    first, and a dead one replaced, so a server restart costs no caller an error."""

    def __init__(self, maxconn: int, dsn: str, *, idle_check_s: float = IDLE_CHECK_S, **kwargs: Any) -> None:
        super().__init__(0, maxconn, dsn, **kwargs)
        self.minconn = maxconn
        self._free = threading.BoundedSemaphore(maxconn)
        self._idle_check_s = idle_check_s
        self._returned_at: dict[int, float] = {}

    def getconn(self, key: Any = None) -> Any:
        if not self._free.acquire(timeout=POOL_WAIT_S):
            raise psycopg2.pool.PoolError(f"no free connection within {POOL_WAIT_S:g}s")
        try:
            # Each dead one is closed and forgotten, so this ends by opening a fresh connection.
            for _ in range(self.maxconn + 1):
                conn = super().getconn(key)
                if self._alive(conn):
                    return conn
                log.info("replacing a dead pooled connection", extra={"action": "db_pool_replace"})
                super().putconn(conn, key, close=True)
            raise psycopg2.OperationalError("no live connection to the database")
        except BaseException:
            self._free.release()
            raise

    def _alive(self, conn: Any) -> bool:
        if conn.closed:
            return False
        returned = self._returned_at.pop(id(conn), None)
        if returned is None or time.monotonic() - returned < self._idle_check_s:
            return True     # new, or used a moment ago: a check would only add a round trip
        try:
            with conn.cursor() as cur:
                cur.execute(QUERIES["ping"])
            conn.rollback()
        except psycopg2.Error:
            return False
        return True

    def putconn(self, conn: Any = None, key: Any = None, close: bool = False) -> None:
        try:
            if close or conn.closed:
                self._returned_at.pop(id(conn), None)
            else:
                self._returned_at[id(conn)] = time.monotonic()
            super().putconn(conn, key, close)
        finally:
            self._free.release()


class Database:
    """A thread-safe pool; `tx()` yields a dict cursor inside one transaction.

    Every session is bounded by the server (statement_timeout, lock_timeout,
    idle_in_transaction_session_timeout) and by the client, which stops waiting
    ANSWER_MARGIN_S after the statement timeout; either surfaces as DatabaseUnavailable."""

    def __init__(self, dsn: str, *, max_connections: int = POOL_MAX, application_name: str = "kiebot",
                 statement_timeout_s: float = STATEMENT_TIMEOUT_S, lock_timeout_s: float = LOCK_TIMEOUT_S,
                 idle_check_s: float = IDLE_CHECK_S) -> None:
        self.dsn = dsn
        self.application_name = application_name
        self._pool: psycopg2.pool.ThreadedConnectionPool | None = None
        self._max = max_connections
        self._lock = threading.Lock()
        self._idle_check_s = idle_check_s
        self._answer_timeout_s = statement_timeout_s + ANSWER_MARGIN_S
        self._options = session_options(statement_timeout=_ms(statement_timeout_s),
                                        lock_timeout=_ms(lock_timeout_s),
                                        idle_in_transaction_session_timeout=_ms(IDLE_IN_TRANSACTION_TIMEOUT_S))

    def _get_pool(self) -> psycopg2.pool.ThreadedConnectionPool:
        with self._lock:
            if self._pool is None:
                params = connection_params(self.dsn, self.application_name, self._options, self._answer_timeout_s)
                with translate_errors():
                    self._pool = KeepingPool(self._max, self.dsn, idle_check_s=self._idle_check_s, **params)
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


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


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
