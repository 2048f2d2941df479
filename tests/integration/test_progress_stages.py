"""A job's progress message changes stage in its turn; only the count's refresh gives way.

A refresh (the elapsed time moving on, every PROGRESS_PRIVATE_S) is skipped while Telegram's
pace is booked by other sends (bot/flood_control.py). "starting…" becoming "generating…" is a
change of stage: it is shown as soon as KIE has the task, never left to the first refresh,
which a busy bot could skip again and again."""
from __future__ import annotations

from actors.job import PROGRESS_PRIVATE_S
from actors.job_state import JobState
from sim.kie import KieSim
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import recent_jobs
from tests.support.harness import Instance
from tests.support.waiting import wait_until

USER = 8701


def test_a_job_shows_generating_as_soon_as_kie_has_it_not_at_the_first_refresh(
        bot: Instance, telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    kie.script_next(Fate(outcome="stuck"))
    telegram.user_sends(USER, "/imagine a lighthouse at dusk")
    job = wait_until(lambda: next((j for j in recent_jobs(db, USER) if j.state is JobState.SUBMITTED), None),
                     timeout=10, what="the job at KIE")
    starting = next(c for c in telegram.calls("sendMessage") if int(c.params["chat_id"]) == USER
                    and "starting" in str(c.params["text"]))
    edits = wait_until(lambda: [c for c in telegram.calls("editMessageText")
                                if int(c.params["message_id"]) == job.progress_message_id
                                and "generating" in str(c.params["text"])],
                       timeout=10, what="the progress message shows generating")
    assert edits[0].at - starting.at < PROGRESS_PRIVATE_S, "shown by the first refresh, not at submission"
