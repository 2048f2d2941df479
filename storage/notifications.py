"""Stored-work notifications: the leader hears at once about work any instance stored.

`insert_callback` and `insert_update` send a NOTIFY in the transaction that stores the row
(payload: the storing instance, after the job id for a callback), so it arrives only once the
row is visible; an instance ignores what it stored itself (its own hooks already fired).
`StoredWorkListener` LISTENs for them on its own connection and thread, and only while this
instance leads: never on the lock connection (a flood of notifications must not delay the
lock check) and never on a standby. Notifications are hints, not the record: any lost while the
connection was down or being set up are found by the supervisor's and the intake's sweeps.
It never raises out of its thread; a database error closes the connection and it reconnects.
"""
from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from storage.db import (
    QUERIES,
    DatabaseUnavailable,
    connect,
    session_options,
    socket_of,
    translate_errors,
)

log = logging.getLogger(__name__)

# Channel names, as written in storage/queries.sql (insert_callback, insert_update).
CALLBACK_CHANNEL = "kiebot_callback"
UPDATE_CHANNEL = "kiebot_update"

WAIT_S = 0.5            # longest wait on the socket: how soon leadership changes are noticed
PING_S = 5.0            # a connection quiet this long is pinged (a silent network shows no error)
RECONNECT_S = 1.0       # pause after a database error before connecting again
STATEMENT_TIMEOUT_S = 5.0   # LISTEN and the ping are instant; a slow one means trouble
ANSWER_S = STATEMENT_TIMEOUT_S + 1.0    # the client gives up just after the server would
JOIN_S = WAIT_S + ANSWER_S + 1.0


@dataclass(frozen=True)
class StoredWorkHooks:
    """What to do on a notification; called on the listener's thread, so they must not block."""

    callback_stored: Callable[[int], None]      # a callback for this job id was stored
    update_stored: Callable[[], None]           # one or more Telegram updates were stored


@dataclass(frozen=True)
class StoredWork:
    """One batch of notifications, deduplicated: job ids in arrival order, and any updates."""

    job_ids: tuple[int, ...]
    updates: bool


class ListenConnection:
    """A dedicated, non-pooled, autocommit connection LISTENing on both channels, with the
    keepalives and bounded waits of storage.db's connections."""

    def __init__(self, dsn: str, application_name: str, *, own: str | None = None) -> None:
        """`own`: this instance's id; what it stored itself is not reported (it knows already)."""
        self._own = own
        self._conn = connect(dsn, autocommit=True, application_name=application_name,
                             options=session_options(statement_timeout=round(STATEMENT_TIMEOUT_S * 1000)),
                             answer_timeout_s=ANSWER_S)
        try:
            with translate_errors(), self._conn.cursor() as cur:
                cur.execute(QUERIES["listen_stored_work"])
                cur.execute(QUERIES["backend_pid"])
                self.backend_pid = int(cur.fetchone()[0])
        except BaseException:
            self.close()
            raise
        self._heard_at = time.monotonic()

    def wait(self, timeout: float) -> StoredWork:
        """Up to `timeout` s for notifications; what arrived (maybe nothing). Pings the server
        when it has been quiet for PING_S. Raises DatabaseUnavailable on a broken connection."""
        fd = socket_of(self._conn)
        if fd is None:
            raise DatabaseUnavailable("the listening connection is closed")
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        except (OSError, ValueError) as exc:
            raise DatabaseUnavailable(f"the listening connection is unusable: {exc}") from exc
        with translate_errors():
            if ready:
                self._conn.poll()   # reads what the server sent; raises if it closed the session
                self._heard_at = time.monotonic()
            elif time.monotonic() - self._heard_at >= PING_S:
                with self._conn.cursor() as cur:
                    cur.execute(QUERIES["ping"])
                self._heard_at = time.monotonic()
        return self._drain()

    def _drain(self) -> StoredWork:
        job_ids: dict[int, None] = {}
        updates = False
        for notice in self._conn.notifies:
            if notice.channel == UPDATE_CHANNEL:
                updates = updates or not self._mine(notice.payload)
            elif notice.channel == CALLBACK_CHANNEL:
                job, _, storer = notice.payload.partition(" ")
                job_id = _job_id(job)
                if job_id is not None and not self._mine(storer):
                    job_ids[job_id] = None
        self._conn.notifies.clear()
        return StoredWork(tuple(job_ids), updates)

    def _mine(self, storer: str) -> bool:
        return self._own is not None and storer == self._own

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001, S110 - closing a broken connection may raise anything
            pass


def _job_id(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        # Not ours to trust; the sweep still finds the row it was about.
        log.warning("ignored a callback notification without a job id", extra={"action": "notify_bad_payload"})
        return None


class StoredWorkListener:
    """Relays stored-work notifications to `hooks` while this instance leads (see the module).

    `set_epoch` is a LeaderActor leadership listener: an epoch starts listening, None stops."""

    def __init__(self, dsn: str, hooks: StoredWorkHooks, *, application_name: str = "kiebot-listen",
                 instance_id: str | None = None) -> None:
        """`instance_id`: work this instance stored reaches its hooks directly, not through here."""
        self._dsn = dsn
        self._instance_id = instance_id
        self._hooks = hooks
        self._application_name = application_name
        self._conn: ListenConnection | None = None
        self._leading = threading.Event()
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kiebot-stored-work-listener", daemon=True)

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTENing session, or None when not listening."""
        conn = self._conn
        return None if conn is None else conn.backend_pid

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the connection (waits for the thread, bounded)."""
        self._stopping.set()
        self._changed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=JOIN_S)

    def set_epoch(self, epoch: int | None) -> None:
        """Leadership listener (any thread): listen while leading, close the connection when not."""
        if epoch is None:
            self._leading.clear()
        else:
            self._leading.set()
        self._changed.set()

    def _run(self) -> None:
        """Listener thread: connect while leading, relay what arrives, back off after an error."""
        try:
            while not self._stopping.is_set():
                if not self._leading.is_set():
                    self._close()
                    self._changed.wait(WAIT_S)
                    self._changed.clear()
                    continue
                try:
                    self._relay(self._connection().wait(WAIT_S))
                except DatabaseUnavailable as exc:
                    self._lost(str(exc))
                except Exception:  # the thread must outlive any one bad batch
                    log.exception("stored-work listener error", extra={"action": "notify_listener_error"})
                    self._lost("unexpected error")
        finally:
            self._close()

    def _connection(self) -> ListenConnection:
        if self._conn is None:
            self._conn = ListenConnection(self._dsn, self._application_name, own=self._instance_id)
            log.info("listening for stored work", extra={"action": "notify_listening"})
        return self._conn

    def _relay(self, work: StoredWork) -> None:
        if not self._leading.is_set():
            return      # no longer leading: the next leader's sweep and adoption find the rows
        for job_id in work.job_ids:
            self._hooks.callback_stored(job_id)
        if work.updates:
            self._hooks.update_stored()

    def _lost(self, why: str) -> None:
        # Whatever was notified meanwhile is not lost: the sweeps find the stored rows.
        log.warning("stored-work listener lost its connection (%s); reconnecting in %gs", why, RECONNECT_S,
                    extra={"action": "notify_listener_lost"})
        self._close()
        self._stopping.wait(RECONNECT_S)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
