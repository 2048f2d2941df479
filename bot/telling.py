"""What a handler says after it changed something that stays changed (a job cancelled, a
language set, a refund queued, a payment credited, a referral recorded). The change stands
whatever Telegram does with the words, so a failed send must never reach the error handler,
whose "Sorry, something went wrong. Please try again." would then be untrue (and trying again
would find the thing done, or do it twice).

`tell` makes the send and, when it fails, does what the caller chose:
- AGAIN: a message Telegram did not send (429, 5xx, refused connection) or may not have sent
  (a lost answer, a reset) is said again: the update stays in the store and its chat's lane
  handles it again after a wait (bot_gateway), which must find the change made and say the same
  words. Once its fate is unknown, a repeat is truer than silence (once: a second unknown fate
  sets the update aside rather than risk a third copy).
- BEST_EFFORT: the words are dropped (something else shows the outcome, e.g. the progress
  message of a cancelled job).
A chat that refuses the words for good (blocked, gone, a bad request) counts as told. A send
refused because this instance's term ended raises Deposed as before: the intake then leaves
the update to the next leader.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable
from typing import TypeVar

from telegram.error import TelegramError

from actors.ports import SendOutcome
from bot import flood_control
from bot.sender import classify_send_error

log = logging.getLogger(__name__)

T = TypeVar("T")

NOT_SAID = frozenset({SendOutcome.RETRY_AFTER, SendOutcome.RETRY, SendOutcome.UNKNOWN})


class OnFailure(enum.Enum):
    AGAIN = "again"
    BEST_EFFORT = "best_effort"


class Told(enum.Enum):
    YES = "yes"            # Telegram took the words
    FINAL = "final"        # the chat refuses them for good: nobody to tell
    NOT_YET = "not_yet"    # not sent, or its fate unknown (said again, or dropped)

    @property
    def done(self) -> bool:
        """Nothing more to say (a mark such as "payment announced" may be written)."""
        return self is not Told.NOT_YET


async def tell(words: Awaitable[T], what: str, on_failure: OnFailure) -> Told:
    """Await the send `words`; `what` names it in the log (never the words themselves)."""
    try:
        await words
    except TelegramError as exc:
        failure = classify_send_error(exc)
        if failure.outcome not in NOT_SAID:
            log.warning("%s not deliverable: %s", what, failure.detail, extra={"action": "told_never"})
            return Told.FINAL
        if on_failure is OnFailure.AGAIN:
            log.warning("%s not sent (%s): said again when the update is handled again", what, failure.outcome.value,
                        extra={"action": "told_again"})
            flood_control.leave_update(flood_control.Leave.AGAIN_LATER, f"{what}: {failure.detail}",
                                       wait_s=failure.retry_after,
                                       fate_unknown=failure.outcome is SendOutcome.UNKNOWN)
        else:
            log.info("%s not sent (%s): dropped", what, failure.outcome.value, extra={"action": "told_dropped"})
        return Told.NOT_YET
    return Told.YES
