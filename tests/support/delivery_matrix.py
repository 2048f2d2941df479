"""The delivery fault matrix's vocabulary, shared by its in-process and its process tests: the
steps of a delivery, how a fault is aimed at one, and how the chat is counted part by part.

A success of PHOTOS results is three parts (an album of 10, an album of 2, the buttons
message); a failure is one (the notice). Photos are counted by the result URL they were sent
from (the simulator caches a URL's file, so the same URL twice is the same file_id twice), the
buttons message by its buttons, the notice by the failure text.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from actors.job_state import JobState
from sim.kie_tasks import Fate
from sim.telegram import TelegramSim
from storage.db import Database
from storage.jobs import Job, recent_jobs

USER = 7301
PHOTOS = 12
FAIL_MSG = "the matrix refused this one"
EDIT_GONE = "Bad Request: message to edit not found"
ALO, AMO = "at_least_once", "at_most_once"
# Faults after which the bot cannot know whether the part is in the chat, and whether it is.
PERFORMED = {"drop": True, "reset_after": True, "reset_before": False, "500": False}


@dataclass(frozen=True)
class Step:
    """One step of a delivery: which Bot API call it is, and where it sits."""

    name: str
    method: str
    spare: int = 0          # earlier calls of `method` in this job, spared from the fault
    part: int = 0           # the part of the plan this step sends
    failing: bool = False   # a failed job: its one part is the notice
    unknowable: bool = True  # a lost answer leaves the part's fate unknown (edits: no)
    generating_s: float = 0.2

    def fate(self) -> Fate:
        if self.failing:
            return Fate(outcome="fail", fail_msg=FAIL_MSG, duration_s=self.generating_s)
        return Fate(result_count=PHOTOS, duration_s=self.generating_s)


STEPS = {s.name: s for s in (
    Step("progress_edit", "editMessageText", unknowable=False, generating_s=6.0),  # "generating", at submission
    Step("album_1", "sendMediaGroup"),
    Step("album_2", "sendMediaGroup", spare=1, part=1),
    Step("buttons", "sendMessage", spare=1, part=2),            # spared: the progress message
    Step("notice_edit", "editMessageText", spare=1, failing=True, unknowable=False),  # spared: "generating"
    Step("notice_message", "sendMessage", spare=1, failing=True),   # after the edit is refused
    Step("delivered_write", "sendMessage", spare=1, part=2),    # the write after the last send
)}


def arm(telegram: TelegramSim, step: Step, fault: str, slow_s: float = 1.5) -> None:
    """Script `fault` for `step`'s call before the job starts (its earlier calls are spared).
    "slow" (for a database error, a lost lock or a signal during the step) slows every call of
    the step's method, so the test can act while it is on the wire."""
    if step.name == "notice_message":
        telegram.spare_next("editMessageText", 1)          # "generating", at submission
        telegram.fail_next("editMessageText", 1, status=400, description=EDIT_GONE)
    if step.spare:
        telegram.spare_next(step.method, step.spare)
    match fault:
        case "429_short" | "429_long":
            telegram.fail_next(step.method, 1, status=429, retry_after=1 if fault == "429_short" else 7)
        case "500":
            telegram.fail_next(step.method, 1, status=500)
        case "drop":
            telegram.drop_next_response(step.method)
        case "reset_before" | "reset_after":
            telegram.reset_next(step.method, performed=fault == "reset_after")
        case "slow":
            telegram.slow(step.method, slow_s)
        case "none":
            pass
        case _:
            raise AssertionError(f"unknown fault {fault}")


def the_job(db: Database) -> Job | None:
    jobs = recent_jobs(db, USER)
    return jobs[0] if jobs else None


def on_the_wire(db: Database, step: Step) -> Callable[[], bool]:
    """The job is sending `step`'s part: claimed, with the parts before it recorded."""
    def check() -> bool:
        job = the_job(db)
        return job is not None and job.state == JobState.DELIVERING and len(job.delivery_parts) == step.part
    return check


def photo_indexes(telegram: TelegramSim) -> dict[str, int]:
    """file_id -> the index of the result URL it was sent from (…_<index>.png)."""
    index: dict[str, int] = {}
    for call in telegram.calls("sendMediaGroup"):
        if call.status != 200:
            continue
        for item, message in zip(call.params["media"], call.response["result"]):
            match = re.search(r"_(\d+)\.\w+$", str(item["media"]))
            assert match, item
            index[message["photo"][-1]["file_id"]] = int(match.group(1))
    return index


def part_counts(telegram: TelegramSim, job: Job) -> list[list[int]]:
    """How often each item of each part is in the chat: [[photo 0..9], [photo 10, 11], [buttons]]
    for a success, [[notice]] for a failure."""
    chat = [m for m in telegram.chat(USER) if m.from_bot]
    if job.outcome != "success":
        return [[sum(1 for m in chat if FAIL_MSG in (m.text or ""))]]
    index = photo_indexes(telegram)
    photos = Counter(index.get(m.file_id or "", -1) for m in chat if m.media == "photo")
    assert photos[-1] == 0, "a photo the results do not explain"
    buttons = sum(1 for m in chat if m.media is None and (m.text or "").startswith("⬆️")
                  and any(data == f"job:regen:{job.id}" for row in m.buttons for _, data in row))
    return [[photos[i] for i in range(10)], [photos[i] for i in range(10, PHOTOS)], [buttons]]


def allowed_counts(step: Step, *, unknown_at: bool, performed: bool, policy: str) -> tuple[JobState, list[set[int]]]:
    """The final state and, per part, the counts allowed for each of its items: every part once,
    unless `step`'s part was left unknown (`unknown_at`): then at_least_once resends it (a second
    copy if it had been `performed`), and at_most_once parks the job with nothing sent after it."""
    allowed = [{1} for _ in range(1 if step.failing else 3)]
    if not unknown_at:
        return JobState.DELIVERED, allowed
    if policy == ALO:
        allowed[step.part] = {1, 2} if performed else {1}
        return JobState.DELIVERED, allowed
    allowed[step.part] = {1} if performed else {0}
    for later in range(step.part + 1, len(allowed)):
        allowed[later] = {0}
    return JobState.DELIVERY_UNKNOWN, allowed


def assert_final(telegram: TelegramSim, job: Job, state: JobState, allowed: list[set[int]]) -> None:
    counts = part_counts(telegram, job)
    assert job.state == state, (job.state, counts)
    for number, (items, ok) in enumerate(zip(counts, allowed)):
        assert all(count in ok for count in items), f"part {number}: {items}, allowed {ok}"
