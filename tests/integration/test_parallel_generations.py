"""More than one generation at once (#14, a queue instead of a refusal): with
KIEBOT_MAX_ACTIVE_JOBS=2, three /imagine in a row run two at once and queue the third, which
starts by itself as soon as one of the two finishes, while the other is still running."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import Job, recent_jobs
from tests.support.harness import Instance
from tests.support.pricing import roomy_pricing
from tests.support.waiting import wait_until

USER = 7601
S = JobState


def jobs_when(db: Database, *states: JobState) -> list[Job]:
    """The user's jobs, oldest first, once they are in exactly `states` (in that order)."""
    seen: list[Job] = []

    def ready() -> list[Job]:
        seen[:] = sorted(recent_jobs(db, USER, 50), key=lambda j: j.id)
        return list(seen) if tuple(j.state for j in seen) == states else []
    try:
        return wait_until(ready, timeout=30, what=f"the jobs in {[s.value for s in states]}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; they are {[j.state.value for j in seen]}") from None


def test_with_two_at_once_three_imagines_run_two_and_the_third_starts_when_one_finishes(
        instance_factory: Callable[..., Instance], telegram: TelegramSim, kie: KieSim, db: Database,
        tmp_path: Path) -> None:
    inst = instance_factory(KIEBOT_MAX_ACTIVE_JOBS="2", KIEBOT_PRICING=roomy_pricing(tmp_path))
    wait_until(lambda: inst.runtime.status.active, timeout=10, what="instance becomes leader")
    kie.script_next(Fate(outcome="stuck"), 3)
    for n in (1, 2, 3):
        telegram.user_sends(USER, f"/imagine side by side {n}")
    first, second, third = jobs_when(db, S.SUBMITTED, S.SUBMITTED, S.QUEUED)
    assert len(kie.tasks()) == 2
    progress = next(m for m in telegram.chat(USER) if m.message_id == third.progress_message_id)
    assert "next in your queue" in (progress.text or "")

    kie.complete_now(first.kie_task_id or "")         # one of the two finishes; the other runs on
    jobs_when(db, S.DELIVERED, S.SUBMITTED, S.SUBMITTED)
    assert len(kie.tasks()) == 3

    for job in (second, third):
        kie.complete_now(next(j.kie_task_id for j in recent_jobs(db, USER) if j.id == job.id) or "")
    jobs_when(db, S.DELIVERED, S.DELIVERED, S.DELIVERED)
    telegram.wait_for_chat(USER, lambda c: sum(1 for m in c if m.from_bot and m.media == "photo") == 3, timeout=20)
    prompts = [c["body"]["input"]["prompt"] for c in kie.calls("createTask")]
    # The first two were sent side by side (in either order), the third after them.
    assert sorted(prompts[:2]) == ["side by side 1", "side by side 2"] and prompts[2:] == ["side by side 3"]
