"""What the actors need from the outside world, as protocols: they never import telegram.

bot_gateway implements `Sender`; the delivery outcomes are this small vocabulary, produced by
bot_gateway.classify_send_error and acted on by the JobActor.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

Buttons = list[list[tuple[str, str]]]   # rows of (text, callback_data)


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
    message_ids: tuple[int, ...]
    file_ids: tuple[str, ...] = ()


class Sender(Protocol):
    """Sends for the actors; blocks the calling thread; raises SendError."""

    def send_media(self, chat_id: int, kind: str, source: str, caption: str | None,
                   buttons: Buttons | None) -> Sent: ...

    def send_album(self, chat_id: int, kind: str, sources: list[str], caption: str | None) -> Sent: ...

    def send_text(self, chat_id: int, text: str, buttons: Buttons | None = None) -> Sent: ...

    def edit_text(self, chat_id: int, message_id: int, text: str, buttons: Buttons | None = None) -> None: ...

    def download_file(self, file_id: str) -> tuple[bytes, str]: ...
