"""A Hypothesis state machine drives one job's JobActor through random interleavings of
genuine, duplicated, late and forged callbacks, its own polling, supervisor restarts and
epoch changes, against real Postgres and both simulators, and checks after every step:

- at most one delivery claim per epoch;
- a final state never changes;
- nothing is delivered unless KIE really succeeded, and then with KIE's own result;
- at most one photo is sent, and once KIE succeeds the job is delivered exactly once.
"""
from __future__ import annotations

import json
import uuid
from typing import Any

import pykka
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from actors.job import JobContext
from actors.job_state import TERMINAL, JobState
from actors.messages import CallbackStored
from actors.supervisor import JobSupervisor
from actors.timers import Timers
from bot_gateway import BotGateway
from config.catalogue import load_catalogue
from config.settings import Settings
from kie.client import KieClient
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage import inbox
from storage.db import Database
from storage.jobs import NewJob, create_job, get_job, job_events
from telemetry.metrics import Metrics
from tests.conftest import TEMPLATE, _admin, drop_database, with_database
from tests.support.factories import take_epoch
from tests.support.waiting import wait_until

USER = 7777


class JobActorMachine(RuleBasedStateMachine):
    admin_url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.name = f"kiebot_h_{uuid.uuid4().hex[:10]}"
        _admin(self.admin_url, f'CREATE DATABASE "{self.name}" TEMPLATE "{TEMPLATE}"')
        self.url = with_database(self.admin_url, self.name)
        self.db = Database(self.url)
        self.kie = KieSim(default_duration_s=0.2).start()
        self.kie.script_next(Fate(outcome="stuck"))
        self.telegram = TelegramSim().start()
        self.telegram.user_sends(USER, "hi")
        env = {"TELEGRAM_BOT_TOKEN": self.telegram.token, "TELEGRAM_API_URL": self.telegram.url, "KIE_API_KEY": "x"}
        self.gateway = BotGateway(Settings.from_env(env), self.db, load_catalogue(), Metrics(), lambda job_id: None)
        self.gateway.start()
        self.timers = Timers()
        self.kie_client = KieClient(self.kie.url, self.kie.api_key)
        self.epoch = take_epoch(self.url)
        self.job, _ = create_job(self.db, NewJob("h:1", USER, USER, "en", "z-image",
                                                 {"prompt": "a fox", "aspect_ratio": "1:1"}, 900))
        self.seen_terminal: JobState | None = None
        self.kie_succeeded = False
        self.supervisor: pykka.ActorRef[Any] | None = None
        self.start_supervisor()
        # Rules start once KIE has the task, so that what a rule may do never depends on timing.
        wait_until(self.task_id, timeout=10, what="job submitted")

    def ctx(self) -> JobContext:
        return JobContext(db=self.db, kie=self.kie_client, sender=self.gateway.sender, timers=self.timers,
                          catalogue=load_catalogue(), metrics=Metrics(), epoch=self.epoch, public_url=None,
                          confirm_callbacks=True, hmac_required=False, delivery_policy="at_least_once",
                          poll_base_s=0.05, delivery_grace_s=0.5)

    def start_supervisor(self) -> None:
        self.supervisor = JobSupervisor.start(self.ctx())

    def task_id(self) -> str | None:
        job = get_job(self.db, self.job.id)
        return job.kie_task_id if job else None

    def store_callback(self, body: dict[str, Any]) -> None:
        inbox.store_callback(self.db, self.job.id, body, None, "hypothesis")
        if self.supervisor is not None and self.supervisor.is_alive():
            self.supervisor.tell(CallbackStored(self.job.id))

    def body(self, state: str, urls: list[str]) -> dict[str, Any]:
        return {"code": 200 if state == "success" else 501,
                "data": {"taskId": self.task_id(), "state": state,
                         "resultJson": json.dumps({"resultUrls": urls}) if urls else ""}}

    # --- rules ------------------------------------------------------------------------------
    @precondition(lambda self: not self.kie_succeeded)
    @rule()
    def kie_finishes(self) -> None:
        task = self.task_id()
        assert task is not None
        self.kie.complete_now(task)
        self.kie_succeeded = True

    @rule(copies=st.integers(1, 3))
    def genuine_callback(self, copies: int) -> None:
        task = self.kie.tasks().get(self.task_id() or "", {})
        state = "success" if task.get("state") == "success" else "generating"
        for _ in range(copies):
            self.store_callback(self.body(state, list(task.get("resultUrls") or [])))

    @rule()
    def forged_callback(self) -> None:
        self.store_callback(self.body("success", ["http://127.0.0.1:9/forged.png"]))

    @rule()
    def callback_naming_another_task(self) -> None:
        self.store_callback({"code": 200, "data": {"taskId": "0" * 32, "state": "success",
                                                   "resultJson": json.dumps({"resultUrls": ["http://x/y.png"]})}})

    @rule()
    def supervisor_restarts(self) -> None:
        assert self.supervisor is not None
        self.supervisor.stop()
        self.start_supervisor()

    @rule()
    def leadership_changes(self) -> None:
        assert self.supervisor is not None
        self.supervisor.stop()
        self.epoch = take_epoch(self.url)
        self.start_supervisor()

    # --- invariants -------------------------------------------------------------------------
    @invariant()
    def at_most_one_claim_per_epoch(self) -> None:
        claims = [e["epoch"] for e in job_events(self.db, self.job.id) if e["to_state"] == "delivering"]
        assert len(claims) == len(set(claims)), f"two claims in one epoch: {claims}"

    @invariant()
    def final_states_stay_final(self) -> None:
        job = get_job(self.db, self.job.id)
        assert job is not None
        if self.seen_terminal is not None:
            assert job.state == self.seen_terminal
        elif job.state in TERMINAL:
            self.seen_terminal = job.state

    @invariant()
    def nothing_is_delivered_without_confirmed_success(self) -> None:
        job = get_job(self.db, self.job.id)
        assert job is not None
        if job.outcome == "success":
            assert self.kie_succeeded, "a result was accepted before KIE succeeded"
            assert job.result_urls == self.kie.tasks()[job.kie_task_id or ""]["resultUrls"]
        assert len(self.telegram.calls("sendPhoto")) <= 1

    def teardown(self) -> None:
        try:
            if self.supervisor is not None and self.supervisor.is_alive() and self.task_id():
                if not self.kie_succeeded:
                    self.kie.complete_now(self.task_id() or "")
                    self.kie_succeeded = True
                wait_until(lambda: (j := get_job(self.db, self.job.id)) and j.state == JobState.DELIVERED,
                           timeout=20, what="delivered once KIE succeeded")
                assert len(self.telegram.calls("sendPhoto")) == 1
        finally:
            if self.supervisor is not None:
                self.supervisor.stop()
            self.timers.stop()
            self.gateway.stop()
            self.telegram.stop()
            self.kie.stop()
            self.db.close()
            drop_database(self.admin_url, self.name)


def test_job_actor_state_machine(pg_admin_url: str, template_url: str) -> None:
    JobActorMachine.admin_url = pg_admin_url
    case = JobActorMachine.TestCase
    case.settings = settings(max_examples=12, stateful_step_count=8, deadline=None, derandomize=True,
                             suppress_health_check=list(HealthCheck))
    case().runTest()
