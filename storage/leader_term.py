"""The leadership lock connection and the single-row leader_term table.

`LockConnection` is the dedicated, non-pooled, autocommit connection (with TCP keepalives)
that only actors/leader.py uses: one non-blocking lock attempt, a check that the lock is still
held, the epoch bump, graceful release with NOTIFY, and LISTEN for standbys.

A leader that goes silent (partitioned, hung, behind a proxy that keeps the sockets open) must
not keep the lock: the server ends this session once it has been idle for `silence_s`
(idle_session_timeout, PostgreSQL >= 14), which releases the lock. Its owner talks to it every
half second, so a live owner never gets there. Server and client TCP timeouts catch a dead
network sooner, and no query waits on the server for more than LOCK_ANSWER_S.
"""
from __future__ import annotations

import math
import select
import time
from typing import Any

from storage.db import QUERIES, DatabaseUnavailable, connect, session_options, socket_of, translate_errors

LOCK_STATEMENT_TIMEOUT_S = 5.0  # lock queries are instant; a slow one means trouble
LOCK_ANSWER_S = LOCK_STATEMENT_TIMEOUT_S + 1.0  # the client gives up just after the server would


def lock_session_options(silence_s: float) -> str:
    """Server settings that end the session (and free the lock) once it is silent for `silence_s`."""
    silence_ms = max(1, round(silence_s * 1000))
    return session_options(
        idle_session_timeout=silence_ms,
        statement_timeout=round(LOCK_STATEMENT_TIMEOUT_S * 1000),
        # Probe an idle peer after a third of the budget, then every second, 3 times.
        tcp_keepalives_idle=max(1, math.floor(silence_s / 3)), tcp_keepalives_interval=1,
        tcp_keepalives_count=3,
        tcp_user_timeout=silence_ms)   # data the leader never acknowledges


class LockConnection:
    def __init__(self, dsn: str, key: int, application_name: str = "kiebot-leader", *,
                 silence_s: float = 15.0) -> None:
        if not -(2**63) <= key < 2**63:
            raise ValueError("leader lock key must be an int64")
        if silence_s <= 0:
            raise ValueError("silence_s must be positive")
        self.key = key
        self._conn = connect(dsn, autocommit=True, application_name=application_name,
                             options=lock_session_options(silence_s), answer_timeout_s=LOCK_ANSWER_S)
        with translate_errors():
            self._pid = int(self._fetch("SELECT pg_backend_pid() AS pid")["pid"])

    @property
    def backend_pid(self) -> int:
        return self._pid

    def _fetch(self, sql: str, **params: Any) -> dict[str, Any]:
        with translate_errors(), self._conn.cursor() as cur:
            cur.execute(sql, params)
            cols = [c.name for c in cur.description]
            row = cur.fetchone()
        return dict(zip(cols, row, strict=True)) if row else {}

    def try_lock(self) -> bool:
        return bool(self._fetch(QUERIES["try_leader_lock"], key=self.key)["locked"])

    def lock_held(self) -> bool:
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        return bool(self._fetch(QUERIES["leader_lock_held"], classid=unsigned >> 32,
                                objid=unsigned & 0xFFFF_FFFF)["held"])

    def bump_epoch(self, holder: str) -> int:
        return int(self._fetch(QUERIES["bump_epoch"], holder=holder)["epoch"])

    def release_and_notify(self, holder: str) -> None:
        """Graceful resign: unlock and NOTIFY on this same connection."""
        self._fetch(QUERIES["release_leader_lock"], key=self.key)
        self._fetch(QUERIES["notify_resigned"], holder=holder)

    def listen(self) -> None:
        with translate_errors(), self._conn.cursor() as cur:
            cur.execute(QUERIES["listen_leader"])

    def wait_readable(self, timeout: float) -> bool:
        """Block up to `timeout` s until the server sends something (a NOTIFY); reads nothing,
        so another thread may use the connection meanwhile."""
        fd = socket_of(self._conn)
        if fd is None:
            time.sleep(timeout)     # closed or broken: the owner sees it on its next query
            return False
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def wait_for_notify(self, timeout: float) -> bool:
        """Block up to `timeout` s for a NOTIFY; True if one arrived."""
        fd = socket_of(self._conn)
        if fd is None:
            raise DatabaseUnavailable("lock connection is closed")
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        except (OSError, ValueError) as exc:
            raise DatabaseUnavailable(f"lock connection unusable: {exc}") from exc
        if not ready:
            return False
        with translate_errors():
            self._conn.poll()
        got = bool(self._conn.notifies)
        self._conn.notifies.clear()
        return got

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001, S110 - closing a broken connection may raise anything
            pass
