"""A Hypothesis state machine drives one job's JobActor through random interleavings of
genuine, duplicated, late and forged callbacks, its own polling, supervisor restarts, epoch
changes (some with a send queued behind a 429), sends whose answer is lost, and dropped
database connections, against real Postgres and both simulators. The job's result has 1-12 files, so its delivery is one photo,
or one or two albums and then the buttons message. After every step it checks:

- at most one delivery claim per epoch, but for takeovers in the same epoch that a step caused
  (a lost answer, a JobActor crashed by a dropped connection, a claim handed back on a restart);
- a final state never changes;
- nothing is delivered unless KIE really succeeded, and then with KIE's own result;
- no part of the delivery (a photo, by its source URL, or the buttons) reaches the chat twice,
  but for one extra copy per send whose answer a step made the simulator swallow;
- nothing leaves for Telegram after this instance gave up an epoch, but for requests already
  on the wire (the rest are refused at dispatch);
and once the machine settles: the job is delivered (never left `delivering`), and every part is
in the chat once as recorded, plus only the copies whose answer was lost.
"""
from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from typing import Any

import pykka
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from actors.job import JobContext
from actors.job_state import TERMINAL, JobState
from actors.messages import CallbackStored
from actors.supervisor import JobSupervisor
from actors.timers import Timers
from bot.loop_thread import run_on_loop
from bot_gateway import BotGateway
from config.catalogue import load_catalogue
from config.settings import DeliveryPolicy, Settings
from kie.client import KieClient
from sim import cluster
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import Call, TelegramSim
from storage import inbox
from storage.db import Database
from storage.jobs import Job, NewJob, create_job, created, get_job, job_events
from telemetry.metrics import Metrics
from tests.conftest import TEMPLATE, _admin, drop_database, with_database
from tests.support.factories import take_epoch
from tests.support.waiting import wait_until

USER = 7777
ALBUM_MAX = 10
SEND_METHODS = frozenset({"sendPhoto", "sendMediaGroup", "sendMessage", "editMessageText"})
INLINE_RETRY_S = 2      # a 429 this short is waited out inside FloodControl: the send stays queued
ACTOR_RETRY_S = 6       # this long goes back to the JobActor, which waits holding a clean claim
SUPERVISOR_STARTS = 5   # a start whose adoption read meets a dropped connection is tried again


def method_of_part(result_count: int, index: int) -> str:
    """The Bot API method that sends part `index` of a delivery of `result_count` photos."""
    if result_count == 1:
        return "sendPhoto"
    return "sendMediaGroup" if index < math.ceil(result_count / ALBUM_MAX) else "sendMessage"


def photo_sources(call: Call) -> list[str]:
    """The source URL of every photo a performed call put in the chat."""
    if call.status != 200:
        return []
    if call.method == "sendPhoto":
        return [str(call.params["photo"])]
    if call.method == "sendMediaGroup":
        return [str(item["media"]) for item in call.params["media"]]
    return []


def message_ids(call: Call) -> list[int]:
    """The ids of the messages a performed call created (also when its answer was lost)."""
    result = call.response.get("result")
    messages = result if isinstance(result, list) else [result]
    return [int(m["message_id"]) for m in messages if isinstance(m, dict)]


