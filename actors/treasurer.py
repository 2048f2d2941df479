"""The treasurer: the leader's money duties that are not a job's.

- **KIE balance.** Reads the operator's KIE balance (`GET /api/v1/chat/credit`) every few
  minutes, exports it (`kiebot_kie_balance_credits`) and shares it with the JobActors through
  `KieBalance`, which refuses a job before createTask while the balance is known to be below
  what KIE will charge for it (the estimate goes down by each job's quote until the next read;
  a 402 sets it to zero).
- **Refund outbox.** Sends the refundStarPayment calls that `storage.ledger.request_refund`
  queued, retrying with backoff; CHARGE_ALREADY_REFUNDED counts as done (Telegram says it for
  refunds that went through), a refusal gives up and keeps the error for the operator.
- **Reconciliation.** Compares the Stars payments in the ledger with getStarTransactions every
  ten minutes and records a payment found on one side only (metric, log line, `kiebot ledger
  check`, a message to the admins).

Like the supervisor it belongs to, it exists only while this instance leads; every Telegram call
is made for the leader's epoch, so a deposed treasurer sends nothing.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pykka

from actors.ports import OperatorAlert, OperatorPager, SendError, SendOutcome, StarsAccount, StarTransaction
from actors.timers import Timers
from kie.client import KieClient
from kie.errors import KieError
from storage import ledger
from storage.db import Database, DatabaseUnavailable
from telemetry.metrics import Metrics

log = logging.getLogger(__name__)

PAGE_SIZE = 100                 # getStarTransactions' maximum
MAX_PAGES = 200                 # 20,000 transactions per reconciliation at most
REFUND_BACKOFF_S = (5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
TICK_S = 1.0


class KieBalance:
    """The operator's KIE balance as this leader last knew it; read by every JobActor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._credits: Decimal | None = None        # None: not read yet (nothing is refused)

    def set(self, amount: Decimal) -> None:
        with self._lock:
            self._credits = amount

    def get(self) -> Decimal | None:
        with self._lock:
            return self._credits

    def covers(self, cost: Decimal | None) -> bool:
        """Can KIE be asked for a job costing `cost`? Unknown balance or cost: yes (KIE's own
        402 is the backstop)."""
        with self._lock:
            return self._credits is None or cost is None or self._credits >= cost

    def spend(self, cost: Decimal | None) -> None:
        """A task was created: the estimate goes down by its cost until the next read."""
        if cost is None:
            return
        with self._lock:
            if self._credits is not None:
                self._credits = max(Decimal(0), self._credits - cost)


@dataclass(frozen=True)
class TreasuryConfig:
    balance_every_s: float = 180.0
    refunds_every_s: float = 2.0
    reconcile_every_s: float = 600.0
    reconcile_window_s: float = 30 * 86_400.0
    reconcile_grace_s: float = 300.0    # a payment younger than this may still be on its way in
    page_period_s: float = 3_600.0      # one message to the admins per alert per hour at most


@dataclass
class _Due:
    every_s: float
    at: float = 0.0             # monotonic time of the next run (0: at once)

    def ready(self, now: float) -> bool:
        return now >= self.at

    def after(self, now: float) -> None:
        self.at = now + self.every_s


