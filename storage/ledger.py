"""The credit ledger: wallets, movements, grants, Stars payments and refunds, and its check.

Every movement of credits is one append-only entry from one account to another (migration 0007),
so the entries sum to zero by construction; a user's `available` and `held` balances are kept
in `wallets` by a trigger, in the transaction of the entry that moves them, and their CHECKs are
the rule that no balance goes below zero. Idempotency lives in unique indexes (one hold per job,
resolved once; a Telegram charge credited once and refunded once; the welcome credit once).
A job's hold, capture and release are not here: they ride on the job's own writes
(storage.jobs.create_job and the job_resolves_hold trigger), so money adds no transaction to the
job path. Amounts are integer minor units (config.money).
"""
from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.db import Database


class Account(str, enum.Enum):
    """Where credits can be; values equal the Postgres enum `ledger_account`."""

    AVAILABLE = "available"         # the user's to spend
    HELD = "held"                   # the user's, held for a running job
    REVENUE = "revenue"             # captured: delivered jobs
    FREE_ALLOWANCE = "free_allowance"
    PURCHASES = "purchases"         # the source of credits bought with Stars
    GRANTS = "grants"               # the source of grants, welcome credit and referral bonuses
    REFUNDS = "refunds"             # credits taken back by refunded payments


USER_ACCOUNTS = frozenset({Account.AVAILABLE, Account.HELD})


class EntryKind(str, enum.Enum):
    """Why credits moved; values equal the Postgres enum `ledger_kind`."""

    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    PURCHASE = "purchase"
    REFUND = "refund"
    GRANT = "grant"
    WELCOME = "welcome"
    REFERRAL = "referral"


@dataclass(frozen=True)
class Wallet:
    user_id: int
    available: int
    held: int


@dataclass(frozen=True)
class Movement:
    """One entry as its user sees it: `amount` is signed, + into available, - out of it (a hold
    and its capture are each shown with the change they made to the user's money)."""

    id: int
    kind: EntryKind
    amount: int
    job_id: int | None
    model: str | None
    charge_id: str | None
    reason: str | None
    at: dt.datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Movement:
        src, dst, amount = Account(row["from_account"]), Account(row["to_account"]), int(row["amount"])
        signed = amount if dst is Account.AVAILABLE else -amount if src is Account.AVAILABLE else 0
        if EntryKind(row["kind"]) is EntryKind.CAPTURE:
            signed = -amount        # the user's money, spent (the hold had moved it aside)
        return cls(id=row["id"], kind=EntryKind(row["kind"]), amount=signed, job_id=row["job_id"],
                   model=row["model"], charge_id=row["charge_id"], reason=row["reason"], at=row["at"])


def wallet(db: Database, user_id: int) -> Wallet:
    row = db.one("wallet", user_id=user_id)
    return Wallet(user_id, int(row["available"]), int(row["held"])) if row else Wallet(user_id, 0, 0)


def movements(db: Database, user_id: int, limit: int = 10) -> list[Movement]:
    """The user's latest entries, newest first, with the model of each one's job."""
    return [Movement.from_row(r) for r in db.all("user_movements", user_id=user_id, limit=limit)]


def free_used_today(db: Database, user_id: int, model: str | None = None) -> dict[str, int]:
    """Free generations used today (UTC) per model (only `model` when given)."""
    if model is not None:
        row = db.one("free_used_today", user_id=user_id, model=model)
        return {model: int(row["n"]) if row else 0}
    return {r["model"]: int(r["n"]) for r in db.all("free_used_today_by_model", user_id=user_id)}


# --- grants ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Granted:
    available: int


@dataclass(frozen=True)
class GrantRefused:
    """It would take the available balance below zero (or the welcome credit was given before)."""

    available: int
    already: bool = False


def grant(db: Database, user_id: int, amount: int, reason: str) -> Granted | GrantRefused:
    """The operator's grant: `amount` minor units into the user's available balance (negative
    takes away; refused when that would go below zero)."""
    return _grant(db, user_id, amount, EntryKind.GRANT, reason)


def welcome(db: Database, user_id: int, amount: int) -> bool:
    """The welcome credit, granted once per user whatever the number of calls; True when now."""
    if amount <= 0:
        return False
    return isinstance(_grant(db, user_id, amount, EntryKind.WELCOME, "welcome credit"), Granted)


