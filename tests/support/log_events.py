"""Waiting on what an instance logs: a test that must act at the exact moment a JobActor or the
supervisor reached some step (the `action` of its structured log record) waits on this."""
from __future__ import annotations

import logging
import threading


class ActionSeen(logging.Handler):
    """Sets `seen` when a log record with this `action` (or one of these actions) and job id is
    emitted."""

    def __init__(self, action: str | tuple[str, ...], job_id: int) -> None:
        super().__init__(logging.DEBUG)
        self.actions = (action,) if isinstance(action, str) else action
        self.job_id, self.seen = job_id, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "action", None) in self.actions and getattr(record, "job_id", None) == self.job_id:
            self.seen.set()
