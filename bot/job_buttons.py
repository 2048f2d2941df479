"""The buttons on a job's progress message, Cancel and Stop waiting, as callback_data built and
parsed in one place: `jc:<action>:<job>`, where the job is `j<id>`, or `k<request key>` on the
first progress message (sent before the job row, and so its id, exists). bot/job_controls.py
handles a press; bot/callback_data.py leaves these to it (PATTERN routes them there).
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from bot.callback_data import MAX_BYTES

PREFIX = "jc"
PATTERN = re.compile(rf"^{PREFIX}:")


class Control(enum.Enum):
    CANCEL = "c"            # end the job if KIE does not have it yet, else offer to stop waiting
    STOP_WAITING = "s"      # end it whatever KIE still does; its result is never sent


@dataclass(frozen=True)
class JobButton:
    """A press on a job's control: the job by id, or by the request key that made it."""

    control: Control
    job_id: int | None = None
    request_key: str | None = None


def build(control: Control, *, job_id: int | None = None, request_key: str | None = None) -> str | None:
    """The callback_data for a control of one job; None when a request key is too long for it
    (the progress message then gets its buttons from the JobActor, by id)."""
    if job_id is not None:
        out = f"{PREFIX}:{control.value}:j{job_id}"
    elif request_key:
        out = f"{PREFIX}:{control.value}:k{request_key}"
    else:
        raise ValueError("a job control needs the job's id or request key")
    return out if len(out.encode()) <= MAX_BYTES else None


def parse(raw: str | None) -> JobButton | None:
    """None for anything that is not a job control we built."""
    prefix, _, rest = (raw or "").partition(":")
    action, _, ref = rest.partition(":")
    if prefix != PREFIX or len(ref) < 2:
        return None
    try:
        control = Control(action)
    except ValueError:
        return None
    kind, value = ref[0], ref[1:]
    if kind == "j" and value.isdigit():
        return JobButton(control, job_id=int(value))
    if kind == "k":
        return JobButton(control, request_key=value)
    return None
