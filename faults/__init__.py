"""Crash points: named places where a test harness may kill this process, to prove that a
crash at the worst moment loses nothing and sends nothing twice.

Off unless the environment names a point: KIEBOT_CRASHPOINT=<name> kills the process with
SIGKILL on the KIEBOT_CRASHPOINT_AFTER-th passage (default 1). Nothing else changes behaviour.
"""
from __future__ import annotations

import os
import signal
import threading

POINTS = ("after_job_insert", "after_create_task", "after_callback_stored", "after_claim", "after_send",
          "after_record")
# Where money can be caught between two steps of a payment (tests/system/test_money_crashes.py).
PAYMENT_POINTS = ("before_payment_credit", "after_payment_credit")

_armed = os.environ.get("KIEBOT_CRASHPOINT")
_after = int(os.environ.get("KIEBOT_CRASHPOINT_AFTER", "1") or 1)
_passes = 0
_lock = threading.Lock()


def crashpoint(name: str) -> None:
    global _passes  # noqa: PLW0603 - one process-wide crash point, armed from the environment
    if name != _armed:
        return
    with _lock:
        _passes += 1
        if _passes >= _after:
            os.kill(os.getpid(), signal.SIGKILL)
