"""A Hypothesis state machine over the credit ledger and the job path, on a real Postgres, driven
only through storage.jobs (create_job, transition) and storage.ledger, with a model of what every
user should have. Its rules: grants (refused below zero) and the welcome credit; jobs created
with random prices (or none: not for sale), agreed prices and free tiers, under the current or a
stale epoch, some with a repeated request key or tapped twice at once; every legal move of a job
(submit, succeed, fail, deadline, cancel, stop waiting, claim, re-claim, delivered, undeliverable,
delivery_unknown), some under a stale epoch or replayed; Stars payments (new, redelivered, two at
once), refunds and referrals; and the leader crashing and restarting, between steps, between a
delivery's send and its record, or in the middle of a write. After every step:

- `ledger.check` is clean: the entries sum to zero, no balance is below zero, every wallet
  equals its entries, every job's and every payment's money matches its fate;
- every wallet equals the model's: available as the model counted it, held the sum of the prices
  of the model's unresolved paid jobs;
- every job row is the model's (state, outcome, price, free, claim), and none is unknown to it;
- every job holds its price at most once and is resolved at most once: a delivered result
  captured at exactly its price, every other end (failed, cancelled, timed out, undeliverable,
  delivery_unknown) released in full, a free job never touched;
- every charge id credited exactly once, with a refund entry only of what its refund took;
- every user's entries are the model's, each once: nothing a deposed epoch wrote before its
  term ended is lost or doubled, and nothing after it is written.
"""
from __future__ import annotations

import itertools
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.job_state import TRANSITIONS, JobState
from actors.outcomes import Failure, FailureCode, JobOutcome
from sim import cluster
from storage import ledger
from storage.db import Database
from storage.jobs import (
    Created,
    Existing,
    Insufficient,
    Job,
    JobCreation,
    LostRace,
    Moved,
    NewJob,
    NotLeading,
    Repriced,
    TransitionResult,
    create_job,
    recent_jobs,
    transition,
)
from storage.ledger import Credit, EntryKind, PaymentState
from tests.conftest import TEMPLATE
from tests.support.factories import take_epoch

S = JobState
USERS = (9101, 9102, 9103)
MODELS = ("z-image", "google/nano-banana")
EVERYTHING = 10_000         # a limit no example reaches: read every row

# A job that ends in one of these was not charged: its hold is released in full.
RELEASING = frozenset({S.FAILED, S.CANCELLED, S.ABANDONED, S.UNDELIVERABLE, S.DELIVERY_UNKNOWN})
# The free tier gives a generation back when its job ends in one of these (or failed).
GIVES_FREE_BACK = frozenset({S.CANCELLED, S.ABANDONED, S.UNDELIVERABLE, S.DELIVERY_UNKNOWN})
# The way of a job to its delivery (a failed one is delivered as a notice).
NEXT_ON_THE_WAY = {S.CREATED: S.SUBMITTING, S.SUBMITTING: S.SUBMITTED, S.SUBMITTED: S.SUCCEEDED,
                   S.SUCCEEDED: S.DELIVERING, S.FAILED: S.DELIVERING}
LEGAL_PAIRS = sorted(((a, b) for a, nexts in TRANSITIONS.items() for b in nexts),
                     key=lambda pair: (pair[0].value, pair[1].value))

users = st.sampled_from(USERS)
prices = st.one_of(st.sampled_from([0, 100, 250]), st.integers(0, 1200))
grants = st.one_of(st.sampled_from([0, 500, 1000, -100, -500]), st.integers(-1500, 2500))
bonuses = st.sampled_from([0, 50, 200])
picks = st.integers(0, 1000)            # which of the eligible jobs, charges or past epochs
epochs = st.sampled_from(("current", "current", "stale"))
# Out of `delivering`, the claim's own epoch may write after its term ended (claim_fenced).
claim_epochs = st.sampled_from(("claim", "current", "stale"))
ENDS = st.sampled_from([S.DELIVERED, S.DELIVERY_UNKNOWN, S.UNDELIVERABLE])

Entry = tuple[EntryKind, int, int | None, str | None]   # kind, amount as Movement signs it, job, charge


@dataclass
class ModelJob:
    id: int
    key: str
    user: int
    model: str
    price: int              # what was held: 0 for a free or unpriced job
    free: bool
    state: JobState = S.CREATED
    outcome: JobOutcome | None = None
    claim_epoch: int | None = None
    resolution: EntryKind | None = None     # capture or release, once


@dataclass
class ModelPayment:
    charge_id: str
    user: int
    credits: int
    state: PaymentState = PaymentState.CREDITED
    taken: int | None = None


