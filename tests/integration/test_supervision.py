"""The JobSupervisor under load and faults: adopting many jobs within the work slots, surviving
a database error, and taking its JobActors down with it when it fails."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.job import JobActor, JobContext
from actors.job_state import JobState
from actors.messages import CallbackStored, Sweep, ToSupervisor
from actors.supervisor import JobSupervisor
from actors.timers import Timers
from bot_gateway import BotGateway
from config.catalogue import load_catalogue
from config.settings import DeliveryPolicy, Settings
from kie.client import KieClient
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import get_job, transition
from storage.leader_term import LockConnection
from telemetry.metrics import Metrics
from tests.support.factories import make_job, take_epoch
from tests.support.harness import start_instance
from tests.support.tcp_proxy import PgProxy
from tests.support.waiting import wait_until

LOCK_KEY = 424242
SLOTS = 3


@pytest.fixture
def kie() -> Iterator[KieSim]:
    """No account limits: nothing but the work slots may hold the JobActors back; every answer
    takes 20 ms, so JobActors that are not held back overlap at KIE."""
    with KieSim(default_duration_s=0.2, rate_limits=False, response_delay_s=0.02) as sim:
        yield sim


def stuck_jobs(db: Database, epoch: int, kie: KieSim, telegram: TelegramSim, callback_base: str,
               n: int) -> dict[int, str]:
    """n jobs in `submitted` for n users who have talked to the bot, each with a real KIE task
    that will not finish by itself."""
    for i in range(n):
        telegram.user_sends(50_000 + i, "hi")
    client = KieClient(kie.url, kie.api_key, pacing=False)
    kie.script_next(Fate(outcome="stuck"), count=n)
    tasks: dict[int, str] = {}
    for i in range(n):
        job = make_job(db, epoch, JobState.SUBMITTING, chat_id=50_000 + i)
        task_id = client.create_task(job.model, job.input,
                                     f"{callback_base}/kie/callback/{job.id}?token={job.callback_token}")
        transition(db, job.id, JobState.SUBMITTING, JobState.SUBMITTED, epoch, kie_task_id=task_id)
        tasks[job.id] = task_id
    return tasks


def test_a_new_leader_adopts_many_jobs_within_its_slots_and_delivers_each_once(
        database_url: str, db: Database, kie: KieSim, telegram: TelegramSim) -> None:
    n = 60
    holder = LockConnection(database_url, LOCK_KEY)     # we lead first, as an earlier leader would
    assert holder.try_lock()
    epoch = holder.bump_epoch("test")
    inst = start_instance(database_url, kie, telegram, instance_id="adopter", KIEBOT_LEADER_LOCK_KEY=str(LOCK_KEY),
                          KIEBOT_JOB_SLOTS=str(SLOTS), KIEBOT_CLIENT_PACING="off", KIEBOT_POLL_BASE_S="30")
    try:
        tasks = stuck_jobs(db, epoch, kie, telegram, inst.url, n)
        holder.release_and_notify("test")
        wait_until(lambda: inst.runtime.status.active, timeout=10, what="the instance takes over")
        wait_until(lambda: len(pykka.ActorRegistry.get_by_class(JobActor)) == n, timeout=20,
                   what="every job adopted")
        for task_id in tasks.values():
            kie.complete_now(task_id)           # every callback arrives at once
        wait_until(lambda: all(get_job(db, j).state == JobState.DELIVERED for j in tasks),  # type: ignore[union-attr]
                   timeout=60, what="every job delivered")
        photos = list(telegram.calls("sendPhoto"))
        assert sorted(int(c.params["chat_id"]) for c in photos) == [50_000 + i for i in range(n)]
        assert 1 <= kie.peak_in_flight <= SLOTS, "more JobActors worked at once than there are slots"
    finally:
        inst.runtime.stop()
        holder.close()


def test_a_failed_supervisor_takes_its_job_actors_with_it(
        database_url: str, db: Database, kie: KieSim, telegram: TelegramSim) -> None:
    stuck_jobs(db, take_epoch(database_url), kie, telegram, "http://127.0.0.1:9", 3)
    inst = start_instance(database_url, kie, telegram, instance_id="failing", KIEBOT_POLL_BASE_S="30")
    try:
        wait_until(lambda: len(pykka.ActorRegistry.get_by_class(JobActor)) == 3, timeout=10, what="jobs adopted")
        actors = pykka.ActorRegistry.get_by_class(JobActor)
        assert inst.runtime.leader is not None
        inst.runtime.leader.tell(ToSupervisor(object()))   # a message it cannot handle: it fails
        for ref in actors:
            assert ref.actor_stopped.wait(10), "a JobActor outlived its failed supervisor"
    finally:
        inst.runtime.stop()


def test_a_database_error_while_routing_a_callback_costs_one_message_not_the_supervisor(
        database_url: str, db: Database, kie: KieSim, telegram: TelegramSim) -> None:
    proxy = PgProxy(database_url)
    proxied = Database(proxy.url)
    gateway = BotGateway(Settings.from_env({"TELEGRAM_BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.url,
                                            "KIE_API_KEY": "x"}), db, load_catalogue(), Metrics(), lambda _: None)
    timers = Timers()
    epoch = take_epoch(database_url)
    ctx = JobContext(db=proxied, kie=KieClient(kie.url, kie.api_key), sender=gateway.presenter_for(epoch),
                     timers=timers, catalogue=load_catalogue(), metrics=Metrics(), epoch=epoch, public_url=None,
                     confirm_callbacks=True, hmac_required=False, delivery_policy=DeliveryPolicy.AT_LEAST_ONCE,
                     poll_base_s=30, delivery_grace_s=1)
    supervisor: pykka.ActorRef[Any] = JobSupervisor.start(ctx)
    try:
        supervisor.ask(Sweep(), timeout=10)                 # on_start has adopted (nothing)
        proxy.cut()
        supervisor.ask(CallbackStored(12345), timeout=40)  # no actor: it reads the job, and fails to
        assert supervisor.is_alive()
        proxy.restore()
        supervisor.ask(Sweep(), timeout=40)
        assert supervisor.is_alive()
    finally:
        supervisor.stop()
        timers.stop()
        gateway.stop()                                      # never started: closes its loops
        proxied.close()
        proxy.close()
