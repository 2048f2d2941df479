"""runtime: builds one kiebot instance from settings, starts it in order, stops it in reverse.

Order: database and migrations, metrics, KIE client, bot gateway, HTTP gateway, timers, the
stored-work listener, then the LeaderActor (which starts the JobSupervisor when it wins the lock,
and the listener listening). Stop resigns leadership first, so a standby takes over at once,
then closes the rest.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

import pykka

from actors.job import JobContext
from actors.leader import SUPERVISOR_STOP_TIMEOUT_S, LeaderActor, LeadershipStatus
from actors.messages import CallbackStored, CancelJob, JobCreated, Resign, ToSupervisor
from actors.retention import RetentionConfig
from actors.supervisor import JobSupervisor
from actors.timers import Timers
from actors.work_slots import WorkSlots
from bot.operator_pager import TelegramOperatorPager
from bot.stars_account import TelegramStarsAccount
from bot_gateway import BotGateway
from config.catalogue import load_catalogue
from config.pricing import load_pricing
from config.settings import Settings
from http_gateway import GatewayHooks, HttpGateway
from kie.client import KieClient
from storage import jobs
from storage.db import Database
from storage.embedded import start_embedded
from storage.migrate import migrate
from storage.notifications import StoredWorkHooks, StoredWorkListener
from telemetry.metrics import DatabaseGauges, Metrics

log = logging.getLogger(__name__)


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded Postgres in KIEBOT_DATA_DIR."""
    return settings.database_url or start_embedded(settings.data_dir)


class Runtime:
    def __init__(self, settings: Settings, database_url: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.catalogue = load_catalogue()
        self.pricing = load_pricing(self.catalogue, settings.pricing_file)     # ConfigError: exit 2
        self.metrics = Metrics()
        self.db = Database(database_url, application_name=f"kiebot-{settings.instance_id}")
        self.metrics.watch_database(lambda: DatabaseGauges(*jobs.database_gauges(self.db)))
        self.kie = KieClient(settings.kie_api_url, settings.kie_api_key, upload_url=settings.kie_upload_url,
                             observe=self.metrics.observe_kie_request, pacing=settings.client_pacing)
        self.status = LeadershipStatus()
        self.timers: Timers | None = None
        self.leader: pykka.ActorRef[Any] | None = None
        # The port is bound first: when it is taken (ListenError), nothing with a thread, a loop or
        # a socket has been made yet, so nothing is left open.
        self.http = HttpGateway(settings.http_host, settings.http_port, self.db, self.metrics, GatewayHooks(
            status=self.health, ready=self.ready,
            callback_stored=self._callback_stored, update_stored=self._update_stored,
            leading=lambda: self.status.active),
            instance_id=settings.instance_id, hmac_key=settings.kie_webhook_hmac_key,
            webhook_secret=settings.telegram_webhook_secret)
        self.bot = BotGateway(settings, self.db, self.catalogue, self.metrics, self._to_supervisor_job,
                              lambda job_id: self._tell_supervisor(CancelJob(job_id)), holds_epoch=self.status.holds,
                              pricing=self.pricing)
        # Work stored by another instance reaches this one through the same hooks at once while
        # it leads (what this one stored reached them directly, so its own notifications are skipped).
        self.listener = StoredWorkListener(database_url, StoredWorkHooks(
            callback_stored=self._callback_stored, update_stored=self.bot.wake),
            application_name=f"kiebot-listen-{settings.instance_id}", instance_id=settings.instance_id)
        self._stopped = threading.Event()

    def start(self) -> None:
        if not self.settings.client_pacing:
            log.warning("KIEBOT_CLIENT_PACING=off: KIE calls and Telegram sends are not paced "
                        "(benchmarks against simulators only)", extra={"action": "pacing_off"})
        migrate(self.database_url)
        self.http.start()
        self.bot.start()
        self.timers = Timers()
        self.listener.start()
        self.leader = LeaderActor.start(
            self.database_url, self.settings.leader_lock_key, self.settings.instance_id,
            self._start_supervisor, [self.bot.set_epoch, self.listener.set_epoch], self.metrics, self.status,
            lock_silence_s=self.settings.lock_silence_s)
        log.info("instance %s started; http on port %d", self.settings.instance_id, self.http.port,
                 extra={"action": "started"})

    def _start_supervisor(self, epoch: int) -> pykka.ActorRef[Any]:
        assert self.timers is not None
        s = self.settings
        ctx = JobContext(db=self.db, kie=self.kie, sender=self.bot.presenter_for(epoch), timers=self.timers,
                         catalogue=self.catalogue, metrics=self.metrics, epoch=epoch, public_url=s.public_url,
                         confirm_callbacks=s.kie_confirm_callbacks, hmac_required=bool(s.kie_webhook_hmac_key),
                         delivery_policy=s.delivery_policy, poll_base_s=s.poll_base_s,
                         delivery_grace_s=s.delivery_grace_s, slots=WorkSlots(s.job_slots),
                         retention=RetentionConfig(updates_days=s.retention_updates_days,
                                                   callbacks_days=s.retention_callbacks_days,
                                                   events_days=s.retention_events_days),
                         pager=TelegramOperatorPager(self.bot.sender.for_epoch(epoch), s.admin_ids, self.db),
                         stars=TelegramStarsAccount(self.bot.sender.for_epoch(epoch)))
        self.metrics.job_actors_waiting.set_function(lambda: ctx.slots.waiting)
        return JobSupervisor.start(ctx)

    def _tell_supervisor(self, message: Any) -> None:
        if self.leader is not None:
            try:
                self.leader.tell(ToSupervisor(message))
            except pykka.ActorDeadError:
                pass

    def _callback_stored(self, job_id: int) -> None:
        self._tell_supervisor(CallbackStored(job_id))

    def _update_stored(self) -> None:
        self.bot.wake()

    def _to_supervisor_job(self, job_id: int) -> None:
        self._tell_supervisor(JobCreated(job_id))

    def health(self) -> dict[str, Any]:
        """Never raises and never waits on the database: it reports what the leader last saw."""
        return {"status": "ok" if self.status.db_ok else "degraded", "active": self.status.active,
                "instance_id": self.settings.instance_id, "epoch": self.status.epoch,
                "queue_depth": self.timers.pending() if self.timers else 0,
                "db": "ok" if self.status.db_ok else "down"}

    def ready(self) -> bool:
        return self.status.db_ok

    def stop(self) -> None:
        """Resign first (a standby takes over at once), then stop the rest in reverse."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.leader is not None:
            try:
                # Releases the lock at once, then waits for sends on the wire to be recorded.
                self.leader.ask(Resign(), timeout=SUPERVISOR_STOP_TIMEOUT_S + 10)
                self.leader.stop(timeout=15)
            except (pykka.ActorDeadError, pykka.Timeout):
                pass
        self.listener.stop()
        self.bot.stop()     # waits (bounded) for any request still on the wire
        self.http.stop()
        if self.timers is not None:
            self.timers.stop()
        self.db.close()
        log.info("instance %s stopped", self.settings.instance_id, extra={"action": "stopped"})

    def run_until_signalled(self) -> None:
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        while not done.wait(0.5):
            pass
        started = time.monotonic()
        self.stop()
        log.info("shutdown took %.2fs", time.monotonic() - started, extra={"action": "shutdown"})
