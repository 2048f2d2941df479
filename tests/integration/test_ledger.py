"""The credit ledger on a real Postgres: holds ride on job creation, captures and releases on the
job's own fenced writes, payments are credited once, and `ledger.check` finds what breaks."""
from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest

from actors.job_state import JobState as S
from actors.outcomes import Failure, FailureCode, JobOutcome
from storage import ledger
from storage.db import Database
from storage.jobs import (
    Created,
    Existing,
    Insufficient,
    Job,
    NewJob,
    NotLeading,
    Repriced,
    create_job,
    get_job,
    transition,
)
from tests.support.factories import take_epoch

USER = 7001


def new_job(key: str, *, user: int = USER, price: int | None = 0, free_per_day: int = 0, epoch: int | None = None,
            model: str = "google/nano-banana") -> NewJob:
    return NewJob(request_key=key, chat_id=user, user_id=user, lang="en", model=model,
                  input={"prompt": "a fox"}, deadline_s=900, price=price, free_per_day=free_per_day,
                  kie_credits=Decimal(4), epoch=epoch)


def walk(db: Database, job: Job, epoch: int, *states: tuple[S, dict[str, Any]]) -> Job:
    for new, fields in states:
        result = transition(db, job.id, job.state, new, epoch, **fields)
        assert hasattr(result, "job"), f"{job.state} -> {new} refused"
        job = result.job
    return job


SUCCESS = [(S.SUBMITTING, {}), (S.SUBMITTED, {"kie_task_id": "t-ok"}),
           (S.SUCCEEDED, {"outcome": JobOutcome.SUCCESS, "result_urls": ["http://x/1.png"]}),
           (S.DELIVERING, {}), (S.DELIVERED, {"delivered_message_ids": [1], "claim_fenced": True})]
FAILURE = [(S.SUBMITTING, {}), (S.SUBMITTED, {"kie_task_id": "t-bad"}),
           (S.FAILED, {"outcome": JobOutcome.FAILURE, "failure": Failure(FailureCode.KIE_FAILED, "x")})]


def test_creating_a_paid_job_holds_its_price_in_the_same_transaction(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    ledger.grant(db, USER, 1000, "test")
    created = create_job(db, new_job("a", price=300, epoch=epoch))
    assert isinstance(created, Created) and created.available == 700
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 700, 300)
    assert created.job.price == 300 and not created.job.free
    again = create_job(db, new_job("a", price=300, epoch=epoch))
    assert isinstance(again, Existing) and again.job.id == created.job.id
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 700, 300)       # one hold per job
    assert ledger.check(db).clean


def test_delivery_captures_and_failure_releases(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    ledger.grant(db, USER, 1000, "test")
    ok = create_job(db, new_job("ok", price=300, epoch=epoch))
    bad = create_job(db, new_job("bad", price=200, epoch=epoch))
    assert isinstance(ok, Created) and isinstance(bad, Created)
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 500, 500)
    walk(db, ok.job, epoch, *SUCCESS)
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 500, 200)
    failed = walk(db, bad.job, epoch, *FAILURE)
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 700, 0)          # released with the failure
    walk(db, failed, epoch, (S.DELIVERING, {}), (S.DELIVERED, {"delivered_message_ids": [2], "claim_fenced": True}))
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 700, 0)          # released once
    kinds = [m.kind for m in ledger.movements(db, USER)]
    assert kinds == [ledger.EntryKind.RELEASE, ledger.EntryKind.CAPTURE, ledger.EntryKind.HOLD,
                     ledger.EntryKind.HOLD, ledger.EntryKind.GRANT]
    assert ledger.check(db).clean


@pytest.mark.parametrize("end", [S.CANCELLED, S.UNDELIVERABLE, S.DELIVERY_UNKNOWN])
def test_every_end_but_a_delivered_result_releases(db: Database, database_url: str, end: S) -> None:
    epoch = take_epoch(database_url)
    ledger.grant(db, USER, 500, "test")
    created = create_job(db, new_job("x", price=500, epoch=epoch))
    assert isinstance(created, Created)
    path = [(S.CANCELLED, {})] if end is S.CANCELLED else [*SUCCESS[:-1], (end, {"claim_fenced": True})]
    walk(db, created.job, epoch, *path)
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 500, 0)
    assert ledger.check(db).clean


