"""The leadership lock connection and the single-row leader_term table.

`LockConnection` is the dedicated, non-pooled, autocommit connection (with TCP keepalives)
that only actors/leader.py uses: one non-blocking lock attempt, a check that the lock is still
held, the epoch bump, graceful release with NOTIFY, and LISTEN for standbys.
"""
from __future__ import annotations

import select
import time
from typing import Any

from storage.db import QUERIES, DatabaseUnavailable, connect, socket_of, translate_errors


class LockConnection:
    def __init__(self, dsn: str, key: int, application_name: str = "kiebot-leader", *,
                 silence_s: float = 15.0) -> None:
        if not -(2**63) <= key < 2**63:
            raise ValueError("leader lock key must be an int64")
        self.key = key
        self._conn = connect(dsn, autocommit=True, application_name=application_name)
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
        return dict(zip(cols, row)) if row else {}

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
        except Exception:  # noqa: BLE001 - closing a broken connection may raise anything
            pass
