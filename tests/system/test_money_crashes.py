"""Kill the leader (SIGKILL) where money is between two steps: a paid job between its hold and
createTask, between its result's send and its capture; a Stars payment between its update's
storage and its credit, and between its credit and telling the user. Every time the survivor
finishes the work, the user is charged exactly the price (or credited exactly the package)
once, and `kiebot ledger check` is clean."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from actors.job_state import JobState
from config.pricing import default_pricing
from faults import PAYMENT_POINTS
from sim.front_door import FrontDoor
from sim.kie import KieSim
from sim.telegram import PaymentOutcome, TelegramSim
from storage import ledger
from storage.db import Database
from storage.jobs import Job, job_events, recent_jobs
from tests.support.harness import Process
from tests.support.waiting import wait_until

USER = 8601
PAID_MODEL = "google/nano-banana"
GRANTED = 100_000
KNOBS = {"KIEBOT_DELIVERY_GRACE_S": "2"}
# The hold rides on the job insert, the capture on the delivered write (storage/migrations/0007).
JOB_POINTS = ("after_job_insert", "after_create_task", "after_send", "after_record")


@pytest.fixture
def front_door() -> Iterator[FrontDoor]:
    door = FrontDoor([]).start()
    yield door
    door.stop()


def pair(spawn: Callable[..., Process], front_door: FrontDoor, point: str) -> tuple[Process, Process]:
    doomed = spawn("doomed", PUBLIC_URL=front_door.url, KIEBOT_CRASHPOINT=point, **KNOBS)
    front_door.backends.append(f"http://127.0.0.1:{doomed.port}")
    wait_until(doomed.active, timeout=30, what="the doomed instance leads")
    survivor = spawn("survivor", PUBLIC_URL=front_door.url, **KNOBS)
    front_door.backends.append(f"http://127.0.0.1:{survivor.port}")
    wait_until(survivor.health, timeout=30, what="the survivor answers")
    return doomed, survivor


def ledger_check(database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "cli", "ledger", "check"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def bot_says(telegram: TelegramSim, words: str) -> int:
    return sum(1 for m in telegram.chat(USER) if m.from_bot and words in (m.text or m.caption or ""))


@pytest.mark.parametrize("point", JOB_POINTS)
def test_a_paid_job_whose_leader_dies_is_charged_its_price_exactly_once(
        point: str, spawn: Callable[..., Process], front_door: FrontDoor, telegram: TelegramSim, kie: KieSim,
        db: Database, database_url: str) -> None:
    ledger.grant(db, USER, GRANTED, "crash test")
    doomed, survivor = pair(spawn, front_door, point)
    telegram.user_sends(USER, f"/imagine a paid crash test --model {PAID_MODEL}")
    telegram.wait_for_chat(USER, lambda c: any(b[0].startswith("✅") for m in c if m.from_bot
                                               for row in m.buttons for b in row), timeout=30)
    telegram.user_presses(USER, "✅ Generate")
    wait_until(lambda: doomed.proc.poll() is not None, timeout=30, what=f"the leader dies at {point}")
    wait_until(survivor.active, timeout=10, what="the survivor takes over")

    def settled() -> Job | None:
        jobs = recent_jobs(db, USER)
        return jobs[0] if len(jobs) == 1 and jobs[0].terminal else None

    job = wait_until(settled, timeout=60, what="the paid job final")
    assert (job.state, job.outcome) == (JobState.DELIVERED, "success")
    assert job.price > 0 and not job.free
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, GRANTED - job.price, 0)
    got = sum(1 for m in telegram.chat(USER) if m.from_bot and m.media == "photo")
    reclaimed = any(e["from_state"] == e["to_state"] == "delivering" for e in job_events(db, job.id))
    assert got == 1 or (got == 2 and reclaimed), f"{got} photos after a crash {point}"
    checked = ledger_check(database_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("point", PAYMENT_POINTS)
def test_a_payment_whose_leader_dies_is_credited_and_announced_exactly_once(
        point: str, spawn: Callable[..., Process], front_door: FrontDoor, telegram: TelegramSim,
        db: Database, database_url: str) -> None:
    package = default_pricing().packages[-1]
    doomed, survivor = pair(spawn, front_door, point)
    telegram.user_sends(USER, "/buy")
    telegram.wait_for_chat(USER, lambda c: sum(1 for m in c if m.from_bot and m.invoice) == len(
        default_pricing().packages), timeout=30)
    attempt = telegram.user_pays(USER)
    assert telegram.wait_for_payment(attempt.query_id).outcome is PaymentOutcome.PAID
    wait_until(lambda: doomed.proc.poll() is not None, timeout=30, what=f"the leader dies at {point}")
    wait_until(survivor.active, timeout=10, what="the survivor takes over")
    telegram.wait_for_chat(USER, lambda c: bot_says(telegram, "Payment received") >= 1, timeout=30)
    telegram.user_sends(USER, "/help")      # handled after the payment (one chat, in order)
    telegram.wait_for_chat(USER, lambda c: bot_says(telegram, "/balance") >= 1, timeout=30)
    assert bot_says(telegram, "Payment received") == 1
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, package.credits, 0)
    [payment] = ledger.user_payments(db, USER)
    assert payment.credits == package.credits
    checked = ledger_check(database_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
