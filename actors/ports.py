"""What the actors need from the outside world, as protocols: they never import telegram, and
they never write a word a user reads.

The `Sender` port speaks in intents about a job: how many messages its result takes, send
part N of it, tell its failure, show its progress stage or its place in the queue.
bot/presenter.py implements it: all wording (the texts in config/, in the job's language),
buttons (bot/callback_data.py, bot/job_controls.py) and media handling live there. The
delivery outcomes are the small vocabulary below, produced by bot/sender.py's
classify_send_error and acted on by the JobActor.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any, Protocol

from actors.outcomes import ProgressStage
from storage.jobs import Job


class SendOutcome(enum.Enum):
    RETRY_AFTER = "retry_after"        # not delivered; wait `retry_after` and send again
    RETRY = "retry"                    # not delivered (connection refused, 5xx); retry with backoff
    UNKNOWN = "unknown"                # may have been delivered; never resend blindly
    UNDELIVERABLE = "undeliverable"    # blocked, chat gone: final
    REJECTED = "rejected"              # Telegram refused this content (bad request): final
    DEPOSED = "deposed"                # not sent: this instance no longer leads the epoch it was for


class SendError(Exception):
    def __init__(self, outcome: SendOutcome, detail: str, retry_after: float = 0.0) -> None:
        super().__init__(f"{outcome.value}: {detail}")
        self.outcome = outcome
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class Sent:
    """What one sent message (or album) left in the chat; stored per part in
    jobs.delivery_parts, so a resumed delivery knows what is already there."""

    message_ids: tuple[int, ...]
    file_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"message_ids": list(self.message_ids), "file_ids": list(self.file_ids)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Sent:
        return cls(tuple(int(m) for m in value.get("message_ids", ())),
                   tuple(str(f) for f in value.get("file_ids", ())))


class Sender(Protocol):
    """Tells a job's user about it; blocks the calling thread; raises SendError. Each call is
    one Telegram message (or album): the unit a delivery records as sent."""

    def result_parts(self, job: Job) -> int:
        """How many messages the result of this (succeeded) job takes; the same every time."""
        ...

    def send_result_part(self, job: Job, index: int) -> Sent:
        """Send message `index` of the result (0-based; parts are sent in order)."""
        ...

    def send_failure(self, job: Job) -> Sent:
        """Tell the user this (failed) job's failure, in place of its progress message when it
        has one. Repeating it must be harmless unless it raises UNKNOWN."""
        ...

    def show_progress(self, job: Job, stage: ProgressStage, *, refresh: bool = False) -> None:
        """Best effort: the progress message now shows `stage` (DONE: the result is in the
        chat, so the progress message goes away; what the user asked, job.stop, is shown too).
        `refresh`: the stage is already shown and only its count moves on, so the edit may give
        way to other sends (SendError RETRY) when Telegram's pace is booked."""
        ...

    def show_queued(self, job: Job, position: int) -> None:
        """Best effort: the progress message shows the job's place in its user's queue (1: next)."""
        ...

    def download_file(self, file_id: str) -> tuple[bytes, str]:
        """A file the user sent us (for KIE's upload): its bytes and a file name."""
        ...


class OperatorAlert(enum.Enum):
    """Something the operator must hear about at once (a message to ADMIN_IDS, at most once an
    hour per alert; the bot puts it into words)."""

    KIE_NO_CREDIT = "kie_no_credit"             # KIE's balance is short (402, or read below a job's price)
    PAYMENT_DISCREPANCY = "payment_discrepancy"  # a Stars payment on one side only


class OperatorPager(Protocol):
    def page(self, alert: OperatorAlert, detail: str) -> int:
        """Tell every admin; best effort (raises SendError only for DEPOSED). How many it reached."""
        ...


@dataclass(frozen=True)
class StarTransaction:
    """One entry of getStarTransactions, as far as reconciliation needs it."""

    id: str                     # for a payment: its telegram_payment_charge_id
    amount: int                 # Stars
    at: dt.datetime
    incoming: bool              # a user paid the bot (source), else the bot paid a user (receiver)
    user_id: int | None
    payload: str | None = None


class StarsAccount(Protocol):
    """The bot's Stars at Telegram: refund a payment; list the transactions."""

    def refund(self, user_id: int, charge_id: str) -> bool:
        """Refund a payment: True when Telegram refunded it now, False when it says it was
        refunded already (CHARGE_ALREADY_REFUNDED counts as done). Raises SendError."""
        ...

    def transactions(self, offset: int, limit: int) -> list[StarTransaction]:
        """One page of the bot's Star transactions. Raises SendError."""
        ...
