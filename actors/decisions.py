"""Pure decisions the JobActor applies: what a KIE record means, and when to poll next.

Only an explicit failure or a finished task is terminal; every other state, spelled any way,
means keep waiting. A task KIE calls finished but that carries neither result URLs nor a
result text is a failure: nothing will ever arrive, and waiting would only run out the deadline.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kie.records import TaskRecord

SUCCESS_STATES = frozenset({"success", "succeeded", "completed"})
FAIL_STATES = frozenset({"fail", "failed", "failure", "error"})
POLL_CAP_S = 15.0
NO_RESULT = "the model finished without a result"


@dataclass(frozen=True)
class KeepWaiting:
    why: str


@dataclass(frozen=True)
class Succeeded:
    urls: tuple[str, ...]
    text: str | None = None
    credits: Decimal | None = None      # what KIE says it charged (creditsConsumed)


@dataclass(frozen=True)
class Failed:
    reason: str
    credits: Decimal | None = None


Next = KeepWaiting | Succeeded | Failed


def decide_after_record(record: TaskRecord | None) -> Next:
    if record is None:
        return KeepWaiting("recordInfo is null (not visible yet)")
    state = record.state.strip().lower()
    if state in FAIL_STATES:
        detail = record.fail_msg or (f"error {record.fail_code}" if record.fail_code else "no reason given")
        return Failed(detail, record.credits_consumed)
    if state in SUCCESS_STATES:
        if record.result_urls or record.result_text:
            return Succeeded(record.result_urls, record.result_text, record.credits_consumed)
        return Failed(NO_RESULT, record.credits_consumed)
    return KeepWaiting(f"state {record.state!r}")


def next_poll_delay(attempt: int, base_s: float = 1.0) -> float:
    """KIE's advice scaled by base_s: ~2 s early, ~5 s after 30 s, ~15 s after 2 minutes."""
    if attempt < 10:
        factor = 1.0 if attempt < 3 else 2.0
    elif attempt < 30:
        factor = 5.0
    else:
        factor = 15.0
    return min(base_s * factor, POLL_CAP_S * max(base_s, 1.0))
