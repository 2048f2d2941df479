"""The delivery fault matrix with real `kiebot run` processes: the leader is killed (SIGKILL, at
a crash point of actors/job.py) or stopped (SIGTERM, while the step's send is on the wire)
during a step of a delivery; the standby finishes it, every part exactly once.

Representative subset, to stay under ~3 minutes (tests/support/delivery_matrix.py has the
steps and the counting):
- SIGKILL: after the claim (nothing sent), after the send of album 1, of album 2 (under both
  policies), of the buttons message, of the notice edit, and after the `delivered` write. A kill
  between a send and its record leaves that part's outcome unknowable: under at_least_once it is
  sent again (at most one extra copy), under at_most_once the job is parked `delivery_unknown`
  with nothing sent after it.
- SIGTERM while album 1, album 2 (under both policies), the buttons message or the notice edit
  is on the wire (slowed to 2 s): the leader finishes and records that send, hands the claim
  back, exits 0, and the standby sends the rest: every part once, `delivered`, either policy.
Client pacing is off, as in the in-process matrix.
"""
from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from actors.job_state import JobState
from sim.kie import KieSim
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import Job
from tests.support.delivery_matrix import ALO, AMO, STEPS, USER, allowed_counts, arm, assert_final, on_the_wire, the_job
from tests.support.harness import Process
from tests.support.waiting import wait_until

SLOW_S = 2.0
KILLS = [  # (step, crash point, its passage, policy)
    ("album_1", "after_claim", 1, ALO),
    ("album_1", "after_send", 1, ALO),
    ("album_2", "after_send", 2, ALO),
    ("album_2", "after_send", 2, AMO),
    ("buttons", "after_send", 3, ALO),
    ("notice_edit", "after_send", 1, ALO),
    ("delivered_write", "after_record", 1, ALO),
]
TERMS = [("album_1", ALO), ("album_2", ALO), ("album_2", AMO), ("buttons", ALO), ("notice_edit", ALO)]


def leader_and_standby(spawn: Callable[..., Process], **env: str) -> tuple[Process, Process]:
    leader = spawn("leader", KIEBOT_CLIENT_PACING="off", **env)
    wait_until(leader.active, timeout=30, what="the first process leads")
    standby = spawn("standby", KIEBOT_CLIENT_PACING="off",
                    **{k: v for k, v in env.items() if not k.startswith("KIEBOT_CRASHPOINT")})
    wait_until(standby.health, timeout=30, what="the standby answers")
    return leader, standby


def final_job(db: Database, standby: Process) -> Job:
    wait_until(standby.active, timeout=15, what="the standby takes over")
    job: Job = wait_until(lambda: (j := the_job(db)) is not None and j.terminal and j, timeout=45,
                          what="the job is final")
    return job


@pytest.mark.parametrize(("step_name", "point", "after", "policy"), KILLS,
                         ids=[f"{s}-{p}{a}-{pol}" for s, p, a, pol in KILLS])
def test_sigkill_during_a_step_leaves_every_part_once(step_name: str, point: str, after: int, policy: str,
                                                      spawn: Callable[..., Process], kie: KieSim,
                                                      telegram: TelegramSim, db: Database) -> None:
    step = STEPS[step_name]
    leader, standby = leader_and_standby(spawn, DELIVERY_POLICY=policy, KIEBOT_CRASHPOINT=point,
                                         KIEBOT_CRASHPOINT_AFTER=str(after))
    kie.script_next(step.fate())
    telegram.user_sends(USER, "/imagine killed mid-delivery")
    wait_until(lambda: leader.proc.poll() is not None, timeout=30, what=f"the leader dies at {point} #{after}")
    assert leader.proc.returncode == -signal.SIGKILL
    job = final_job(db, standby)
    # after_send: the part is in the chat and not recorded. An edit is safe to repeat.
    unknown = point == "after_claim" or (point == "after_send" and step.unknowable)
    state, allowed = allowed_counts(step, unknown_at=unknown, performed=point == "after_send", policy=policy)
    assert_final(telegram, job, state, allowed)


@pytest.mark.parametrize(("step_name", "policy"), TERMS, ids=[f"{s}-{p}" for s, p in TERMS])
def test_sigterm_during_a_step_finishes_the_send_and_the_standby_the_rest(
        step_name: str, policy: str, spawn: Callable[..., Process], kie: KieSim, telegram: TelegramSim,
        db: Database) -> None:
    step = STEPS[step_name]
    # The grace period outlasts the slowed send: the standby trusts the claim on the wire.
    leader, standby = leader_and_standby(spawn, DELIVERY_POLICY=policy, KIEBOT_DELIVERY_GRACE_S="6")
    kie.script_next(step.fate())
    arm(telegram, step, "slow", slow_s=SLOW_S)
    telegram.user_sends(USER, "/imagine stopped mid-delivery")
    wait_until(on_the_wire(db, step), timeout=30, what=f"{step.name} on the wire")
    leader.proc.send_signal(signal.SIGTERM)
    assert leader.proc.wait(timeout=30) == 0
    job = final_job(db, standby)
    wait_until(lambda: len(telegram.calls(step.method)) > step.spare, timeout=10, what="the slowed call answered")
    _, allowed = allowed_counts(step, unknown_at=False, performed=False, policy=policy)
    assert_final(telegram, job, JobState.DELIVERED, allowed)