def _grant(db: Database, user_id: int, amount: int, kind: EntryKind, reason: str) -> Granted | GrantRefused:
    row = db.one("grant_credits", user_id=user_id, amount=amount, kind=kind.value, reason=reason)
    assert row is not None
    if row["status"] == "granted":
        return Granted(int(row["available"]))
    return GrantRefused(int(row["available"]), already=row["status"] == "already")


# --- Stars payments -------------------------------------------------------------------------
class PaymentState(str, enum.Enum):
    CREDITED = "credited"
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"
    REFUND_FAILED = "refund_failed"


@dataclass(frozen=True)
class StarPayment:
    charge_id: str
    user_id: int
    package_id: str
    stars: int
    credits: int
    state: PaymentState
    paid_at: dt.datetime
    refund_taken: int | None = None
    refund_attempts: int = 0
    refund_error: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StarPayment:
        return cls(charge_id=row["charge_id"], user_id=int(row["user_id"]), package_id=row["package_id"],
                   stars=int(row["stars"]), credits=int(row["credits"]), state=PaymentState(row["state"]),
                   paid_at=row["paid_at"], refund_taken=row["refund_taken"],
                   refund_attempts=int(row["refund_attempts"]), refund_error=row["refund_error"])


@dataclass(frozen=True)
class Payment:
    """A successful_payment as Telegram reported it, with the package it bought."""

    charge_id: str
    provider_charge_id: str | None
    user_id: int
    package_id: str
    stars: int
    credits: int


class Credit(str, enum.Enum):
    CREDITED = "credited"       # now, once
    DUPLICATE = "duplicate"     # this charge was credited before: nothing more
    DEPOSED = "deposed"         # this instance no longer leads: nothing written


def credit_payment(db: Database, payment: Payment, *, referrer_bonus: int = 0, referred_bonus: int = 0,
                   epoch: int | None = None) -> Credit:
    """Credit a Stars payment exactly once (keyed on its telegram_payment_charge_id), with the
    referral bonuses when it is a referred user's first purchase; one transaction."""
    row = db.one("credit_star_payment", charge_id=payment.charge_id, provider_charge_id=payment.provider_charge_id,
                 user_id=payment.user_id, package_id=payment.package_id, stars=payment.stars,
                 credits=payment.credits, referrer_bonus=referrer_bonus, referred_bonus=referred_bonus,
                 epoch=epoch)
    assert row is not None
    return Credit(row["status"])


def payment_announced(db: Database, charge_id: str) -> bool:
    """Was the user told of this payment (a message sent and recorded)?"""
    row = db.one("payment_announced", charge_id=charge_id)
    return bool(row and row["announced"])


def mark_payment_announced(db: Database, charge_id: str) -> bool:
    """Record that the user was told; False when someone recorded it first."""
    return db.one("mark_payment_announced", charge_id=charge_id) is not None


def star_payment(db: Database, charge_id: str) -> StarPayment | None:
    row = db.one("star_payment", charge_id=charge_id)
    return StarPayment.from_row(row) if row else None


def user_payments(db: Database, user_id: int, limit: int = 100) -> list[StarPayment]:
    return [StarPayment.from_row(r) for r in db.all("user_star_payments", user_id=user_id, limit=limit)]


@dataclass(frozen=True)
class RefundRequest:
    status: str                 # 'requested' | 'already' | 'unknown'
    taken: int | None           # credits taken back from the user's available balance
    user_id: int | None


def request_refund(db: Database, charge_id: str, reason: str) -> RefundRequest:
    """Take back what is still available of the payment's credits and queue refundStarPayment
    (the outbox: actors.payments sends it), in one transaction."""
    row = db.one("request_star_refund", charge_id=charge_id, reason=reason)
    assert row is not None
    return RefundRequest(row["status"], row["taken"], row["user_id"])


def due_refunds(db: Database, limit: int = 20) -> list[StarPayment]:
    return [StarPayment.from_row(r) for r in db.all("due_refunds", limit=limit)]


def refund_sent(db: Database, charge_id: str) -> bool:
    return db.one("refund_sent", charge_id=charge_id) is not None


def refund_retry(db: Database, charge_id: str, error: str, delay_s: float) -> None:
    db.run("refund_retry", charge_id=charge_id, error=error[:500], delay_s=delay_s)


def refund_given_up(db: Database, charge_id: str, error: str) -> None:
    db.run("refund_given_up", charge_id=charge_id, error=error[:500])