def test_a_price_above_the_balance_creates_nothing(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    ledger.grant(db, USER, 250, "test")
    refused = create_job(db, new_job("too-dear", price=300, epoch=epoch))
    assert refused == Insufficient(300, 250)
    assert get_job(db, 1) is None
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 250, 0)


def test_a_deposed_epoch_creates_nothing(db: Database, database_url: str) -> None:
    old = take_epoch(database_url)
    take_epoch(database_url)
    ledger.grant(db, USER, 1000, "test")
    assert isinstance(create_job(db, new_job("late", price=300, epoch=old)), NotLeading)
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 1000, 0)


def test_the_free_tier_counts_per_day_and_gives_back_failures(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    first = create_job(db, new_job("f1", price=100, free_per_day=2, epoch=epoch))
    assert isinstance(first, Created) and first.job.free and first.job.price == 0 and first.free_left == 1
    second = create_job(db, new_job("f2", price=100, free_per_day=2, epoch=epoch))
    assert isinstance(second, Created) and second.free_left == 0
    assert create_job(db, new_job("f3", price=100, free_per_day=2, epoch=epoch)) == Insufficient(100, 0)
    walk(db, second.job, epoch, *FAILURE)                  # a failed free job gives its turn back
    third = create_job(db, new_job("f3", price=100, free_per_day=2, epoch=epoch))
    assert isinstance(third, Created) and third.job.free
    assert ledger.free_used_today(db, USER) == {"google/nano-banana": 2}
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 0, 0)
    assert ledger.check(db).clean


def test_concurrent_jobs_of_one_user_never_overdraw(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    ledger.grant(db, USER, 1000, "test")
    results: list[object] = []
    barrier = threading.Barrier(8)

    def one(i: int) -> None:
        barrier.wait()
        results.append(create_job(db, new_job(f"c{i}", price=300, epoch=epoch)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, Created) for r in results) == 3
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 100, 900)
    assert ledger.check(db).clean


def test_grants_never_take_the_balance_below_zero(db: Database) -> None:
    assert ledger.grant(db, USER, 500, "hello") == ledger.Granted(500)
    assert ledger.grant(db, USER, -600, "too much") == ledger.GrantRefused(500)
    assert ledger.grant(db, USER, -500, "all of it") == ledger.Granted(0)
    assert ledger.welcome(db, USER, 100) is True
    assert ledger.welcome(db, USER, 100) is False
    assert ledger.wallet(db, USER).available == 100
    assert ledger.check(db).clean


def payment(charge: str, user: int = USER, credits: int = 5000) -> ledger.Payment:
    return ledger.Payment(charge_id=charge, provider_charge_id=None, user_id=user, package_id="s50", stars=50,
                          credits=credits)


def test_a_payment_is_credited_once_and_a_first_purchase_pays_the_referral(db: Database) -> None:
    referrer, buyer = 8001, 8002
    assert ledger.record_referral(db, buyer, referrer) is True
    assert ledger.record_referral(db, referrer, buyer) is False         # no loops
    assert ledger.record_referral(db, buyer, buyer) is False            # never oneself
    assert ledger.credit_payment(db, payment("ch-1", buyer), referrer_bonus=500, referred_bonus=300) \
        is ledger.Credit.CREDITED
    for _ in range(3):
        assert ledger.credit_payment(db, payment("ch-1", buyer), referrer_bonus=500, referred_bonus=300) \
            is ledger.Credit.DUPLICATE
    assert ledger.credit_payment(db, payment("ch-2", buyer), referrer_bonus=500, referred_bonus=300) \
        is ledger.Credit.CREDITED
    assert ledger.wallet(db, buyer).available == 5000 + 5000 + 300
    assert ledger.wallet(db, referrer).available == 500
    assert ledger.check(db).clean


