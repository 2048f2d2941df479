"""The operator's KIE account as the leader sees it: a 402 fails the job plainly and charges
nothing, the admins hear of it once an hour, a balance read below a job's cost refuses the job
before createTask, and what KIE says it charged is kept next to what we expected."""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from actors.job_state import JobState
from actors.outcomes import FailureCode
from sim.kie import KieSim
from sim.telegram import TelegramSim
from storage import ledger
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER, OTHER, ADMIN = 4601, 4602, 4690


def settled(db: Database, user: int, count: int = 1) -> list[Job]:
    return wait_until(lambda: (js := recent_jobs(db, user)) and len(js) == count and all(j.terminal for j in js)
                      and js, timeout=30, what=f"{count} final job(s) of user {user}")


def leading(instance_factory: Callable[..., Instance], **env: str) -> Instance:
    inst = instance_factory(**env)
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="instance leads")
    return inst


def bot_texts(telegram: TelegramSim, chat: int) -> list[str]:
    return [m.text or m.caption or "" for m in telegram.chat(chat) if m.from_bot]


def test_an_empty_kie_account_fails_jobs_plainly_charges_nothing_and_pages_the_admins_once(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    inst = leading(instance_factory, ADMIN_IDS=str(ADMIN))
    wait_until(lambda: inst.runtime.metrics.kie_balance._value.get() > 0, what="the leader read the balance")
    kie.set_balance(0)      # emptied after that read: KIE itself says 402
    telegram.user_sends(ADMIN, "/start")          # the admin has a chat with the bot
    telegram.user_sends(USER, "/imagine a lighthouse at dawn")
    [job] = settled(db, USER)
    assert (job.state, job.outcome) == (JobState.DELIVERED, "failure")
    assert job.failure is not None and job.failure.code is FailureCode.NO_KIE_CREDIT
    assert job.failure.detail == "402"
    telegram.user_sends(OTHER, "/imagine a fox in the snow")
    [other] = settled(db, OTHER)
    # The 402 zeroed the known balance: the second job never reached createTask.
    assert other.failure is not None and other.failure.code is FailureCode.NO_KIE_CREDIT
    assert other.failure.detail == "balance"
    assert len(kie.calls("createTask")) == 1
    for user in (USER, OTHER):
        assert ledger.wallet(db, user) == ledger.Wallet(user, 0, 0)
        notice = telegram.wait_for_chat(user, lambda c: any(m.from_bot and "charged" in (m.text or "") for m in c))
        assert notice
    pages = [t for t in bot_texts(telegram, ADMIN) if "KIE" in t]
    assert len(pages) == 1, pages
    metrics = inst.runtime.metrics.render().decode()
    assert 'kiebot_kie_no_credit_total{reason="402"} 1.0' in metrics
    assert 'kiebot_kie_no_credit_total{reason="balance"} 1.0' in metrics
    assert 'kiebot_operator_pages_total{alert="kie_no_credit"} 1.0' in metrics
    assert ledger.check(db).clean


def test_a_balance_read_below_a_jobs_cost_refuses_it_before_create_task(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.set_balance("0.1")
    inst = leading(instance_factory)
    wait_until(lambda: inst.runtime.metrics.kie_balance._value.get() == 0.1, what="the leader read the balance")
    telegram.user_sends(USER, "/imagine a lighthouse at dawn")
    [job] = settled(db, USER)
    assert job.failure is not None and (job.failure.code, job.failure.detail) == (FailureCode.NO_KIE_CREDIT, "balance")
    assert kie.calls("createTask") == []
    assert ledger.check(db).clean


def test_what_kie_charged_is_kept_next_to_what_we_expected(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.set_price("z-image", "1.2")
    telegram.user_sends(USER, "/imagine a lighthouse at dawn")
    [job] = settled(db, USER)
    assert job.state is JobState.DELIVERED and job.outcome == "success"
    assert job.kie_credits_consumed == Decimal("1.2")
    assert job.kie_credits_quoted is not None and job.kie_credits_quoted > 0
    metrics = bot.runtime.metrics.render().decode()
    assert 'kiebot_kie_credits_consumed_total{model="z-image"} 1.2' in metrics
    assert f'kiebot_kie_credits_quoted_total{{model="z-image"}} {float(job.kie_credits_quoted)}' in metrics
