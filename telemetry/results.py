"""One vocabulary for the `result` label of outward requests, KIE's and Telegram's alike.

The clients report what they saw in their own terms (an HTTP status or a `requests` exception
name for KIE; "ok", "deposed", "crowded" or a python-telegram-bot exception name for Telegram). A
dashboard or alert should not need to know either dialect, so both are mapped here to the
same few words.
"""
from __future__ import annotations

import enum


class RequestResult(str, enum.Enum):
    """How one outward request ended."""

    OK = "ok"                   # answered with success (for KIE: HTTP 2xx; the body may still say no)
    RETRY = "retry"             # the server asked us to come back later (429, 5xx, RetryAfter)
    REFUSED = "refused"         # the server refused this request (other 4xx, BadRequest, Forbidden)
    TIMEOUT = "timeout"         # no answer in time: the request may or may not have been acted on
    NETWORK = "network"         # the connection failed before an answer
    NOT_SENT = "not_sent"       # never sent: this instance no longer leads the epoch it was for, or a
                                # progress refresh gave way while Telegram's pace was booked
    ERROR = "error"             # anything else (a redirect, an unexpected exception)


_KIE_EXCEPTIONS = {
    "ConnectTimeout": RequestResult.TIMEOUT, "ReadTimeout": RequestResult.TIMEOUT,
    "Timeout": RequestResult.TIMEOUT, "ConnectionError": RequestResult.NETWORK,
    "SSLError": RequestResult.NETWORK, "ProxyError": RequestResult.NETWORK,
    "ChunkedEncodingError": RequestResult.NETWORK,
}

_TELEGRAM = {
    "ok": RequestResult.OK, "deposed": RequestResult.NOT_SENT, "crowded": RequestResult.NOT_SENT,
    "RetryAfter": RequestResult.RETRY,
    "TimedOut": RequestResult.TIMEOUT, "NetworkError": RequestResult.NETWORK,
    "BadRequest": RequestResult.REFUSED, "Forbidden": RequestResult.REFUSED,
    "InvalidToken": RequestResult.REFUSED, "ChatMigrated": RequestResult.REFUSED,
    "Conflict": RequestResult.REFUSED, "EndPointNotFound": RequestResult.REFUSED,
}


def kie_result(seen: str) -> RequestResult:
    """A KIE request's result from its HTTP status ("200") or its `requests` exception name."""
    if seen.isdigit():
        status = int(seen)
        if 200 <= status < 300:
            return RequestResult.OK
        if status == 429 or status >= 500:
            return RequestResult.RETRY
        if 400 <= status < 500:
            return RequestResult.REFUSED
        return RequestResult.ERROR
    return _KIE_EXCEPTIONS.get(seen, RequestResult.ERROR)


def telegram_result(seen: str) -> RequestResult:
    """A Bot API request's result from FloodControl's word ("ok", "deposed", "crowded") or PTB's
    exception name."""
    return _TELEGRAM.get(seen, RequestResult.ERROR)