@dataclass
class ModelUser:
    available: int = 0
    welcomed: bool = False
    entries: list[Entry] = field(default_factory=list)


def pick_from(items: list[Any], pick: int) -> Any:
    """One of `items` (None when there are none: the rule then does nothing, so that which rule
    runs never depends on the model, whose state a race may decide)."""
    return items[pick % len(items)] if items else None


def on_the_way(state: JobState, states: tuple[JobState, ...]) -> bool:
    """Does the way to delivery lead from `state` to one of `states`?"""
    while state in NEXT_ON_THE_WAY:
        state = NEXT_ON_THE_WAY[state]
        if state in states:
            return True
    return False


def run_together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at once; their results in order (an error re-raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread, re-raised there
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a concurrent call never returned"
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


class LedgerMachine(RuleBasedStateMachine):
    admin_url: str = ""

    def __init__(self, url: str | None = None) -> None:
        """A fresh database cloned from the session's template, or `url` (a test's own)."""
        super().__init__()
        self.own_database: str | None = None
        if url is None:
            self.own_database = f"kiebot_l_{uuid.uuid4().hex[:10]}"
            url = cluster.create_database(self.admin_url, self.own_database, template=TEMPLATE)
        self.url = url
        self.db = Database(url, application_name="kiebot-tests-ledger")
        self.epoch = 0
        self.keys = itertools.count(1)
        self.charges = itertools.count(1)
        self.users = {u: ModelUser() for u in USERS}
        self.jobs: dict[str, ModelJob] = {}         # by request key
        self.payments: dict[str, ModelPayment] = {}
        self.referrals: dict[int, int] = {}         # user -> who brought them

    @initialize()
    def become_leader(self) -> None:
        self.restart_leader()

    # --- the model ------------------------------------------------------------------------
    def held(self, user: int) -> int:
        return sum(j.price for j in self.jobs.values() if j.user == user and j.resolution is None)

    def free_used(self, user: int, model: str) -> int:
        return sum(1 for j in self.jobs.values()
                   if j.user == user and j.model == model and j.free
                   and j.state not in GIVES_FREE_BACK and j.outcome is not JobOutcome.FAILURE)

    def in_states(self, *states: JobState) -> list[ModelJob]:
        return [j for j in self.jobs.values() if j.state in states]

    def reach(self, pick: int, *states: JobState) -> ModelJob | None:
        """A job in one of `states`: one that is there, or else one that gets there on the way to
        its delivery (moved there under the current epoch), so that few steps are spent idle."""
        job = pick_from(self.in_states(*states), pick)
        if job is not None:
            return job
        job = pick_from([j for j in self.in_states(*NEXT_ON_THE_WAY) if on_the_way(j.state, states)], pick)
        while job is not None and job.state not in states:
            self.move(job, NEXT_ON_THE_WAY[job.state], self.epoch)
        return job

    def stale_epoch(self, pick: int) -> int:
        return pick % self.epoch        # any epoch before the current one (the first leader's is 1)

    def chosen_epoch(self, choice: str, pick: int, job: ModelJob | None = None) -> int:
        if choice == "claim" and job is not None and job.claim_epoch is not None:
            return job.claim_epoch
        return self.stale_epoch(pick) if choice == "stale" else self.epoch

    def enter(self, user: int, kind: EntryKind, amount: int, job_id: int | None = None,
              charge_id: str | None = None) -> None:
        self.users[user].entries.append((kind, amount, job_id, charge_id))

    # --- the leader -------------------------------------------------------------------------
    @rule()
    def restart_leader(self) -> None:
        """The leader crashes and a new one takes the lock: every later write of the old epoch
        must be refused, and nothing it wrote lost or doubled."""
        epoch = take_epoch(self.url)
        assert epoch == self.epoch + 1
        self.epoch = epoch

    # --- grants -----------------------------------------------------------------------------
    @rule(user=users, amount=grants)
    def grant(self, user: int, amount: int) -> None:
        wallet = self.users[user]
        result = ledger.grant(self.db, user, amount, "operator")
        if wallet.available + amount < 0:
            assert result == ledger.GrantRefused(wallet.available)
            return
        assert result == ledger.Granted(wallet.available + amount)
        if amount:
            wallet.available += amount
            self.enter(user, EntryKind.GRANT, amount)

    @rule(user=users, amount=st.integers(0, 500), times=st.integers(1, 2))
    def welcome(self, user: int, amount: int, times: int) -> None:
        wallet = self.users[user]
        for _ in range(times):
            now = amount > 0 and not wallet.welcomed
            assert ledger.welcome(self.db, user, amount) is now
            if now:
                wallet.welcomed = True
                wallet.available += amount
                self.enter(user, EntryKind.WELCOME, amount)

    # --- jobs: creation ---------------------------------------------------------------------
    def new_job(self, user: int, model: str, price: int | None, free_per_day: int, epoch: int,
                key: str | None = None, agreed: int | None = None) -> NewJob:
        return NewJob(request_key=key or f"k{next(self.keys)}", chat_id=user, user_id=user, lang="en",
                      model=model, input={"prompt": "a fox"}, deadline_s=900, price=price,
                      free_per_day=free_per_day, epoch=epoch, agreed=agreed)

    def expect_creation(self, new: NewJob, result: JobCreation, *, leading: bool) -> None:
        """Check `result` against the model (which it then follows); `leading`: the epoch was current."""
        if not leading:
            assert isinstance(result, NotLeading), f"a stale epoch created: {result}"
            return
        known = self.jobs.get(new.request_key)
        if known is not None:
            assert isinstance(result, Existing), f"a repeated request key gave {result}"
            assert result.job.id == known.id and result.job.state is known.state
            return
        wallet = self.users[new.user_id]
        used = self.free_used(new.user_id, new.model)
        free = new.free_per_day > 0 and used < new.free_per_day
        charge = 0 if free else new.price
        if charge is None or (new.agreed is not None and charge > new.agreed):
            assert result == Repriced(new.price), f"not for sale or above what was agreed: {result}"
            return
        if charge > wallet.available:
            assert result == Insufficient(charge, wallet.available)
            return
        assert isinstance(result, Created), f"expected a job, got {result}"
        free_left = max(new.free_per_day - used - 1, 0) if free else 0 if new.free_per_day else None
        assert (result.available, result.free_left) == (wallet.available - charge, free_left)
        job = result.job
        assert (job.state, job.price, job.free, job.user_id) == (S.CREATED, charge, free, new.user_id)
        self.jobs[new.request_key] = ModelJob(job.id, new.request_key, new.user_id, new.model, charge, free)
        if charge:
            wallet.available -= charge
            self.enter(new.user_id, EntryKind.HOLD, -charge, job.id)

    @rule(user=users, model=st.sampled_from(MODELS), price=prices, free_per_day=st.integers(0, 2), epoch=epochs,
          pick=picks, at_balance=st.sampled_from((None, None, -1, 0, 1)),
          repeat_key=st.sampled_from((False, False, True)), for_sale=st.sampled_from((True, True, True, False)),
          agreed=st.sampled_from((None, None, 0, -1, 1)))
    def create(self, user: int, model: str, price: int, free_per_day: int, epoch: str, pick: int,
               at_balance: int | None, repeat_key: bool, for_sale: bool, agreed: int | None) -> None:
        """A confirmation tap: a new job, or a redelivered one (a known request key). The model
        may have no price (free generations only), and the user may have agreed to a price
        (`agreed`: that price, one less or one more than it)."""
        if at_balance is not None:
            price = max(0, self.users[user].available + at_balance)
        key = None
        known = pick_from(list(self.jobs.values()), pick) if repeat_key else None
        if known is not None:
            key, user = known.key, known.user
        new = self.new_job(user, model, price if for_sale else None, free_per_day, self.chosen_epoch(epoch, pick), key,
                           None if agreed is None else max(0, price + agreed))
        self.expect_creation(new, create_job(self.db, new), leading=new.epoch == self.epoch)

    @rule(user=users, price=prices, free_per_day=st.integers(0, 1))
    def double_tap(self, user: int, price: int, free_per_day: int) -> None:
        """The same request twice at once: one job, one hold."""
        new = self.new_job(user, MODELS[0], price, free_per_day, self.epoch)
        first, second = run_together(lambda: create_job(self.db, new), lambda: create_job(self.db, new))
        if isinstance(first, Existing):
            first, second = second, first
        self.expect_creation(new, first, leading=True)
        self.expect_creation(new, second, leading=True)

    # --- jobs: moves ------------------------------------------------------------------------
    def accepts(self, job: ModelJob, expected: JobState, epoch: int, claim_fenced: bool,
                expected_claim_epoch: int | None) -> bool:
        """transition's contract: the job is in `expected` (with that claim, when one is named),
        and `epoch` is the current term, or the claim's own for a claim-fenced move out of delivering."""
        if job.state is not expected:
            return False
        if expected_claim_epoch is not None and job.claim_epoch != expected_claim_epoch:
            return False
        return epoch == self.epoch or (claim_fenced and job.state is S.DELIVERING and job.claim_epoch == epoch)

    def fields(self, job: ModelJob, new: JobState, code: FailureCode) -> dict[str, Any]:
        match new:
            case S.SUBMITTED:
                return {"kie_task_id": f"task-{job.id}"}
            case S.SUCCEEDED:
                return {"outcome": JobOutcome.SUCCESS, "result_urls": [f"http://127.0.0.1/{job.id}.png"]}
            case S.FAILED:
                return {"outcome": JobOutcome.FAILURE, "failure": Failure(code, "x")}
            case S.DELIVERED:
                return {"delivered_message_ids": [job.id]}
        return {}

    def move(self, job: ModelJob, new: JobState, epoch: int, *, expected: JobState | None = None,
             claim_fenced: bool = False, expected_claim_epoch: int | None = None,
             code: FailureCode = FailureCode.KIE_FAILED) -> TransitionResult:
        expected = job.state if expected is None else expected
        result = transition(self.db, job.id, expected, new, epoch, claim_fenced=claim_fenced,
                            expected_claim_epoch=expected_claim_epoch, **self.fields(job, new, code))
        if not self.accepts(job, expected, epoch, claim_fenced, expected_claim_epoch):
            assert result == LostRace(job.id, expected, epoch), f"{expected} -> {new} at epoch {epoch}: {result}"
            return result
        assert isinstance(result, Moved), f"{expected} -> {new} at epoch {epoch} (current {self.epoch}) refused"
        self.follow(job, result.job, new, epoch)
        return result

    def follow(self, job: ModelJob, row: Job, new: JobState, epoch: int) -> None:
        """The model takes the move the database made: the state, and the job's money."""
        assert (row.state, row.epoch) == (new, epoch)
        before = job.state
        job.state = new
        if new is S.SUCCEEDED:
            job.outcome = JobOutcome.SUCCESS
        elif new is S.FAILED:
            job.outcome = JobOutcome.FAILURE
        if new is S.DELIVERING:
            job.claim_epoch = epoch
        if before is new or job.price == 0 or job.resolution is not None:
            return
        if new is S.DELIVERED and job.outcome is JobOutcome.SUCCESS:
            job.resolution = EntryKind.CAPTURE
            self.enter(job.user, EntryKind.CAPTURE, -job.price, job.id)
        elif new in RELEASING or new is S.DELIVERED:
            job.resolution = EntryKind.RELEASE
            self.users[job.user].available += job.price
            self.enter(job.user, EntryKind.RELEASE, job.price, job.id)

    @rule(pick=picks, steps=st.integers(1, 5))
    def advance(self, pick: int, steps: int) -> None:
        """A job takes the next steps of the way to its delivery (submitted, succeeded, claimed)
        under the current epoch: the other rules branch off, this one gets jobs that far."""
        job = pick_from(self.in_states(*NEXT_ON_THE_WAY), pick)
        for _ in range(steps):
            if job is None or job.state not in NEXT_ON_THE_WAY:
                return
            self.move(job, NEXT_ON_THE_WAY[job.state], self.epoch)

    @rule(pick=picks, epoch=epochs)
    def submit(self, pick: int, epoch: str) -> None:
        job = pick_from(self.in_states(S.CREATED), pick)
        if job is None:
            return
        self.move(job, S.SUBMITTING, self.chosen_epoch(epoch, pick))

    @rule(pick=picks, epoch=epochs, accepted=st.booleans())
    def create_task_answers(self, pick: int, epoch: str, accepted: bool) -> None:
        """KIE took the task (submitted), or refused it in a way worth trying again (created)."""
        job = self.reach(pick, S.SUBMITTING)
        if job is None:
            return
        self.move(job, S.SUBMITTED if accepted else S.CREATED, self.chosen_epoch(epoch, pick))

    @rule(pick=picks, epoch=epochs)
    def succeed(self, pick: int, epoch: str) -> None:
        job = self.reach(pick, S.SUBMITTING, S.SUBMITTED)
        if job is None:
            return
        self.move(job, S.SUCCEEDED, self.chosen_epoch(epoch, pick))

    @rule(pick=picks, epoch=epochs, code=st.sampled_from([FailureCode.KIE_FAILED, FailureCode.NO_KIE_CREDIT,
                                                           FailureCode.INTERNAL]))
    def fail(self, pick: int, epoch: str, code: FailureCode) -> None:
        job = self.reach(pick, S.CREATED, S.SUBMITTING, S.SUBMITTED)
        if job is None:
            return
        self.move(job, S.FAILED, self.chosen_epoch(epoch, pick), code=code)

    @rule(pick=picks, epoch=epochs)
    def deadline(self, pick: int, epoch: str) -> None:
        """The model's deadline passed while KIE had (or may have had) the task."""
        job = self.reach(pick, S.SUBMITTING, S.SUBMITTED)
        if job is None:
            return
        self.move(job, S.FAILED, self.chosen_epoch(epoch, pick), code=FailureCode.DEADLINE)

    @rule(pick=picks, epoch=epochs)
    def cancel(self, pick: int, epoch: str) -> None:
        job = pick_from(self.in_states(S.CREATED), pick)
        if job is None:
            return
        self.move(job, S.CANCELLED, self.chosen_epoch(epoch, pick))

    @rule(pick=picks, epoch=epochs)
    def stop_waiting(self, pick: int, epoch: str) -> None:
        """The user stopped waiting for a task KIE has: abandoned, never charged."""
        job = self.reach(pick, S.SUBMITTING, S.SUBMITTED)
        if job is None:
            return
        self.move(job, S.ABANDONED, self.chosen_epoch(epoch, pick))

    @rule(pick=picks, epoch=epochs)
    def claim_delivery(self, pick: int, epoch: str) -> None:
        job = self.reach(pick, S.SUCCEEDED, S.FAILED)
        if job is None:
            return
        self.move(job, S.DELIVERING, self.chosen_epoch(epoch, pick))

    @rule(pick=picks, epoch=epochs)
    def reclaim_delivery(self, pick: int, epoch: str) -> None:
        """A newer term takes over a claim (after the grace period)."""
        job = self.reach(pick, S.DELIVERING)
        if job is None:
            return
        self.move(job, S.DELIVERING, self.chosen_epoch(epoch, pick), expected_claim_epoch=job.claim_epoch)

    def finish_delivery(self, pick: int, epoch: str, end: JobState, claim_fenced: bool) -> None:
        job = self.reach(pick, S.DELIVERING)
        if job is None:
            return
        self.move(job, end, self.chosen_epoch(epoch, pick, job), claim_fenced=claim_fenced)

    @rule(pick=picks, epoch=claim_epochs, claim_fenced=st.booleans())
    def delivered(self, pick: int, epoch: str, claim_fenced: bool) -> None:
        """The claim's send is over: the result (or the failure notice) is in the chat."""
        self.finish_delivery(pick, epoch, S.DELIVERED, claim_fenced)

    @rule(pick=picks, epoch=claim_epochs, claim_fenced=st.booleans())
    def undeliverable(self, pick: int, epoch: str, claim_fenced: bool) -> None:
        """Telegram refused the send for good (the bot was blocked)."""
        self.finish_delivery(pick, epoch, S.UNDELIVERABLE, claim_fenced)

    @rule(pick=picks, epoch=claim_epochs, claim_fenced=st.booleans())
    def delivery_unknown(self, pick: int, epoch: str, claim_fenced: bool) -> None:
        """The send's outcome is unknown (at_most_once parks it)."""
        self.finish_delivery(pick, epoch, S.DELIVERY_UNKNOWN, claim_fenced)

    @rule(pick=picks, end=ENDS, reclaimed=st.booleans())
    def deposed_while_delivering(self, pick: int, end: JobState, reclaimed: bool) -> None:
        """The leader claims a delivery, sends, and is deposed before it records the send: only a
        claim-fenced write of its own claim is taken, and none once the new leader re-claimed it."""
        job = self.reach(pick, S.SUCCEEDED, S.FAILED, S.DELIVERING)
        if job is None:
            return
        if job.claim_epoch != self.epoch or job.state is not S.DELIVERING:
            self.move(job, S.DELIVERING, self.epoch,
                      expected_claim_epoch=job.claim_epoch if job.state is S.DELIVERING else None)
        claim = self.epoch
        self.restart_leader()
        self.move(job, end, claim)
        if reclaimed:
            self.move(job, S.DELIVERING, self.epoch, expected_claim_epoch=claim)
        self.move(job, end, claim, claim_fenced=True)

    @rule(pick=picks, pair=st.integers(0, len(LEGAL_PAIRS) - 1), epoch=claim_epochs)
    def replay_a_move(self, pick: int, pair: int, epoch: str) -> None:
        """A late or duplicated write: a legal move from a state the job is no longer in."""
        job = pick_from(list(self.jobs.values()), pick)
        if job is None:
            return
        stale = [p for p in LEGAL_PAIRS if p[0] is not job.state]
        expected, new = pick_from(stale, pair)
        self.move(job, new, self.chosen_epoch(epoch, pick, job), expected=expected, claim_fenced=True)

    @rule(user=users, price=prices, pick=picks, write=st.sampled_from(("create", "fail", "pay")))
    def restart_during_a_write(self, user: int, price: int, pick: int, write: str) -> None:
        """The leader changes while a job is created, a job failed or a payment credited under its
        epoch: the write is in whole (it committed before the bump) or not at all."""
        old = self.epoch
        movable = self.in_states(S.CREATED, S.SUBMITTING, S.SUBMITTED)
        if write == "fail" and movable:
            job = pick_from(movable, pick)
            fields = self.fields(job, S.FAILED, FailureCode.DEADLINE)
            moved, epoch = run_together(lambda: transition(self.db, job.id, job.state, S.FAILED, old, **fields),
                                        lambda: take_epoch(self.url))
            if isinstance(moved, Moved):
                self.follow(job, moved.job, S.FAILED, old)
            else:
                assert moved == LostRace(job.id, job.state, old)
        elif write == "pay":
            payment = self.payment(user, price + 1)
            credit, epoch = run_together(lambda: ledger.credit_payment(self.db, payment, epoch=old),
                                         lambda: take_epoch(self.url))
            if credit is Credit.CREDITED:
                self.follow_credit(payment, 0, 0)
            else:
                assert credit is Credit.DEPOSED
        else:
            new = self.new_job(user, MODELS[1], price, 0, old)
            creation, epoch = run_together(lambda: create_job(self.db, new), lambda: take_epoch(self.url))
            self.expect_creation(new, creation, leading=not isinstance(creation, NotLeading))
        assert epoch == old + 1
        self.epoch = epoch

    # --- Stars payments, refunds, referrals -------------------------------------------------
    def payment(self, user: int, credits: int, charge_id: str | None = None) -> ledger.Payment:
        return ledger.Payment(charge_id=charge_id or f"ch-{next(self.charges)}", provider_charge_id=None,
                              user_id=user, package_id="p", stars=max(1, credits // 10), credits=credits)

    def follow_credit(self, payment: ledger.Payment, referrer_bonus: int, referred_bonus: int) -> None:
        user = payment.user_id
        first = not any(p.user == user for p in self.payments.values())
        self.payments[payment.charge_id] = ModelPayment(payment.charge_id, user, payment.credits)
        self.users[user].available += payment.credits
        self.enter(user, EntryKind.PURCHASE, payment.credits, charge_id=payment.charge_id)
        referrer = self.referrals.get(user)
        if first and referrer is not None:
            for who, bonus in ((user, referred_bonus), (referrer, referrer_bonus)):
                if bonus:
                    self.users[who].available += bonus
                    self.enter(who, EntryKind.REFERRAL, bonus)

    @rule(user=users, credits=st.integers(1, 3000), referrer_bonus=bonuses, referred_bonus=bonuses,
          epoch=st.sampled_from(("current", "none", "stale")), pick=picks)
    def pay(self, user: int, credits: int, referrer_bonus: int, referred_bonus: int, epoch: str, pick: int) -> None:
        """A successful_payment with a new charge id (under the intake's epoch, or none)."""
        payment = self.payment(user, credits)
        fence = None if epoch == "none" else self.chosen_epoch(epoch, pick)
        result = ledger.credit_payment(self.db, payment, referrer_bonus=referrer_bonus,
                                       referred_bonus=referred_bonus, epoch=fence)
        if fence is not None and fence != self.epoch:
            assert result is Credit.DEPOSED
            return
        assert result is Credit.CREDITED
        self.follow_credit(payment, referrer_bonus, referred_bonus)

    @rule(pick=picks, credits=st.integers(1, 3000), bonus=bonuses)
    def pay_again(self, pick: int, credits: int, bonus: int) -> None:
        """Telegram redelivers a payment (its amount as it may have been forged): nothing more."""
        known = pick_from(list(self.payments.values()), pick)
        if known is None:
            return
        result = ledger.credit_payment(self.db, self.payment(known.user, credits, known.charge_id),
                                       referrer_bonus=bonus, referred_bonus=bonus, epoch=self.epoch)
        assert result is Credit.DUPLICATE

    @rule(user=users, credits=st.integers(1, 3000), bonus=bonuses, same_charge=st.booleans())
    def pay_concurrently(self, user: int, credits: int, bonus: int, same_charge: bool) -> None:
        """Two instances store one payment at once (exactly one credits it), or a user's two
        payments land at once (both credited, the first-purchase bonuses once)."""
        first, second = self.payment(user, credits), self.payment(user, credits + 1)
        if same_charge:
            second = first

        def credit(payment: ledger.Payment) -> Callable[[], Credit]:
            return lambda: ledger.credit_payment(self.db, payment, referrer_bonus=bonus, referred_bonus=bonus,
                                                 epoch=self.epoch)

        outcomes = run_together(credit(first), credit(second))
        if same_charge:
            assert sorted(o.value for o in outcomes) == ["credited", "duplicate"]
            self.follow_credit(first, bonus, bonus)
        else:
            assert outcomes == [Credit.CREDITED, Credit.CREDITED]
            self.follow_credit(first, bonus, bonus)
            self.follow_credit(second, bonus, bonus)

    @rule(pick=picks, times=st.integers(1, 2))
    def refund(self, pick: int, times: int) -> None:
        """The operator refunds a payment: what is still available of it is taken back, once."""
        pay = pick_from(list(self.payments.values()), pick)
        if pay is None:
            assert ledger.request_refund(self.db, "ch-0", "asked") == ledger.RefundRequest("unknown", None, None)
            return
        for _ in range(times):
            asked = ledger.request_refund(self.db, pay.charge_id, "asked")
            if pay.state is not PaymentState.CREDITED:
                assert (asked.status, asked.taken, asked.user_id) == ("already", pay.taken, pay.user)
                continue
            wallet = self.users[pay.user]
            taken = min(wallet.available, pay.credits)
            assert (asked.status, asked.taken, asked.user_id) == ("requested", taken, pay.user)
            pay.state, pay.taken = PaymentState.REFUND_REQUESTED, taken
            if taken:
                wallet.available -= taken
                self.enter(pay.user, EntryKind.REFUND, -taken, charge_id=pay.charge_id)

    @rule(pick=picks, sent=st.booleans())
    def refund_call_ends(self, pick: int, sent: bool) -> None:
        """refundStarPayment answered: done (or CHARGE_ALREADY_REFUNDED), or refused for good."""
        pay = pick_from(list(self.payments.values()), pick)
        if pay is None:
            return
        requested = pay.state is PaymentState.REFUND_REQUESTED
        if sent:
            assert ledger.refund_sent(self.db, pay.charge_id) is requested
        else:
            ledger.refund_given_up(self.db, pay.charge_id, "CHARGE_NOT_FOUND")
        if requested:
            pay.state = PaymentState.REFUNDED if sent else PaymentState.REFUND_FAILED

    @rule(pick=picks, referrer=users)
    def refer(self, pick: int, referrer: int) -> None:
        """/start ref_<code>: remembered once, never oneself, no loops, only before a first purchase.
        (Mostly a user who may still be referred, or the bonuses would seldom be earned.)"""
        fresh = [u for u in USERS if u not in self.referrals and not any(p.user == u for p in self.payments.values())]
        user = pick_from(fresh if fresh and pick % 4 else list(USERS), pick)
        ancestor, loop = self.referrals.get(referrer), False
        while ancestor is not None and not loop:
            loop = ancestor == user
            ancestor = self.referrals.get(ancestor)
        now = (user != referrer and not loop and user not in self.referrals
               and not any(p.user == user for p in self.payments.values()))
        assert ledger.record_referral(self.db, user, referrer) is now
        if now:
            self.referrals[user] = referrer

    # --- invariants -------------------------------------------------------------------------
    @invariant()
    def ledger_check_is_clean(self) -> None:
        """The entries sum to zero and no balance is below zero, wallets equal entries, every
        job's and payment's money matches its fate (kiebot ledger check)."""
        report = ledger.check(self.db)
        assert report.clean, "\n".join(report.violations)

    @invariant()
    def wallets_match_the_model(self) -> None:
        for user, model in self.users.items():
            wallet = ledger.wallet(self.db, user)
            assert wallet.available >= 0 and wallet.held >= 0
            assert (wallet.available, wallet.held) == (model.available, self.held(user)), f"user {user}"

    @invariant()
    def jobs_match_the_model(self) -> None:
        rows = {j.id: j for user in USERS for j in recent_jobs(self.db, user, EVERYTHING)}
        assert sorted(rows) == sorted(j.id for j in self.jobs.values()), "a job the model does not know"
        for job in self.jobs.values():
            row = rows[job.id]
            assert (row.state, row.outcome, row.price, row.free, row.user_id, row.claim_epoch) == \
                (job.state, job.outcome and job.outcome.value, job.price, job.free, job.user, job.claim_epoch), \
                f"job {job.id}"

    @invariant()
    def every_unit_is_accounted_for(self) -> None:
        """From the entries alone: each job held its price at most once and was charged as its
        fate says; each charge credited once; each user's entries the model's, each once."""
        entries = {u: [(m.kind, m.amount, m.job_id, m.charge_id) for m in ledger.movements(self.db, u, EVERYTHING)]
                   for u in USERS}
        by_job: dict[int, Counter[EntryKind]] = defaultdict(Counter)
        amounts: dict[tuple[int, EntryKind], int] = {}
        by_charge: dict[str, Counter[EntryKind]] = defaultdict(Counter)
        for kind, amount, job_id, charge_id in itertools.chain.from_iterable(entries.values()):
            if job_id is not None:
                by_job[job_id][kind] += 1
                amounts[job_id, kind] = abs(amount)
            if charge_id is not None:
                by_charge[charge_id][kind] += 1
        for job in self.jobs.values():
            money = by_job.get(job.id, Counter())
            assert all(n <= 1 for n in money.values()), f"job {job.id} moved twice: {money}"
            assert money[EntryKind.CAPTURE] + money[EntryKind.RELEASE] <= 1, f"job {job.id} resolved twice"
            if job.price == 0:
                assert not money, f"free or unpriced job {job.id} moved money: {money}"
                continue
            assert amounts[job.id, EntryKind.HOLD] == job.price, f"job {job.id}: hold is not its price"
            if job.state is S.DELIVERED and job.outcome is JobOutcome.SUCCESS:
                assert amounts.get((job.id, EntryKind.CAPTURE)) == job.price, f"job {job.id} delivered, not charged"
            elif job.state in RELEASING or job.state is S.DELIVERED or job.outcome is JobOutcome.FAILURE:
                assert amounts.get((job.id, EntryKind.RELEASE)) == job.price, f"job {job.id} ended, not released"
                assert not money[EntryKind.CAPTURE], f"job {job.id} charged for an end that is not a result"
            else:
                assert money == Counter({EntryKind.HOLD: 1}), f"job {job.id} ({job.state}) resolved early"
        unknown = set(by_charge) - set(self.payments)
        assert not unknown, f"entries of charges never credited: {unknown}"
        for pay in self.payments.values():
            money = by_charge.get(pay.charge_id, Counter())
            assert money[EntryKind.PURCHASE] == 1, f"charge {pay.charge_id} credited {money[EntryKind.PURCHASE]} times"
            assert money[EntryKind.REFUND] == (1 if pay.taken else 0), f"charge {pay.charge_id}: {money}"
        for user, model in self.users.items():
            stored, expected = Counter(entries[user]), Counter(model.entries)
            assert stored == expected, f"user {user}: missing {expected - stored}, unexpected {stored - expected}"

    @invariant()
    def payments_match_the_model(self) -> None:
        stored = {p.charge_id: (p.user_id, p.credits, p.state, p.refund_taken)
                  for user in USERS for p in ledger.user_payments(self.db, user, EVERYTHING)}
        assert stored == {p.charge_id: (p.user, p.credits, p.state, p.taken) for p in self.payments.values()}

    def teardown(self) -> None:
        self.db.close()
        if self.own_database is not None:
            cluster.drop_database(self.admin_url, self.own_database)


def test_ledger_and_job_path_state_machine(pg_admin_url: str, template_url: str) -> None:
    LedgerMachine.admin_url = pg_admin_url
    case = LedgerMachine.TestCase
    case.settings = settings(max_examples=25, stateful_step_count=100, deadline=None, derandomize=True,
                             suppress_health_check=list(HealthCheck))
    case().runTest()


def test_the_machine_catches_a_delivered_job_that_was_never_charged(database_url: str, sql: Any) -> None:
    """With the trigger that resolves holds switched off, a delivery captures nothing, and the
    machine's invariants say so."""
    machine = LedgerMachine(url=database_url)
    try:
        machine.become_leader()
        machine.grant(user=USERS[0], amount=1000)
        machine.create(user=USERS[0], model=MODELS[0], price=300, free_per_day=0, epoch="current", pick=0,
                       at_balance=None, repeat_key=False, for_sale=True, agreed=None)
        machine.submit(pick=0, epoch="current")
        machine.create_task_answers(pick=0, epoch="current", accepted=True)
        machine.succeed(pick=0, epoch="current")
        machine.claim_delivery(pick=0, epoch="current")
        machine.ledger_check_is_clean()
        machine.every_unit_is_accounted_for()
        sql.execute("ALTER TABLE jobs DISABLE TRIGGER jobs_resolve_hold")
        machine.delivered(pick=0, epoch="claim", claim_fenced=True)
        [job] = machine.jobs.values()
        assert job.state is S.DELIVERED
        machine.jobs_match_the_model()          # the job path itself is as it should be: only the money is not
        with pytest.raises(AssertionError, match=f"job {job.id} .*captured None"):
            machine.ledger_check_is_clean()
        with pytest.raises(AssertionError, match=f"user {USERS[0]}"):
            machine.wallets_match_the_model()
        with pytest.raises(AssertionError, match=f"job {job.id} delivered, not charged"):
            machine.every_unit_is_accounted_for()
    finally:
        machine.teardown()
