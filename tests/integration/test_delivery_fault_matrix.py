"""The delivery fault matrix, in-process: each step of a delivery × each fault ends with every
part in the chat exactly once and the job final (tests/support/delivery_matrix.py has the steps
and the counting).

The only tolerated deviations are the documented ones for a part whose outcome was unknowable
(the answer was lost or reset, or a 500 came back, which the bot cannot tell from "not sent"):
under at_least_once that part is resent (one extra copy if it had been performed); under
at_most_once no part is sent twice and the job is parked `delivery_unknown` with the parts after
it unsent. Edits are safe to repeat, so the notice edit and the progress edit never end
unknown. A database error or a loss of leadership never makes a known outcome unknown: the job
ends `delivered` under both policies.

Representative subset (CASES), to stay under ~4 minutes: the second album (a resume after a
recorded part) gets every fault under both policies; every other step gets each fault that
applies to it at least once, the policy varied where it changes the outcome. Faults: 429 with
retry_after 1 (waited inline) and 7 (back to the actor), 500, a dropped answer, a TCP reset
before / after performing, a database error on the write that follows the send (the
instance's pooled backends terminated while the send is slowed), loss of leadership between
the send and that write (the lock session terminated while the send is slowed; a standby takes
over). Client pacing is off: with it, the second album always waits ~10 s for its chat slot.
SIGTERM and SIGKILL: tests/system/test_delivery_fault_matrix_kills.py.
"""
from __future__ import annotations

from collections.abc import Callable

import pytest

from sim.kie import KieSim
from sim.telegram import TelegramSim
from storage.db import Database
from tests.support.delivery_matrix import (
    ALO,
    AMO,
    PERFORMED,
    STEPS,
    USER,
    allowed_counts,
    arm,
    assert_final,
    on_the_wire,
    the_job,
)
from tests.support.harness import Instance
from tests.support.sessions import terminate
from tests.support.waiting import wait_until

GRACE_S = "4"           # longer than a slowed send (1.5 s): a standby trusts a claim on the wire

CASES = [
    *[("album_2", fault, policy) for fault in ("drop", "reset_before", "reset_after", "500", "db", "leader")
      for policy in (ALO, AMO)],
    ("album_2", "429_short", ALO), ("album_2", "429_long", AMO),
    ("album_1", "429_short", AMO), ("album_1", "500", ALO), ("album_1", "drop", AMO),
    ("album_1", "reset_before", ALO), ("album_1", "db", ALO), ("album_1", "leader", ALO),
    ("buttons", "429_short", ALO), ("buttons", "429_long", ALO), ("buttons", "500", AMO),
    ("buttons", "drop", ALO), ("buttons", "drop", AMO), ("buttons", "reset_before", AMO),
    ("delivered_write", "db", ALO), ("delivered_write", "db", AMO), ("delivered_write", "leader", ALO),
    ("delivered_write", "leader", AMO),
    ("notice_edit", "429_short", ALO), ("notice_edit", "429_long", AMO), ("notice_edit", "500", AMO),
    ("notice_edit", "drop", AMO), ("notice_edit", "reset_before", ALO), ("notice_edit", "reset_after", AMO),
    ("notice_edit", "db", AMO), ("notice_edit", "leader", ALO),
    ("notice_message", "429_short", ALO), ("notice_message", "500", ALO), ("notice_message", "drop", ALO),
    ("notice_message", "drop", AMO), ("notice_message", "reset_before", AMO), ("notice_message", "db", AMO),
    ("notice_message", "leader", ALO),
    ("progress_edit", "429_long", ALO), ("progress_edit", "drop", AMO), ("progress_edit", "reset_before", AMO),
]


@pytest.mark.parametrize(("step_name", "fault", "policy"), CASES, ids=[f"{s}-{f}-{p}" for s, f, p in CASES])
def test_every_part_once_and_the_job_final(step_name: str, fault: str, policy: str,
                                           instance_factory: Callable[..., Instance], kie: KieSim,
                                           telegram: TelegramSim, db: Database, database_url: str) -> None:
    step = STEPS[step_name]
    env = {"DELIVERY_POLICY": policy, "KIEBOT_CLIENT_PACING": "off", "KIEBOT_DELIVERY_GRACE_S": GRACE_S}
    leader = instance_factory(**env)
    wait_until(lambda: leader.runtime.status.active, timeout=10, what="the first instance leads")
    if fault == "leader":
        standby = instance_factory(**env)
        wait_until(lambda: standby.runtime.status.db_ok, timeout=10, what="the standby is up")
    kie.script_next(step.fate())
    arm(telegram, step, "slow" if fault in ("db", "leader") else fault)
    telegram.user_sends(USER, "/imagine every part once")

    if fault in ("db", "leader"):
        wait_until(on_the_wire(db, step), timeout=20, what=f"{step.name} on the wire")
        if fault == "db":
            assert terminate(database_url, "kiebot-it-1") >= 1, "no pooled backend to cut"
        else:
            assert terminate(database_url, "kiebot-leader-it-1") == 1

    job = wait_until(lambda: (j := the_job(db)) is not None and j.terminal and j, timeout=45,
                     what="the job is final")
    # The faulted call may still be on the wire (a standby parked the job meanwhile): count the
    # chat once the simulator has answered it.
    wait_until(lambda: len(telegram.calls(step.method)) > step.spare, timeout=10, what="the faulted call answered")
    state, allowed = allowed_counts(step, unknown_at=step.unknowable and fault in PERFORMED,
                                    performed=PERFORMED.get(fault, False), policy=policy)
    assert_final(telegram, job, state, allowed)
