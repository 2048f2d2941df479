"""The money commands of design.md section 5, run as `kiebot` processes: user, grant, ledger
check, refund, and the price drift report."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from actors.job_state import JobState as S
from actors.outcomes import JobOutcome
from storage import ledger
from storage.db import Database
from storage.jobs import Created, NewJob, create_job, transition
from tests.support.factories import take_epoch
from tests.system.test_cli import kiebot

USER = 5501


def env(database_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url}


def test_grant_user_and_a_refused_take_away(database_url: str) -> None:
    assert kiebot("user", str(USER), "--json", env=env(database_url)).returncode == 1    # never seen
    granted = kiebot("grant", str(USER), "12.5", "--reason", "a gift", env=env(database_url))
    assert granted.returncode == 0, granted.stderr
    refused = kiebot("grant", str(USER), "-20", "--reason", "too much", env=env(database_url))
    assert refused.returncode == 1 and "below zero" in refused.stdout
    assert kiebot("grant", str(USER), "1.234", "--reason", "x", env=env(database_url)).returncode == 2
    shown = kiebot("user", str(USER), "--json", env=env(database_url))
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["user_id"] == USER and report["available"] == 12.5 and report["held"] == 0
    assert report["jobs"] == [] and report["payments"] == []
    assert report["free_left_today"].get("z-image", 0) >= 1


def test_user_lists_jobs_with_price_and_charge_and_payments(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    ledger.grant(db, USER, 1000, "start")
    made = create_job(db, NewJob(request_key="cli:1", chat_id=USER, user_id=USER, lang="en", model="google/nano-banana",
                                 input={"prompt": "x"}, deadline_s=900, price=300, epoch=epoch))
    assert isinstance(made, Created)
    job = made.job
    for new, fields in [(S.SUBMITTING, {}), (S.SUBMITTED, {"kie_task_id": "t1"}),
                        (S.SUCCEEDED, {"outcome": JobOutcome.SUCCESS, "result_urls": ["http://x/1.png"]}),
                        (S.DELIVERING, {}), (S.DELIVERED, {"claim_fenced": True})]:
        result: Any = transition(db, job.id, job.state, new, epoch, **fields)
        job = result.job
    ledger.credit_payment(db, ledger.Payment("ch-cli", None, USER, "s50", 50, 5000))
    report = json.loads(kiebot("user", str(USER), "--json", env=env(database_url)).stdout)
    assert report["available"] == 57 and report["held"] == 0
    assert report["jobs"] == [{"id": job.id, "model": "google/nano-banana", "state": "delivered", "price": 3,
                               "charged": 3}]
    assert report["payments"] == [{"charge_id": "ch-cli", "stars": 50, "credits": 50, "state": "credited"}]
    text = kiebot("user", str(USER), env=env(database_url))
    assert text.returncode == 0 and "available 57" in text.stdout


def test_ledger_check_is_one_line_when_clean_and_one_line_per_violation(
        db: Database, database_url: str, sql: Any) -> None:
    ledger.grant(db, USER, 1000, "start")
    ledger.grant(db, USER + 1, 500, "start")
    clean = kiebot("ledger", "check", env=env(database_url))
    assert clean.returncode == 0 and len(clean.stdout.strip().splitlines()) == 1, clean.stdout
    sql.execute("UPDATE wallets SET available = available + 7")
    broken = kiebot("ledger", "check", env=env(database_url))
    assert broken.returncode == 1
    lines = broken.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("ledger violation: user ") for line in lines), lines


def test_refund_queues_once_and_refuses_an_unknown_charge(db: Database, database_url: str) -> None:
    ledger.credit_payment(db, ledger.Payment("ch-r", None, USER, "s50", 50, 5000))
    first = kiebot("refund", "ch-r", "--reason", "asked", env=env(database_url))
    assert first.returncode == 0 and "50 credits taken back" in first.stdout, first.stdout
    assert kiebot("refund", "ch-r", "--reason", "again", env=env(database_url)).returncode == 1
    assert kiebot("refund", "nope", "--reason", "x", env=env(database_url)).returncode == 1
    assert ledger.wallet(db, USER).available == 0


def test_models_drift_shows_what_kie_charged_against_our_price(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    for n, charged in enumerate(("6", "6")):
        made = create_job(db, NewJob(request_key=f"d{n}", chat_id=USER, user_id=USER, lang="en",
                                     model="google/nano-banana", input={"prompt": "x"}, deadline_s=900,
                                     kie_credits=Decimal(4), epoch=epoch))
        assert isinstance(made, Created)
        transition(db, made.job.id, S.CREATED, S.SUBMITTING, epoch)
        transition(db, made.job.id, S.SUBMITTING, S.SUBMITTED, epoch, kie_task_id=f"td{n}")
        transition(db, made.job.id, S.SUBMITTED, S.SUCCEEDED, epoch, outcome=JobOutcome.SUCCESS,
                   result_urls=["http://x/1.png"], kie_credits_consumed=Decimal(charged))
    shown = kiebot("models", "--drift", "--json", env=env(database_url))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == [{"model": "google/nano-banana", "jobs": 2, "quoted": 8, "consumed": 12,
                                         "ratio": 1.5}]
    table = kiebot("models", "--drift", env=env(database_url))
    assert "stale price" in table.stdout