class JobActorMachine(RuleBasedStateMachine):
    admin_url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.name = f"kiebot_h_{uuid.uuid4().hex[:10]}"
        cluster.create_database(self.admin_url, self.name, template=TEMPLATE)
        self.url = with_database(self.admin_url, self.name)
        # The actors' pool is the one whose connections a rule drops; the test reads through
        # its own, so that its checks never meet (or heal) a dropped connection.
        self.pool_name = f"kiebot-{self.name}"
        self.db = Database(self.url, application_name=self.pool_name)
        self.observer = Database(self.url, application_name="kiebot-tests-observer")
        self.kie = KieSim(default_duration_s=0.2).start()
        self.telegram = TelegramSim().start()
        self.telegram.user_sends(USER, "hi")
        # Unpaced: a paced chat makes a 12-photo delivery last 13 s, and this machine is about the
        # JobActor, not FloodControl's spacing; a 429's retry_after is obeyed all the same.
        env = {"TELEGRAM_BOT_TOKEN": self.telegram.token, "TELEGRAM_API_URL": self.telegram.url,
               "KIE_API_KEY": "x", "KIEBOT_CLIENT_PACING": "off"}
        self.held: int | None = None     # the epoch this instance may send for (LeadershipStatus.holds)
        self.gateway = BotGateway(Settings.from_env(env), self.db, load_catalogue(), Metrics(),
                                  lambda job_id: None, holds_epoch=lambda epoch: epoch == self.held)
        self.gateway.start()
        self.timers = Timers()
        self.kie_client = KieClient(self.kie.url, self.kie.api_key)
        self.epoch = 0
        self.job: Job | None = None
        self.result_count = 1
        self.seen_terminal: JobState | None = None
        self.kie_succeeded = False
        self.supervisor: pykka.ActorRef[Any] | None = None
        self.answers_lost = 0           # sends whose answer a step told the simulator to swallow
        self.tried_losing_an_answer = False  # the precondition reads this, never the outcome:
                                             # rules enabled must not depend on timing
        self.waited_out_a_429 = False
        self.connection_drops = 0
        self.restarts_in_epoch = 0      # supervisor restarts that kept the epoch
        self.rate_limits = 0            # 429s a step scripted: each may release and re-take a claim

    @initialize(result_count=st.integers(1, 12))
    def submit(self, result_count: int) -> None:
        self.result_count = result_count
        self.kie.script_next(Fate(outcome="stuck", result_count=result_count))
        self.job = created(create_job(self.observer, NewJob("h:1", USER, USER, "en", "z-image",
                                                       {"prompt": "a fox", "aspect_ratio": "1:1"}, 900)))
        self.epoch = self.held = take_epoch(self.url)
        self.start_supervisor()
        # Rules start once KIE has the task, so that what a rule may do never depends on timing.
        wait_until(self.task_id, timeout=10, what="job submitted")

    # --- wiring, as runtime.py does it --------------------------------------------------------
    def ctx(self) -> JobContext:
        return JobContext(db=self.db, kie=self.kie_client, sender=self.gateway.presenter_for(self.epoch),
                          timers=self.timers, catalogue=load_catalogue(), metrics=Metrics(), epoch=self.epoch,
                          public_url=None, confirm_callbacks=True, hmac_required=False,
                          delivery_policy=DeliveryPolicy.AT_LEAST_ONCE, poll_base_s=0.05, delivery_grace_s=0.5)

    def start_supervisor(self) -> None:
        """Start a supervisor and wait until it has adopted the job. Its adoption read may meet
        a dropped connection and stop it; the LeaderActor would then try again, and so do we."""
        assert self.job is not None
        for _ in range(SUPERVISOR_STARTS):
            ref = JobSupervisor.start(self.ctx())
            try:
                ref.ask(CallbackStored(self.job.id), timeout=30)
            except pykka.ActorDeadError:
                continue
            self.supervisor = ref
            return
        raise AssertionError("the supervisor never started")

    def give_up_epoch(self) -> None:
        """Step down as the LeaderActor does: the epoch goes first, then the supervisor. Only
        requests already on the wire may still reach Telegram; queued ones are refused."""
        assert self.supervisor is not None
        self.held = None
        run_on_loop(self.gateway.loop, _loop_barrier(), 5)   # a dispatch that began has reached the wire
        assert self.gateway.flood_control.drain(30), "a request stayed on the wire"
        before = self.requests()
        self.supervisor.stop()
        after = self.requests()
        assert after == before, f"sent for a deposed epoch: {[c.method for c in after[len(before):]]}"

    def take_leadership(self) -> None:
        self.epoch = self.held = take_epoch(self.url)
        self.start_supervisor()

    # --- reading the world ------------------------------------------------------------------
    def task_id(self) -> str | None:
        job = self.read_job()
        return job.kie_task_id if job else None

    def read_job(self) -> Job | None:
        assert self.job is not None
        return get_job(self.observer, self.job.id)

    def settled(self) -> bool:
        job = self.read_job()
        return job is not None and job.state in TERMINAL

    def requests(self) -> list[Call]:
        return [c for c in self.telegram.calls() if c.method in SEND_METHODS]

    def photos(self, calls: list[Call] | None = None) -> Counter[str]:
        return Counter(url for call in (self.requests() if calls is None else calls) for url in photo_sources(call))

    def buttons_messages(self, calls: list[Call] | None = None) -> int:
        """Performed sends carrying the job's buttons: the photo itself, or the message after the albums."""
        assert self.job is not None
        marker = f"job:regen:{self.job.id}"
        return sum(1 for c in (self.requests() if calls is None else calls)
                   if c.status == 200 and c.method != "editMessageText"
                   and marker in json.dumps(c.params.get("reply_markup"), default=str))

    def next_send_method(self) -> str | None:
        """The method of the first part not yet recorded as sent (or in flight right now)."""
        job = self.read_job()
        if job is None or job.state in TERMINAL:
            return None
        return method_of_part(self.result_count, len(job.delivery_parts))

    def finish_kie(self) -> None:
        if not self.kie_succeeded:
            self.kie.complete_now(self.task_id() or "")
            self.kie_succeeded = True

    def store_callback(self, body: dict[str, Any]) -> None:
        assert self.job is not None
        inbox.store_callback(self.observer, self.job.id, body, None, "hypothesis", notify=False)
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
        self.restarts_in_epoch += 1
        self.start_supervisor()

    @rule()
    def leadership_changes(self) -> None:
        self.give_up_epoch()
        self.take_leadership()

    @rule()
    def deposed_behind_a_queued_429(self) -> None:
        """KIE succeeds (if it has not yet) and the next part's send meets a short 429; while
        FloodControl holds it queued, leadership moves to a new epoch: it must never leave."""
        self.deposed_behind_a_429(INLINE_RETRY_S)

    @precondition(lambda self: not self.waited_out_a_429)
    @rule()
    def deposed_while_waiting_out_a_429(self) -> None:
        """As above with a long 429: the JobActor waits for it holding a clean claim, which it
        hands back when stopped. (Once per example: each costs the chat ACTOR_RETRY_S.)"""
        self.waited_out_a_429 = True
        self.deposed_behind_a_429(ACTOR_RETRY_S)

    def deposed_behind_a_429(self, retry_after: int) -> None:
        self.finish_kie()
        method = self.next_send_method()
        if method is not None:
            refused = sum(1 for c in self.telegram.calls(method) if c.status == 429)
            self.telegram.fail_next(method, 1, 429, retry_after=retry_after)
            self.rate_limits += 1
            # Either the send met it, or the part was already under way and the delivery ended.
            wait_until(lambda: sum(1 for c in self.telegram.calls(method) if c.status == 429) > refused
                       or self.settled(), timeout=20, what=f"{method} answered 429")
        self.give_up_epoch()
        self.take_leadership()

    @precondition(lambda self: not self.tried_losing_an_answer)
    @rule()
    def answer_lost(self) -> None:
        """KIE succeeds (if it has not yet) and the next part's send is performed but its answer
        never comes: its outcome is unknown, so (at_least_once) it is sent again. Once per
        example, so that the one extra copy it allows is of a single part."""
        self.tried_losing_an_answer = True
        self.finish_kie()
        method = self.next_send_method()
        if method is not None:
            self.telegram.drop_next_response(method)
            self.answers_lost += 1

    @rule()
    def database_connections_drop(self) -> None:
        """Every connection of the actors' pool is cut, wherever the actors are."""
        self.drop_connections()

    @rule()
    def database_connections_drop_while_sending(self) -> None:
        """KIE succeeds (if it has not yet); the pool is cut while a part is on the wire, so the
        write recording it meets the error."""
        self.finish_kie()
        for method in SEND_METHODS:
            self.telegram.slow(method, 0.3)
        try:
            wait_until(lambda: self.gateway.flood_control.drain(0) is False or self.settled(),
                       timeout=20, what="a send on the wire")
            self.drop_connections()
        finally:
            for method in SEND_METHODS:
                self.telegram.slow(method, 0)

    def drop_connections(self) -> None:
        self.connection_drops += 1
        _admin(self.admin_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               f"WHERE application_name = '{self.pool_name}'")

    # --- invariants -------------------------------------------------------------------------
    @invariant()
    def at_most_one_claim_per_epoch(self) -> None:
        assert self.job is not None
        claims = Counter(e["epoch"] for e in job_events(self.observer, self.job.id) if e["to_state"] == "delivering")
        # A claim is taken over in its own epoch only once its outcome became unknowable (a
        # lost answer, a JobActor crashed by a dropped connection), or its holder handed it back
        # clean: stopped by a supervisor restart in the same epoch, or waiting out a 429 (the
        # claim is released before the wait and taken back when the wait is over).
        allowed = 1 + self.answers_lost + self.connection_drops + self.restarts_in_epoch + self.rate_limits
        assert all(n <= allowed for n in claims.values()), f"claims per epoch: {dict(claims)}"

    @invariant()
    def final_states_stay_final(self) -> None:
        job = self.read_job()
        assert job is not None
        if self.seen_terminal is not None:
            assert job.state == self.seen_terminal
        elif job.state in TERMINAL:
            self.seen_terminal = job.state

    @invariant()
    def nothing_is_delivered_without_confirmed_success(self) -> None:
        job = self.read_job()
        assert job is not None
        if job.outcome == "success":
            assert self.kie_succeeded, "a result was accepted before KIE succeeded"
            assert job.result_urls == self.kie.tasks()[job.kie_task_id or ""]["resultUrls"]
        photos = self.photos()
        if photos:
            assert self.kie_succeeded, "a photo was sent before KIE succeeded"
            assert set(photos) <= set(self.kie.tasks()[job.kie_task_id or ""]["resultUrls"]), "a forged photo"

    @invariant()
    def no_part_reaches_the_chat_twice(self) -> None:
        # Only a lost answer leaves a send's outcome unknown (a stop waits for the send on the
        # wire, and a dropped connection only delays the write recording it): one extra copy
        # of a part per lost answer, no more.
        twice = {url: n for url, n in self.photos().items() if n > 1 + self.answers_lost}
        assert not twice, f"photos sent more than once: {twice}"
        assert self.buttons_messages() <= 1 + self.answers_lost, "the buttons were sent twice"

    def teardown(self) -> None:
        try:
            if self.job is not None and self.supervisor is not None and self.supervisor.is_alive() \
                    and self.task_id():
                self.settle()
        finally:
            if self.supervisor is not None:
                self.supervisor.stop()
            self.timers.stop()
            self.gateway.stop()
            self.telegram.stop()
            self.kie.stop()
            self.db.close()
            self.observer.close()
            drop_database(self.admin_url, self.name)

    def settle(self) -> None:
        """KIE succeeds if it has not yet; the job must then end delivered: every part in the
        chat once as recorded, and other copies only of sends whose answer was lost."""
        self.finish_kie()
        job = wait_until(lambda: (j := self.read_job()) is not None and j.state in TERMINAL and j,
                         timeout=40, what="the job leaves `delivering`")
        assert job.state == JobState.DELIVERED, f"ended {job.state.value}"
        urls = self.kie.tasks()[job.kie_task_id or ""]["resultUrls"]
        assert len(urls) == self.result_count
        recorded = set(job.delivered_message_ids or ())
        performed = [c for c in self.requests() if c.status == 200 and c.method != "editMessageText"]
        kept = [c for c in performed if set(message_ids(c)) <= recorded]
        unrecorded = [c for c in performed if not set(message_ids(c)) <= recorded]
        assert self.photos(kept) == Counter(urls), "not every photo is in the chat exactly once as recorded"
        assert self.buttons_messages(kept) == 1
        assert len(unrecorded) <= self.answers_lost, \
            f"{len(unrecorded)} unrecorded sends, {self.answers_lost} lost answers"


async def _loop_barrier() -> None:
    """Runs on the bot loop: once it does, any dispatch that passed its epoch check has gone on
    the wire (the check and the send happen without yielding to the loop)."""


def test_job_actor_state_machine(pg_admin_url: str, template_url: str) -> None:
    JobActorMachine.admin_url = pg_admin_url
    case = JobActorMachine.TestCase
    case.settings = settings(max_examples=14, stateful_step_count=10, deadline=None, derandomize=True,
                             suppress_health_check=list(HealthCheck))
    case().runTest()