def test_concurrent_redeliveries_of_one_payment_credit_it_once(db: Database) -> None:
    outcomes: list[ledger.Credit] = []
    barrier = threading.Barrier(6)

    def one() -> None:
        barrier.wait()
        outcomes.append(ledger.credit_payment(db, payment("ch-race")))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o.value for o in outcomes) == ["credited"] + ["duplicate"] * 5
    assert ledger.wallet(db, USER).available == 5000


def test_a_refund_takes_back_only_what_is_still_available(db: Database, database_url: str) -> None:
    epoch = take_epoch(database_url)
    ledger.credit_payment(db, payment("ch-r"))
    created = create_job(db, new_job("spent", price=3000, epoch=epoch))
    assert isinstance(created, Created)
    walk(db, created.job, epoch, *SUCCESS)
    request = ledger.request_refund(db, "ch-r", "asked nicely")
    assert (request.status, request.taken) == ("requested", 2000)
    assert ledger.request_refund(db, "ch-r", "again").status == "already"
    assert ledger.request_refund(db, "nope", "x").status == "unknown"
    assert ledger.wallet(db, USER).available == 0
    assert [p.charge_id for p in ledger.due_refunds(db)] == ["ch-r"]
    assert ledger.refund_sent(db, "ch-r") is True
    assert ledger.due_refunds(db) == []
    assert ledger.check(db).clean


def test_the_ledger_is_append_only(db: Database, sql: Any) -> None:
    ledger.grant(db, USER, 500, "hello")
    with pytest.raises(Exception, match="append-only"):
        sql.execute("UPDATE ledger SET amount = 1")
    with pytest.raises(Exception, match="append-only"):
        sql.execute("DELETE FROM ledger")


def test_the_check_finds_a_tampered_wallet_and_a_missing_capture(db: Database, database_url: str, sql: Any) -> None:
    epoch = take_epoch(database_url)
    ledger.grant(db, USER, 1000, "hello")
    created = create_job(db, new_job("t", price=300, epoch=epoch))
    assert isinstance(created, Created)
    assert ledger.check(db).clean
    sql.execute("ALTER TABLE jobs DISABLE TRIGGER jobs_resolve_hold")
    walk(db, created.job, epoch, *SUCCESS)      # delivered, but nothing captured
    sql.execute("ALTER TABLE jobs ENABLE TRIGGER jobs_resolve_hold")
    sql.execute("UPDATE wallets SET available = available + 1 WHERE user_id = %s", (USER,))
    report = ledger.check(db)
    assert not report.clean
    assert any(f"job {created.job.id}" in v and "captured None" in v for v in report.violations)
    assert any(f"user {USER}: wallet available 701" in v for v in report.violations)


def test_a_job_is_never_held_for_more_than_the_user_agreed_to(db: Database, database_url: str) -> None:
    """A start the user took for free finds the last free generation gone (another chat took
    it): nothing is created, and the caller asks for the price."""
    epoch = take_epoch(database_url)
    ledger.grant(db, USER, 1000, "test")
    first = create_job(db, new_job("last-free", price=300, free_per_day=1, epoch=epoch))
    assert isinstance(first, Created) and first.job.free
    agreed_free = NewJob(**{**new_job("took-it-free", price=300, free_per_day=1, epoch=epoch).__dict__, "agreed": 0})
    assert create_job(db, agreed_free) == Repriced(300)
    free_only = NewJob(**{**new_job("free-only", price=None, free_per_day=1, epoch=epoch).__dict__, "agreed": 0})
    assert create_job(db, free_only) == Repriced(None)
    agreed_more = NewJob(**{**new_job("agreed", price=300, free_per_day=1, epoch=epoch).__dict__, "agreed": 400})
    held = create_job(db, agreed_more)
    assert isinstance(held, Created) and held.job.price == 300
    assert ledger.wallet(db, USER) == ledger.Wallet(USER, 700, 300)