class Treasury:
    """The duties as plain calls (tests drive them directly); `Treasurer` runs them on a timer."""

    def __init__(self, db: Database, kie: KieClient | None, stars: StarsAccount | None,
                 pager: OperatorPager | None, metrics: Metrics, balance: KieBalance,
                 config: TreasuryConfig | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.db, self.kie, self.stars, self.pager, self.metrics = db, kie, stars, pager, metrics
        self.balance, self.config, self._clock = balance, config or TreasuryConfig(), clock
        self._balance_due = _Due(self.config.balance_every_s)
        self._refunds_due = _Due(self.config.refunds_every_s)
        self._reconcile_due = _Due(self.config.reconcile_every_s, clock() + 30.0)   # after adoption settles

    def run_when_due(self) -> None:
        """Each duty whose time has come; a failing duty is logged and tried again at its next turn."""
        now = self._clock()
        for due, duty in ((self._balance_due, self.read_balance), (self._refunds_due, self.send_refunds),
                          (self._reconcile_due, self.reconcile)):
            if due.ready(now):
                due.after(now)
                try:
                    duty()
                except (DatabaseUnavailable, KieError) as exc:
                    log.warning("treasurer: %s failed: %s", duty.__name__, exc, extra={"action": "treasury_error"})
                except SendError as exc:
                    if exc.outcome == SendOutcome.DEPOSED:
                        raise
                    log.warning("treasurer: %s failed: %s", duty.__name__, exc, extra={"action": "treasury_error"})

    # --- KIE balance ------------------------------------------------------------------------
    def read_balance(self) -> Decimal | None:
        if self.kie is None:
            return None
        amount = self.kie.credit()
        self.balance.set(amount)
        self.metrics.kie_balance.set(float(amount))
        return amount

    # --- refunds ----------------------------------------------------------------------------
    def send_refunds(self) -> int:
        """Send every due refund; how many were settled (refunded, already, given up)."""
        if self.stars is None:
            return 0
        settled = 0
        for payment in ledger.due_refunds(self.db):
            settled += self._refund(payment)
        return settled

    def _refund(self, payment: ledger.StarPayment) -> int:
        assert self.stars is not None
        try:
            refunded_now = self.stars.refund(payment.user_id, payment.charge_id)
        except SendError as exc:
            if exc.outcome == SendOutcome.DEPOSED:
                raise
            if exc.outcome in (SendOutcome.REJECTED, SendOutcome.UNDELIVERABLE):
                ledger.refund_given_up(self.db, payment.charge_id, exc.detail)
                self.metrics.refunds.labels("failed").inc()
                log.error("refund of %s refused by Telegram: %s", payment.charge_id, exc.detail,
                          extra={"action": "refund_failed"})
                return 1
            # Not sent, or unknown: asking again is safe (a refund done is CHARGE_ALREADY_REFUNDED).
            delay = max(exc.retry_after, REFUND_BACKOFF_S[min(payment.refund_attempts, len(REFUND_BACKOFF_S) - 1)])
            ledger.refund_retry(self.db, payment.charge_id, exc.detail, delay)
            self.metrics.refunds.labels("retry").inc()
            log.warning("refund of %s will be retried in %.0f s: %s", payment.charge_id, delay, exc.detail,
                        extra={"action": "refund_retry"})
            return 0
        ledger.refund_sent(self.db, payment.charge_id)
        self.metrics.refunds.labels("refunded" if refunded_now else "already_refunded").inc()
        log.info("refunded %s Stars of %s to user %s", payment.stars, payment.charge_id, payment.user_id,
                 extra={"action": "refunded"})
        return 1

    # --- reconciliation ---------------------------------------------------------------------
    def reconcile(self) -> list[ledger.Discrepancy]:
        """Payments on one side only (older than the grace period, within the window); recorded,
        counted, logged, and the admins told of new ones."""
        if self.stars is None:
            return []
        now = dt.datetime.now(dt.UTC)
        since = now - dt.timedelta(seconds=self.config.reconcile_window_s)
        settled_before = now - dt.timedelta(seconds=self.config.reconcile_grace_s)
        telegram = {t.id: t for t in self._transactions() if t.incoming and t.at >= since}
        ours = {r["charge_id"]: r for r in ledger.payments_since(self.db, since)}
        found = [ledger.Discrepancy(cid, "telegram_only",
                                    f"{t.amount} Stars from user {t.user_id} at {t.at:%Y-%m-%d %H:%M} UTC "
                                    "are not in the ledger")
                 for cid, t in sorted(telegram.items()) if cid not in ours and t.at < settled_before]
        found += [ledger.Discrepancy(cid, "ledger_only",
                                     f"{r['stars']} Stars from user {r['user_id']} credited, "
                                     "but Telegram does not list the payment")
                  for cid, r in sorted(ours.items()) if cid not in telegram and r["paid_at"] < settled_before]
        new = ledger.record_discrepancies(self.db, found)
        self.metrics.payment_discrepancies.set(len(found))
        for d in new:
            log.error("payment %s: %s: %s", d.charge_id, d.side, d.detail, extra={"action": "payment_discrepancy"})
        if new:
            page(self.db, self.pager, self.metrics, OperatorAlert.PAYMENT_DISCREPANCY,
                 f"{len(new)} Stars payment(s) on one side only; run `kiebot ledger check`",
                 self.config.page_period_s)
        return found

    def _transactions(self) -> list[StarTransaction]:
        assert self.stars is not None
        everything: list[StarTransaction] = []
        for number in range(MAX_PAGES):
            batch = self.stars.transactions(number * PAGE_SIZE, PAGE_SIZE)
            everything.extend(batch)
            if len(batch) < PAGE_SIZE:
                break
        return everything


def page(db: Database, pager: OperatorPager | None, metrics: Metrics, alert: OperatorAlert, detail: str,
         period_s: float = 3_600.0) -> bool:
    """Tell the admins about `alert`, at most once per period across instances and restarts
    (the claim is a database row). True when a message went out. Best effort: when it reached no
    admin, the claim is given back, so the next occurrence tries again instead of an hour later."""
    if pager is None:
        return False
    try:
        if not ledger.claim_operator_alert(db, alert.value, period_s):
            return False
        if pager.page(alert, detail) == 0:
            ledger.release_operator_alert(db, alert.value)
            return False
    except (DatabaseUnavailable, SendError) as exc:
        log.warning("could not tell the admins about %s: %s", alert.value, exc, extra={"action": "page_failed"})
        return False
    metrics.operator_pages.labels(alert.value).inc()
    return True


@dataclass(frozen=True)
class Tick:
    """Run the duties that are due."""


class Treasurer(pykka.ThreadingActor):
    """Runs a Treasury once a second while this instance leads (started and stopped by the
    JobSupervisor). A Telegram call refused as DEPOSED stops it."""

    def __init__(self, treasury: Treasury, timers: Timers) -> None:
        super().__init__()
        self.treasury, self.timers = treasury, timers

    def on_start(self) -> None:
        self.actor_ref.tell(Tick())

    def on_receive(self, message: Any) -> None:
        if not isinstance(message, Tick):
            raise TypeError(f"Treasurer got an unknown message: {message!r}")
        try:
            self.treasury.run_when_due()
        except SendError:       # DEPOSED: this epoch is over
            self.stop()
            return
        self.timers.later(TICK_S, self.actor_ref, Tick())
