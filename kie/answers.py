"""What a KIE answer means: KIE's {code,msg,data} envelope, and the error class every other
outcome of a call becomes (a transport failure, an HTML page from a proxy, an empty or odd body).

Owns the rules only; kie/client.py makes the calls. Nothing here ever raises: it returns the
envelope or the error for the caller to raise, always one of kie/errors.py's action classes.
Error texts name the call, the HTTP status and the kind of body, never the body itself (a
proxy's page may echo request headers, the API key among them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

from kie.errors import KieAlert, KieError, KieJobFailed, KieNoCredit, KieRetryLater, KieSubmitOutcomeUnknown

RETRY_LATER_CODES = frozenset({429, 455, 500, 502, 503, 504, 408})
ALERT_CODES = frozenset({401, 402, 433})
NO_CREDIT_CODE = 402
# Statuses a front door (proxy, WAF, load balancer) answers without having handed the request
# to KIE: every 4xx (the request was refused as it came in), 503 (no upstream available), and
# Cloudflare's "origin down / unreachable / connect timed out / TLS failed" family.
NOT_HANDED_OVER = frozenset({503, 521, 522, 523, 525, 526})
# requests raises these while preparing the request, before a byte is sent; all mean our own
# configuration (KIE_API_URL, the key) is unusable, which only an operator can fix.
CONFIG_ERRORS = (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                 requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader,
                 requests.exceptions.URLRequired)
_NEVER_SENT_MARKERS = ("NewConnectionError", "Connection refused", "Name or service not known",
                       "Failed to establish", "Temporary failure in name resolution")


@dataclass(frozen=True)
class Envelope:
    """KIE's answer: the body `code` is the real status (HTTP may say 200 on failure)."""

    code: int
    msg: str
    data: Any


@dataclass(frozen=True)
class Unreadable:
    """An answer that is not KIE's envelope: who sent it and whether KIE acted is unknown."""

    status: int
    what: str           # "an HTML page", "an empty body", … (never the body itself)


def read(resp: requests.Response) -> Envelope | Unreadable:
    """The envelope in `resp`, or what was there instead. Only a JSON object with an integer
    `code` is KIE's; a proxy's JSON error page without one is as unreadable as its HTML."""
    content_type = resp.headers.get("content-type", "").lower()
    if not resp.content.strip():
        return Unreadable(resp.status_code, "an empty body")
    try:
        body = json.loads(resp.content)
    except (ValueError, RecursionError):
        what = "an HTML page" if "html" in content_type else "a body that is not JSON"
        return Unreadable(resp.status_code, what)
    if not isinstance(body, dict):
        return Unreadable(resp.status_code, f"a JSON {type(body).__name__}")
    code = _as_int(body.get("code"))
    if code is None:
        return Unreadable(resp.status_code, "a JSON object without a code")
    return Envelope(code, str(body.get("msg") or body.get("message") or ""), body.get("data"))


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):      # None, "OK", NaN, Infinity
        return None


def error_for(code: int, msg: str, call: str) -> KieError:
    """The action for a KIE error `code` in a readable envelope."""
    text = f"{call}: {code} {msg}".strip()
    if code in RETRY_LATER_CODES:
        return KieRetryLater(text, code=code)
    if code == NO_CREDIT_CODE:
        return KieNoCredit(text, code=code)
    if code in ALERT_CODES:
        return KieAlert(text, code=code)
    return KieJobFailed(msg or f"error {code}", code=code)


def unreadable_error(answer: Unreadable, call: str) -> KieRetryLater:
    """recordInfo, upload, credit: an answer we cannot read decides nothing. Retry later."""
    return KieRetryLater(f"{call}: HTTP {answer.status} with {answer.what}", code=answer.status)


def unreadable_create_error(answer: Unreadable) -> KieRetryLater | KieSubmitOutcomeUnknown:
    """createTask answered with something that is not KIE's envelope.

    createTask is not idempotent, so the only question is whether KIE may have created the
    task. Whoever wrote the answer received our request; it was KIE or a proxy in front of it.
    - 3xx and 4xx: the request was redirected or refused as it came in (a WAF's 403, a rate
      limiter's 429, a 413). HTTP defines these as "not acted on", and a proxy that did forward
      and then lost KIE's answer says so with 502/504, not with a 4xx. Retry later.
    - 503 and Cloudflare's 521/522/523/525/526: the front door found no KIE to hand it to.
      Retry later.
    - Everything else (a 200 with an empty or odd body, 500, 502, 504, 520, 524, …): KIE may
      have created the task and its answer was lost on the way. Outcome unknown: the JobActor
      waits for a callback naming the task and never resubmits blindly (design.md §2).
    A proxy that forwards a createTask and then answers 4xx would make us submit twice; that
    costs credits once, while guessing "unknown" for every 4xx would fail every job for the
    whole deadline whenever a WAF blocks us (KIE's upload host does, for bot-like agents).
    """
    if 300 <= answer.status < 500 or answer.status in NOT_HANDED_OVER:
        return KieRetryLater(f"createTask: HTTP {answer.status} with {answer.what}; not handed to KIE",
                             code=answer.status)
    return KieSubmitOutcomeUnknown(f"createTask: HTTP {answer.status} with {answer.what}; KIE may have the task",
                                   code=answer.status)


def transport_error(exc: requests.RequestException, call: str) -> KieRetryLater | KieAlert:
    """recordInfo, upload, credit: no answer. Nothing is decided; retry later, unless our own
    configuration makes every call impossible."""
    if isinstance(exc, CONFIG_ERRORS):
        return KieAlert(f"{call}: the KIE URL or key is unusable ({type(exc).__name__})")
    return KieRetryLater(f"{call} failed: {type(exc).__name__}")


def create_transport_error(exc: requests.RequestException) -> KieError:
    """createTask got no usable answer. Retry only when the request cannot have been sent."""
    name = type(exc).__name__
    if isinstance(exc, CONFIG_ERRORS):
        return KieAlert(f"createTask: the KIE URL or key is unusable ({name})")
    if isinstance(exc, requests.exceptions.InvalidJSONError):
        return KieJobFailed("the request could not be encoded")     # never sent; never will be
    if isinstance(exc, (requests.ConnectTimeout, requests.exceptions.SSLError)):
        return KieRetryLater(f"createTask could not connect: {name}")
    if isinstance(exc, requests.ConnectionError) and never_sent(exc):
        return KieRetryLater("createTask could not connect")
    if isinstance(exc, requests.Timeout):
        return KieSubmitOutcomeUnknown("createTask timed out after the request was sent")
    # A reset, a body cut short (ChunkedEncodingError), a redirect loop: it left us.
    return KieSubmitOutcomeUnknown(f"createTask connection broke: {name}")


def never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before the request could have reached KIE."""
    text = repr(exc)
    return any(marker in text for marker in _NEVER_SENT_MARKERS)