def record_referral(db: Database, user_id: int, referrer_id: int) -> bool:
    """Remember who brought `user_id`: once, never oneself, no loops, only before a first purchase."""
    return db.one("record_referral", user_id=user_id, referrer_id=referrer_id) is not None


def referral_untold(db: Database, user_id: int, referrer_id: int) -> bool:
    """Was `user_id` brought by `referrer_id` and not yet told of it (and has bought nothing)?
    Asked after record_referral, so a welcome that failed says the invitation again."""
    return db.one("referral_untold", user_id=user_id, referrer_id=referrer_id) is not None


def mark_referral_told(db: Database, user_id: int) -> bool:
    """Record that the invited user was told; False when someone recorded it first."""
    return db.one("mark_referral_told", user_id=user_id) is not None


# --- reconciliation -------------------------------------------------------------------------
@dataclass(frozen=True)
class Discrepancy:
    charge_id: str
    side: str           # 'telegram_only' | 'ledger_only' | 'refund_mismatch'
    detail: str


def record_discrepancies(db: Database, found: list[Discrepancy]) -> list[Discrepancy]:
    """Keep what the latest reconciliation found; resolve what it no longer finds. Returns the
    ones that are new."""
    new = [d for d in found
           if db.one("record_payment_discrepancy", charge_id=d.charge_id, side=d.side, detail=d.detail)]
    db.run("resolve_payment_discrepancies", still_open=[d.charge_id for d in found])
    return new


def open_discrepancies(db: Database) -> list[Discrepancy]:
    return [Discrepancy(r["charge_id"], r["side"], r["detail"]) for r in db.all("open_payment_discrepancies")]


def payments_since(db: Database, since: dt.datetime) -> list[dict[str, Any]]:
    return db.all("star_payment_ids_since", since=since)


# --- operator alerts ------------------------------------------------------------------------
def claim_operator_alert(db: Database, kind: str, period_s: float) -> bool:
    """True for exactly one caller per `period_s` per kind, across instances and restarts."""
    return db.one("claim_operator_alert", kind=kind, period_s=period_s) is not None


def release_operator_alert(db: Database, kind: str) -> None:
    """Give a claim back (its message reached nobody): the next claim of this kind succeeds."""
    db.run("release_operator_alert", kind=kind)


# --- the check ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckReport:
    entries: int
    users: int
    violations: list[str]

    @property
    def clean(self) -> bool:
        return not self.violations


# Each query of queries.sql that finds violations, and how one of its rows is put into words.
_CHECKS: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("ledger_wallet_mismatches", lambda r: (
        f"user {r['user_id']}: wallet available {r['wallet_available']} held {r['wallet_held']}, "
        f"entries say available {r['ledger_available']} held {r['ledger_held']}")),
    ("ledger_job_mismatches", lambda r: (
        f"job {r['id']} ({r['state']}, outcome {r['outcome']}, price {r['price']}, free {r['free']}): "
        f"held {r['held']}, captured {r['captured']}, released {r['released']}")),
    ("ledger_orphan_resolutions", lambda r: f"entry {r['id']}: {r['kind']} of job {r['job_id']}, which has no hold"),
    ("ledger_payment_mismatches", lambda r: (
        f"payment {r['charge_id']} ({r['state']}): credits {r['credits']}, purchase entries {r['purchased']}, "
        f"refund taken {r['refund_taken']}, refund entries {r['refunded']}")),
    ("ledger_unmatched_purchases",
     lambda r: f"entry {r['id']}: a purchase for charge {r['charge_id']} with no Stars payment"),
)


def check(db: Database) -> CheckReport:
    """Every ledger invariant over the whole database: the entries sum to zero; every wallet
    equals its entries and none is below zero; every paid job held exactly its price once,
    resolved at most once and as its fate says; every Stars charge credited exactly once with its
    package's credits; no payment found on one side only by the reconciliation."""
    totals = db.all("ledger_totals")
    entries = sum(int(r["n"]) for r in totals) // 2
    total = sum(int(r["balance"]) for r in totals)
    violations = [f"the entries sum to {total}, not 0"] if total != 0 else []
    for query, say in _CHECKS:
        violations.extend(say(r) for r in db.all(query))
    violations.extend(f"payment {d.charge_id}: {d.side.replace('_', ' ')}: {d.detail}" for d in open_discrepancies(db))
    users = db.one("ledger_user_count") or {}
    return CheckReport(entries, int(users.get("n", 0)), violations)
