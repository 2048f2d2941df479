"""SIGTERM while a result is on the wire: the leader hands over at once, finishes its send and
records it under its own claim; the next leader sends nothing more but what was left (clearing the
progress message) and records the delivery."""
from __future__ import annotations

import signal
from collections.abc import Callable

from actors.job_state import JobState
from sim.kie import KieSim
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import get_job, job_events, recent_jobs
from tests.support.harness import Process
from tests.support.waiting import wait_until

USER = 7401


def test_sigterm_during_a_slow_send_hands_over_and_the_send_is_recorded_once(
        spawn: Callable[..., Process], telegram: TelegramSim, kie: KieSim, db: Database) -> None:
    a = spawn("drain-a", KIEBOT_DELIVERY_GRACE_S="30")
    wait_until(a.active, timeout=30, what="A leads")
    b = spawn("drain-b", KIEBOT_DELIVERY_GRACE_S="30")
    wait_until(b.health, timeout=30, what="B answers /health")
    epoch_a = a.health()["epoch"]  # type: ignore[index]
    telegram.slow("sendPhoto", 8)
    telegram.user_sends(USER, "/imagine a slow harbour")
    job = wait_until(lambda: next((j for j in recent_jobs(db, USER) if j.state == JobState.DELIVERING), None),
                     timeout=15, what="A claims the delivery")
    telegram.wait_for_arrival("sendPhoto", timeout=10)     # A's send is on the wire (for 8 s)

    a.proc.send_signal(signal.SIGTERM)
    wait_until(b.active, timeout=5, what="B leads")
    assert telegram.calls("sendPhoto") == [], "B took over only after the send was performed"

    assert a.proc.wait(timeout=40) == 0, a.log()[-3000:]
    final = wait_until(lambda: (j := get_job(db, job.id)) is not None and j.terminal and j, timeout=10,
                       what="job final")
    assert final.state == JobState.DELIVERED
    # A recorded the photo it had on the wire; clearing the progress message is a send, which a
    # deposed instance may not make: A handed its claim over, and B cleared it and recorded
    # `delivered` without sending the photo again.
    epoch_b = b.health()["epoch"]  # type: ignore[index]
    events = job_events(db, job.id)
    assert [e["epoch"] for e in events if e["to_state"] == "delivering"] == [epoch_a, epoch_b]
    assert [e["epoch"] for e in events if e["to_state"] == "delivered"] == [epoch_b]
    photos = [m for m in telegram.chat(USER) if m.from_bot and m.media == "photo"]
    assert len(photos) == 1
    assert final.delivered_message_ids == [photos[0].message_id]
    assert len(telegram.calls("sendPhoto")) == 1
    assert not any(m.message_id == final.progress_message_id for m in telegram.chat(USER))
