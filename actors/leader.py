"""LeaderActor: which instance leads, decided by one Postgres advisory lock.

States::

    passive ──(pg_try_advisory_lock = true; epoch += 1)──► active(epoch)
       ▲                                                     │
       └──── lock check fails / connection error / doubt ◄───┤
       └──── Resign (SIGTERM): unlock + NOTIFY, then stop ◄───┘

- The lock is session-level, on a dedicated autocommit connection with TCP keepalives
  (storage.leader_term.LockConnection). Acquisition is one non-blocking call; its answer is
  the only truth. A held lock is never requested again (advisory locks stack).
- The epoch (`leader_term.epoch`) is the term's identity and the fencing token: it is bumped
  on every acquisition, and every job transition, delivery claim and inbox consumption checks
  it in the same statement. Postgres is authoritative for both the lock and the epoch.
- Local time is used only to stop trusting the lock sooner: if no check has confirmed it for
  LOCK_TRUST_S, the watchdog stops the supervisor without waiting for the actor.
- Reasons to leave `active`: the lock check says not held, any database error on the lock
  connection, the watchdog, Resign. When in doubt, step down: a standby takes over within a
  second, while two leaders would send twice.
- Passive instances retry every ACQUIRE_RETRY_INTERVAL_S and wake at once on the NOTIFY a
  resigning leader sends.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from actors.messages import Resign, Tick, ToSupervisor
from storage.db import DatabaseError
from storage.leader_term import LockConnection
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)

LOCK_CHECK_INTERVAL_S = 0.5
ACQUIRE_RETRY_INTERVAL_S = 0.5
LOCK_TRUST_S = 2.0
SUPERVISOR_STOP_TIMEOUT_S = 30.0     # its JobActors may be finishing a send on the wire

class LeadershipStatus:
    """What /health and /ready read from other threads; written only by the LeaderActor."""

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.distrusted = False         # the watchdog gave up on this epoch's lock
        self.db_ok = False
        self.last_error: str | None = None

    @property
    def active(self) -> bool:
        return self.epoch is not None and not self.distrusted

    def holds(self, epoch: int) -> bool:
        """May this instance still act (send) for `epoch`? Read by FloodControl at dispatch."""
        return self.epoch == epoch and not self.distrusted


SupervisorFactory = Callable[[int], pykka.ActorRef[Any]]
LeadershipListener = Callable[[int | None], None]


class LeaderActor(pykka.ThreadingActor):
    def __init__(self, dsn: str, key: int, instance_id: str, start_supervisor: SupervisorFactory,
                 listeners: list[LeadershipListener], metrics: Metrics,
                 status: LeadershipStatus | None = None, lock_silence_s: float = 15.0) -> None:
        super().__init__()
        self.dsn, self.key, self.instance_id = dsn, key, instance_id
        self.lock_silence_s = lock_silence_s
        self.start_supervisor = start_supervisor
        self.listeners = listeners
        self.metrics = metrics
        self.status = status or LeadershipStatus()
        self.supervisor: pykka.ActorRef[Any] | None = None
        self._conn: LockConnection | None = None
        self._last_confirmed = 0.0
        self._tick_idle = threading.Event()     # no Tick queued or being handled
        self._tick_idle.set()
        self._stopping = threading.Event()
        self._resigned = False
        self._ticker = threading.Thread(target=self._tick_loop, name="kiebot-leader-ticker", daemon=True)

    # --- pykka hooks ------------------------------------------------------------------------
    def on_start(self) -> None:
        """Leader thread. Tries the lock at once, then leaves the timing to the ticker."""
        self._tick_idle.clear()
        self.actor_ref.tell(Tick())
        self._ticker.start()

    def on_receive(self, message: Any) -> Any:
        """Leader thread. Errors are handled inside each state method; nothing escapes."""
        match message:
            case Tick():
                try:
                    if self.epoch is None:
                        self._run_passive()
                    else:
                        self._run_active()
                finally:
                    self._tick_idle.set()
            case Resign():
                self._resign()
            case ToSupervisor(message=inner):
                if self.supervisor is not None and self.supervisor.is_alive():
                    self.supervisor.tell(inner)
            case _:
                raise TypeError(f"LeaderActor got an unknown message: {message!r}")

    def on_stop(self) -> None:
        """Leader thread. Resigns if active, then closes the lock connection."""
        self._stopping.set()
        self._resign()
        self._ticker.join(timeout=2)

    # --- states -----------------------------------------------------------------------------
    def _run_passive(self) -> None:
        if self._resigned:
            return None
        try:
            conn = self._connection()
            conn.wait_for_notify(0)          # drain any NOTIFY that woke us
            if not conn.try_lock():
                self.status.db_ok = True
                return None
            epoch = conn.bump_epoch(self.instance_id)
        except DatabaseError as exc:
            return self._lose_connection(exc)
        self.status.db_ok = True
        self._last_confirmed = time.monotonic()
        self.status.distrusted = False
        self.epoch = epoch
        log.info("became leader with epoch %d", epoch, extra={"action": "leader_active", "epoch": epoch})
        self.metrics.leader_active.set(1)
        self.metrics.leader_epoch.set(epoch)
        self.metrics.leadership_changes.labels("active").inc()
        try:
            self.supervisor = self.start_supervisor(epoch)
        except Exception as exc:  # noqa: BLE001 - a supervisor that cannot start means step down
            log.error("supervisor failed to start: %s", exc, extra={"action": "supervisor_start_failed"})
            return self._step_down("supervisor failed to start", release=True)
        self._notify(epoch)
        return None

    def _run_active(self) -> None:
        assert self._conn is not None
        try:
            held = self._conn.lock_held()
        except DatabaseError as exc:
            return self._lose_connection(exc)
        if not held:
            return self._step_down("lock no longer held")
        if self.status.distrusted:
            return self._step_down("the watchdog stopped this term's work", release=True)
        if self.supervisor is not None and not self.supervisor.is_alive():
            return self._step_down("supervisor stopped", release=True)
        self._last_confirmed = time.monotonic()
        self.status.db_ok = True
        return None

    def _step_down(self, why: str, *, release: bool = False) -> None:
        """In this order: stop trusting the epoch (/health says passive, and every send queued
        for it is refused at dispatch), stop the Telegram intake, release the lock when asked
        (a standby takes over at once), then stop the supervisor, whose JobActors finish any
        send already on the wire and record it under their own claim."""
        epoch = self.epoch
        log.warning("stepping down from epoch %s: %s", epoch, why, extra={"action": "leader_passive", "epoch": epoch})
        self.epoch = None
        self.metrics.leader_active.set(0)
        self.metrics.leader_epoch.set(0)
        self.metrics.leadership_changes.labels("passive").inc()
        self._notify(None)
        if release and self._conn is not None:
            try:
                self._conn.release_and_notify(self.instance_id)
            except DatabaseError as exc:
                self._lose_connection(exc)
        self._stop_supervisor()

    def _resign(self) -> None:
        """Graceful: stop work first, then release the lock and wake the standbys. A resigned
        instance never takes the lock again (it is shutting down)."""
        self._resigned = True
        if self.epoch is not None:
            self._step_down("resigning", release=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _lose_connection(self, exc: Exception) -> None:
        self.status.last_error = str(exc)
        self.status.db_ok = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.epoch is not None:
            self._step_down(f"lock connection failed: {exc}")
        else:
            log.warning("cannot reach the database for leadership: %s", exc, extra={"action": "leader_db_down"})

    # --- helpers ----------------------------------------------------------------------------
    def _connection(self) -> LockConnection:
        if self._conn is None:
            self._conn = LockConnection(self.dsn, self.key, application_name=f"kiebot-leader-{self.instance_id}",
                                        silence_s=self.lock_silence_s)
            self._conn.listen()
        return self._conn

    def _stop_supervisor(self) -> None:
        if self.supervisor is not None:
            try:
                self.supervisor.stop(block=True, timeout=SUPERVISOR_STOP_TIMEOUT_S)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
            self.supervisor = None

    def _notify(self, epoch: int | None) -> None:
        for listener in self.listeners:
            try:
                listener(epoch)
            except Exception:  # one listener's bug must not keep a leader active
                log.exception("leadership listener failed", extra={"action": "listener_failed"})

    def _tick_loop(self) -> None:
        """Ticker thread: wakes the actor on time or on NOTIFY, and watches the lock's age."""
        while not self._stopping.is_set():
            try:
                self._tick_once()
            except pykka.ActorDeadError:
                return
            except Exception:  # the ticker must outlive any one bad tick
                log.exception("leader ticker error", extra={"action": "ticker_error"})
                self._stopping.wait(ACQUIRE_RETRY_INTERVAL_S)

    def _tick_once(self) -> None:
        """Wait one interval (passive: or until a NOTIFY), then tell one Tick if none is queued.

        It first lets the last Tick finish (normally at once): a passive Tick drains the
        NOTIFYs, so the socket is quiet again before the next wait; waiting blindly instead
        would miss a resigning leader's NOTIFY half of the time."""
        interval = LOCK_CHECK_INTERVAL_S if self.epoch is not None else ACQUIRE_RETRY_INTERVAL_S
        self._tick_idle.wait(interval)
        conn = self._conn
        if conn is not None and self.epoch is None and self._tick_idle.is_set():
            conn.wait_readable(interval)
        else:
            self._stopping.wait(interval)
        self._watchdog()
        if self._tick_idle.is_set() and not self._stopping.is_set():
            self._tick_idle.clear()
            self.actor_ref.tell(Tick())

    def _watchdog(self) -> None:
        """Ticker thread: the lock check is stuck (a silent network), so the lock is no longer
        trusted: stop sending for the epoch, stop the intake and the supervisor, without
        waiting for the actor; its next check steps down for good."""
        supervisor = self.supervisor
        epoch = self.epoch
        if epoch is not None and not self.status.distrusted \
                and time.monotonic() - self._last_confirmed > LOCK_TRUST_S:
            log.warning("lock not confirmed for %.1fs; stopping work", LOCK_TRUST_S,
                        extra={"action": "leader_watchdog"})
            self.status.distrusted = True
            self._notify(None)
            if supervisor is not None:
                supervisor.stop(block=False)

    @property
    def epoch(self) -> int | None:
        return self.status.epoch

    @epoch.setter
    def epoch(self, value: int | None) -> None:
        self.status.epoch = value
